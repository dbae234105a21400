"""Text normalisation and personal-data redaction, shared by every path.

Training, prediction, serving and logging all go through this module, so the
model sees the same text at training and at serving time, and no log line,
report or API response shows a complaint's personal data:

- `normalize_text` is the Unicode clean-up applied to model input.
- `redact` replaces NIK numbers, other long ID numbers, phone numbers and
  e-mail addresses with placeholders; `count_pii` counts what `redact` replaces.
- `snippet` (normalise, redact, truncate) is the only way a complaint's text
  may be shown in logs, reports and API snippets.

Redaction rules, and why (the patterns below implement exactly these):

1. E-mail addresses are replaced first, in a pass of their own, so that digits
   inside an address ("budi.0812@contoh.id") are part of the address, never a
   phone number, and the address is replaced whole.
2. Then one scan over the text tries, at each position, these alternatives in
   this order; the first that matches wins, and a number is never matched from
   the middle of a longer digit run:
   a. NIK: exactly 16 digits, contiguous or grouped 4-4-4-4 / 6-6-4 with one
      consistent separator (space, dot or dash), or 2.2.2.6.4 with dots.
      Exactly 16 digits is a NIK even when it starts with "08" or "62": no
      Indonesian phone number has 16 digits (national mobile numbers have
      10-13, "62" + number at most 14), so a 16-digit run cannot be one. A KK
      (family card) number has the same 16-digit shape and is also [NIK].
   b. Mobile phone: "08" followed by 8-11 more digits (10-13 in all), or
      "+62"/"62"/"(+62)" then "8" and 8-11 more digits ("+62 0812..." too).
      Digits may be grouped with one space, dot or dash (" - " too) or a
      closing parenthesis, but only before a group of at least 3 digits: real
      phone groupings ("0812-3456-7890", "0812 345 6789") have such groups,
      while time and date chains ("08.00-12.00 13.00") have 2-digit groups.
      The exceptions, past the first 3 digits: pairs after a plain space
      ("081 234 56 78 90", seen in the Surabaya data; "08 12 2022" stays) and
      a final pair ("0831.6345.36").
   c. Landline: area code "0" + [2-79] + 1-2 digits, optionally in
      parentheses, then the subscriber number: 9-11 digits in all
      ("(021) 1234567", "031-5678901", "0341 123456"); "+62" with an area code
      without its 0 ("+62 31 5678901"). "08" is never an area code, and a
      2-digit "area" ("02-12-2022") never matches, so dates stay.
   d. Other ID-like numbers: a run of at least 10 digits joined by single dots
      or dashes ("35.78.123.456.789.0123.4" tax object numbers, NPWP, account
      numbers), or by single spaces between groups of 3-6 digits
      ("0001 2345 67890", BPJS). A space-joined group that starts a phone
      number or NIK is not joined ("no 123 0812 3456 7890" keeps the house
      number and redacts the phone). Kept, though 10+ digits long: money
      written with separators (dot-thousands form "1.500.000.000", a range
      "500.000-600.000", or a run after "Rp"/"IDR" or before ",-", ",00",
      "rupiah") and date ranges joined into one run ("01.02.2017-03.04.2017").
      But a run with 10 contiguous digits is always redacted, money or not
      ("Rp1500000000" is rare), which guarantees that redacted text never
      holds 10 contiguous digits. Runs under 10 digits (dates, times, years,
      postal codes, house numbers, RT/RW) are never touched.
   A match never starts right after a digit and never ends right before a
   digit, or before a dot/dash followed by a digit, so a phone number is never
   cut out of a longer ID number; such a run falls through to (d).
3. Letters next to a number do not block a match ("NIK3578...", "hp:0812...",
   "WA081..."), because exported texts glue words to numbers, e.g. a literal
   "\\n" before a number.

The replaced kinds and their placeholders are `PII_KINDS` and `PLACEHOLDERS`.
Placeholders contain no digits and no "@", so redaction is idempotent.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

__all__ = [
    "PII_KINDS",
    "PLACEHOLDERS",
    "count_pii",
    "normalize_text",
    "redact",
    "snippet",
]

# --------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------

# Invisible characters that sit *inside* words: removing them (not turning them
# into a space) keeps the word whole. Zero-width space/non-joiner/joiner, word
# joiner, BOM, and the soft hyphen (a hyphenation hint, invisible on screen).
_INVISIBLE_RE = re.compile("[\u200b-\u200d\u2060\ufeff\u00ad]")

# Everything that separates words and becomes one plain space: Python's `\s`
# (ASCII whitespace, \x1c-\x1f, \x85, NBSP, U+1680, U+2000-U+200A, U+2028/9,
# U+202F, U+205F, U+3000), the other control characters (Cc: \x00-\x1f,
# \x7f-\x9f) and the other format characters (Cf, Unicode 14, minus those
# removed above). tests/test_text.py checks this list against `unicodedata`,
# so a Python with a newer Unicode database that adds Cf characters fails loudly.
_SPACE_RUN_RE = re.compile(
    "[\\s\x00-\x1f\x7f-\x9f"
    "\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200e\u200f\u202a-\u202e\u2061-\u2064\u2066-\u206f\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]+"
)

# Literal backslash escapes ("\\n", two characters) left by an export that
# escaped newlines twice: about a third of the Surabaya 2022 texts have them.
# They glue the next word to an "n" ("\\nAlamat" -> "nAlamat" for a tokenizer)
# and are never meant as text, so they become a space like a real newline.
_LITERAL_ESCAPE_RE = re.compile(r"\\[nrt]")

_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _mojibake_tables() -> tuple[dict[str, int], str, str, str, str]:
    """Byte value for each character that a cp1252/latin-1 decode yields for bytes 0x80-0xFF.

    UTF-8 text decoded as cp1252 (or latin-1 for the 5 bytes cp1252 leaves
    undefined) turns each non-ASCII character into 2-4 such characters:
    "🙏" (F0 9F 99 8F) becomes "ðŸ™\\x8f". Both decodings are accepted.
    """
    to_byte: dict[str, int] = {}
    for b in range(0x80, 0x100):
        to_byte[chr(b)] = b
        try:
            to_byte[bytes([b]).decode("cp1252")] = b
        except UnicodeDecodeError:
            pass

    def klass(lo: int, hi: int) -> str:
        chars = sorted(c for c, b in to_byte.items() if lo <= b <= hi)
        return "[" + "".join(re.escape(c) for c in chars) + "]"

    return to_byte, klass(0x80, 0xBF), klass(0xC2, 0xDF), klass(0xE0, 0xEF), klass(0xF0, 0xF4)


_MOJIBAKE_BYTE, _CONT, _LEAD2, _LEAD3, _LEAD4 = _mojibake_tables()
# One or more well-formed UTF-8 byte sequences, written as cp1252/latin-1 characters.
_MOJIBAKE_RE = re.compile(f"(?:{_LEAD2}{_CONT}|{_LEAD3}{_CONT}{{2}}|{_LEAD4}{_CONT}{{3}})+")


def _fix_mojibake_match(m: re.Match[str]) -> str:
    raw = bytes(_MOJIBAKE_BYTE[c] for c in m.group())
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # overlong or surrogate encodings: not real UTF-8
        return m.group()


#: The characters `normalize_text` turns into nothing (separators, control and
#: format characters, invisible ones), as the body of a regex character class.
#: A text made only of these is empty; the API uses this to reject blank texts.
BLANK_CHARACTERS: str = _SPACE_RUN_RE.pattern[1:-2] + _INVISIBLE_RE.pattern[1:-1]


def normalize_text(text: str) -> str:
    """Clean up a complaint's Unicode for the model; idempotent and never raises.

    Steps, and why:
    - lone surrogates (from broken decoding upstream) become U+FFFD, so the
      result can always be encoded as UTF-8 (a tokenizer or JSON writer would
      raise on them); a valid surrogate pair is joined into its character;
    - UTF-8 mojibake is repaired ("ðŸ™\\x8f" -> "🙏", "Â²" -> "²"): 7% of the
      Surabaya 2022 texts have some, and the garbage would be split into
      meaningless tokens (only well-formed UTF-8 byte sequences are decoded, so
      ordinary accented text is left alone; a rare legitimate pair such as an
      upper-case accented letter followed by "…" would be misread);
    - zero-width characters and soft hyphens are removed: invisible, and they
      split a word into two tokens;
    - NFC, not NFKC: the tokenizer applies its own normalisation, and NFKC
      would change meaning-bearing characters ("²" -> "2", "½" -> "1⁄2");
    - literal "\\n", "\\r", "\\t" escapes (backslash + letter) become a space;
    - control and format characters, exotic spaces and whitespace runs become
      one plain space (they separate words); the ends are stripped.

    The removal/repair/NFC steps repeat until nothing changes, because each can
    expose work for another (removing a zero-width space can join two halves of
    a mojibake sequence); that makes `normalize_text` idempotent.
    """
    if _SURROGATE_RE.search(text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    while True:
        before = text
        if not text.isascii():
            # Repair before removing soft hyphens: U+00AD is also the cp1252
            # reading of byte 0xAD, part of e.g. "😭" (F0 9F 98 AD).
            text = _MOJIBAKE_RE.sub(_fix_mojibake_match, text)
            text = _INVISIBLE_RE.sub("", text)
            text = unicodedata.normalize("NFC", text)
        if text == before:
            break
    text = _LITERAL_ESCAPE_RE.sub(" ", text)
    return _SPACE_RUN_RE.sub(" ", text).strip()


# --------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------

PII_KINDS: tuple[str, ...] = ("nik", "nomor", "telepon", "email")
PLACEHOLDERS: dict[str, str] = {
    "nik": "[NIK]",
    "nomor": "[NOMOR]",
    "telepon": "[TELEPON]",
    "email": "[EMAIL]",
}

# E-mail: local part of at most 64 characters (the RFC limit; also keeps the
# scan linear on long tokens), a domain with at least one dot and a letter TLD.
# No look-behind on purpose: the scan is leftmost-first, so the whole local
# part is taken; a look-behind would skip "x@y.com123@z.com"'s second address
# on the first pass and catch it on the second (not idempotent).
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")

_SP = r"[ \t\u00a0]"  # a horizontal space inside a number
# A phone-number separator: one space, or a dot/dash with optional spaces around
# it, optionally after a closing parenthesis ("(0812) 3456...").
_PSEP = rf"(?:\)?{_SP}?[.\-]{_SP}?|\)?{_SP}|\))"
# One more digit of a phone number; a separator only before a group of >= 3 digits.
_PDIGIT = rf"(?:{_PSEP}(?=\d{{3}})\d|\d)"
# The same for mobile numbers, which are also written in pairs after a plain
# space ("081 234 56 78 90") and may end in a pair ("0831.6345.36"); other
# dotted/dashed pairs stay out (times: "08.00-12.00 13.00").
_MDIGIT = (
    rf"(?:{_PSEP}(?=\d{{3}})\d|{_SP}(?=\d{{2}})\d"
    rf"|{_PSEP}(?=\d{{2}}(?!\d)(?![.\-]\d))\d|\d)"
)
# A number ends where no digit follows, directly or after a dot/dash.
_END = r"(?!\d)(?![.\-]\d)"

_NIK = (
    r"(?<!\d)(?:\d{16}"
    r"|\d{4}(?P<s4>[ .\-])\d{4}(?P=s4)\d{4}(?P=s4)\d{4}"
    r"|\d{6}(?P<s6>[ .\-])\d{6}(?P=s6)\d{4}"
    r"|\d{2}\.\d{2}\.\d{2}\.\d{6}\.\d{4})" + _END
)
# The first digit after "08" uses _PDIGIT, so "08 12 2022 10" (a date) is no phone.
_MOBILE_NATIONAL = rf"(?<!\d)\(?08{_PDIGIT}(?:{_MDIGIT}){{7,10}}" + _END
_MOBILE_INTL = (
    rf"(?:\(\+?62\)|\+{_SP}?62|(?<![\d+])62){_SP}?[.\-]?{_SP}?"
    rf"(?:\(0\)|0)?{_SP}?[.\-]?{_SP}?\(?8(?:{_MDIGIT}){{8,11}}" + _END
)
_LANDLINE_NATIONAL = rf"(?<!\d)\(?0[2-79]\d(?:{_PDIGIT}){{6,8}}" + _END
_LANDLINE_INTL = (
    rf"\+{_SP}?62{_SP}?[.\-]?{_SP}?(?:\(0\)|0)?{_SP}?\(?[2-79]\d(?:{_PDIGIT}){{5,9}}" + _END
)
_PHONE = f"(?:{_MOBILE_NATIONAL}|{_MOBILE_INTL}|{_LANDLINE_NATIONAL}|{_LANDLINE_INTL})"
# Numbers that a space-joined group must not start (they are matched on their own).
_NIK_OR_PHONE_AHEAD = (
    rf"(?:\d{{16}}|\d{{4}}[ .\-]\d{{4}}[ .\-]\d{{4}}[ .\-]\d{{4}}|{_MOBILE_NATIONAL}"
    rf"|{_LANDLINE_NATIONAL}|(?<![\d+])62{_SP}?[.\-]?{_SP}?8)"
)
_GROUPED = rf"(?<!\d)\d{{3,6}}(?:{_SP}(?!{_NIK_OR_PHONE_AHEAD})\d{{3,6}})+" + _END
# At least 10 digits (checked by the look-ahead) joined by single dots/dashes.
_DOTTED = r"(?<!\d)(?=\d(?:[.\-]?\d){9})\d+(?:[.\-]\d+)*" + _END

# The leading look-ahead is only for speed (10x): `re` rejects most positions on
# their first character instead of trying every alternative's look-behinds.
_NUMBER_RE = re.compile(
    r"(?=[\d(+])(?:"
    f"(?P<nik>{_NIK})|(?P<telepon>{_PHONE})|(?P<grouped>{_GROUPED})|(?P<dotted>{_DOTTED})"
    ")"
)

# Money: dot-thousands form, or a currency word before / a money ending after.
_MONEY_FORM_RE = re.compile(r"[1-9]\d{0,2}(?:\.\d{3})+")
# Dates joined into one run: "01.02.2017-03.04.2017", "2022-01-05-2022-01-07".
_DATE = r"(?:\d{1,2}[.\-]\d{1,2}[.\-](?:19|20)\d{2}|(?:19|20)\d{2}[.\-]\d{1,2}[.\-]\d{1,2})"
_DATE_RUN_RE = re.compile(rf"{_DATE}(?:[.\-]{_DATE})+")
_MONEY_BEFORE_RE = re.compile(r"(?:rp|idr)\.?\s?$", re.IGNORECASE)
_MONEY_AFTER_RE = re.compile(r"(?:,-|,00|\s?(?:rupiah|rp)\b)", re.IGNORECASE)
_DIGIT_RE = re.compile(r"\d")
_TEN_DIGITS_RE = re.compile(r"\d{10}")


def _number_kind(m: re.Match[str]) -> str | None:
    """The kind of a `_NUMBER_RE` match, or None when it is not personal data."""
    kind = m.lastgroup
    if kind in ("nik", "telepon"):
        return kind
    span = m.group()
    if len(_DIGIT_RE.findall(span)) < 10:
        return None
    if _TEN_DIGITS_RE.search(span):  # always redacted, even "Rp1500000000": see rule 2d
        return "nomor"
    if kind == "dotted" and all(_MONEY_FORM_RE.fullmatch(p) for p in span.split("-")):
        return None  # "1.500.000.000", or a range "500.000-600.000"
    if kind == "dotted" and _DATE_RUN_RE.fullmatch(span):
        return None  # a date range
    text, start, end = m.string, m.start(), m.end()
    if _MONEY_BEFORE_RE.search(text, max(0, start - 5), start):
        return None
    if _MONEY_AFTER_RE.match(text, end):
        return None
    return "nomor"


def _scan(text: str) -> tuple[str, dict[str, int]]:
    """Redact and count in one go: the single implementation behind `redact` and `count_pii`.

    Counting also replaces, so the number scan sees exactly what `redact`'s
    number scan sees (the digits inside an e-mail address are not counted
    again as a phone number).
    """
    counts = dict.fromkeys(PII_KINDS, 0)

    def sub(pattern: re.Pattern[str], kind_of: Callable[[re.Match[str]], str | None]) -> str:
        def one(m: re.Match[str]) -> str:
            kind = kind_of(m)
            if kind is None:
                return m.group()
            counts[kind] += 1
            return PLACEHOLDERS[kind]

        return pattern.sub(one, text)

    if "@" in text:
        text = sub(_EMAIL_RE, lambda _m: "email")
    text = sub(_NUMBER_RE, _number_kind)
    return text, counts


def redact(text: str) -> str:
    """Replace NIK, other ID numbers, phone numbers and e-mail addresses with placeholders.

    "[NIK]", "[NOMOR]", "[TELEPON]", "[EMAIL]"; see the module docstring for
    the rules. The rest of the text is returned unchanged (no normalisation),
    and `redact(redact(x)) == redact(x)`. Dates, times, money, years, postal
    codes, house numbers and RT/RW numbers are kept: they matter for routing
    and are not personal on their own.
    """
    return _scan(text)[0]


def count_pii(text: str) -> dict[str, int]:
    """How many of each kind (`PII_KINDS`) `redact` would replace in `text`.

    Uses the very patterns and decisions of `redact`, so a count of zero on
    redacted text means nothing was left for these patterns to find.
    """
    return _scan(text)[1]


def personal_identifiers(text: str) -> frozenset[str]:
    """The personal identifiers `redact` would replace in `text`, as comparison keys.

    Numbers (NIK, phone, other ID numbers) become their digits, a phone number
    in its national form ("+62 812-3456-7890" and "081234567890" are one key);
    e-mail addresses are case-folded. For telling whether two complaints name
    the same reporter or case (`model.dedup`); the keys are personal data and
    must never be shown, logged or stored.
    """
    keys: set[str] = set()
    if "@" in text:

        def email(m: re.Match[str]) -> str:
            keys.add(m.group().casefold())
            return PLACEHOLDERS["email"]

        text = _EMAIL_RE.sub(email, text)
    for m in _NUMBER_RE.finditer(text):
        if _number_kind(m) is None:
            continue
        digits = "".join(_DIGIT_RE.findall(m.group()))
        if m.lastgroup == "telepon" and digits.startswith("62"):
            digits = "0" + digits[2:].lstrip("0")
        keys.add(digits)
    return frozenset(keys)


def snippet(text: str, max_chars: int = 160) -> str:
    """The only form in which a complaint's text may appear in logs, reports and APIs.

    Normalised, then redacted (before truncating, so a cut can never leave
    part of a number or address unredacted), then cut to at most `max_chars`
    characters at a word boundary, with "…" marking the cut. A single word
    longer than half the budget is cut inside the word.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    text = redact(normalize_text(text))
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    if text[max_chars - 1] != " ":  # the cut falls inside a word: back up to its start
        space = cut.rfind(" ")
        if space >= (max_chars - 1) // 2:
            cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"
