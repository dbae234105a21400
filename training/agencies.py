"""Parse agency label strings into a canonical type, an office level and a region.

Labelled complaint data names the responsible office in many ways: "Dinas
Pekerjaan Umum Kota Semarang", "DINAS LINGKUNGAN HIDUP Probolinggo", "BPJS
Kesehatan KC Sampit", "Kelurahan Wonorejo - Rungkut", or just "Dinas Sosial"
(Surabaya's data: every office is the city's, the label does not say so).
`parse_agency` splits such a label into

- a **type**, canonical across cities and data sets, from the first matching
  row of `data/agency_types.csv` (see its header comment); a label that no row
  names keeps its own text, less the region part, as its type;
- a **level** (`data.directory.OFFICE_LEVELS`);
- a **region code** from the region table, or None when the label names no
  region (or the office is national);

with a short `evidence` string saying how the region was decided (it quotes
only the label's place words, never complaint text).

How the region is found, in order:

1. The last region marker that resolves: "Kota X", "Kabupaten X", "Kab. X",
   "Kodya X", "Provinsi X", "Prov. X", or a branch marker ("KC X", "KCU X",
   "Cab X", "Cabang X", "Kacab X", "Kantor Cabang X", "Kantor Regional VII X",
   "Kelas I X", "Divre X"). X may be followed by noise ("Kab.Sidoarjo Jawa
   Timur"): its longest resolving run of up to five words counts. Branch
   towns that are not region names go through `PLACE_ALIASES`.
2. "Kelurahan X" / "Desa X" / "Kecamatan X": X is looked up at that level
   within the region found in step 1 ("Kecamatan Kiaracondong Kota Bandung"),
   else within `home`, else in the whole table (accepted only when unique).
   "Kelurahan Wonorejo - Rungkut" names the kecamatan after the dash. An exact
   name match is tried first, then a fuzzy one (unique best above 88).
3. A bare province or city name at the end of the label ("DINAS LINGKUNGAN
   HIDUP Probolinggo", "Polrestabes Bandung", "Dinas Sosial Jawa Tengah"),
   for all but national, kelurahan and kecamatan types. When a name is both a
   Kota and a Kabupaten, the Kota is taken.
4. No region in the label: local-government types take `home` (level city,
   or province if `home` is one); national types have no region; anything
   else is recorded without a region ("region not recorded").
"""

from __future__ import annotations

import csv
import functools
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import data
from data.directory import OFFICE_LEVELS, label_key
from data.schema import DataError
from model.regions import Region, RegionTable, ancestors, level_of, normalize_place

#: The shipped type table.
DEFAULT_TYPES_PATH = Path(data.__file__).resolve().with_name("agency_types.csv")

TYPE_COLUMNS: tuple[str, ...] = ("type", "level", "patterns")

#: Town or place names used in labels (branch offices, abbreviations) that are not
#: official region names, mapped to the region they stand for, as
#: normalize_place(key) -> (kind, official name), kind being "kota", "kabupaten" or
#: "province". Resolved against the region table at parse time, so a code is never
#: hard-wired here. Add a town when a label's region is reported as unresolved.
PLACE_ALIASES: dict[str, tuple[str, str]] = {
    "sampit": ("kabupaten", "Kotawaringin Timur"),
    "kabanjahe": ("kabupaten", "Karo"),
    "watampone": ("kabupaten", "Bone"),
    "meulaboh": ("kabupaten", "Aceh Barat"),
    "lubukpakam": ("kabupaten", "Deli Serdang"),
    "wamena": ("kabupaten", "Jayawijaya"),
    "boven": ("kabupaten", "Boven Digoel"),
    "mangupura": ("kabupaten", "Badung"),
    "cikarang": ("kabupaten", "Bekasi"),
    "bekasicikarang": ("kabupaten", "Bekasi"),
    "bekasikota": ("kota", "Bekasi"),
    "bogorkota": ("kota", "Bogor"),
    "padangsidempuan": ("kota", "Padangsidimpuan"),
    "palangkaraya": ("kota", "Palangka Raya"),
    "pwk": ("kabupaten", "Purwakarta"),
    "smg": ("kota", "Semarang"),
    "bandungsuci": ("kota", "Bandung"),
    "jakartaceger": ("kota", "Jakarta Timur"),
    "ceger": ("kota", "Jakarta Timur"),
    "jakartarawamangun": ("kota", "Jakarta Timur"),
    "rawamangun": ("kota", "Jakarta Timur"),
    "jakartacilandak": ("kota", "Jakarta Selatan"),
    "cilandak": ("kota", "Jakarta Selatan"),
    "jakartakelapagading": ("kota", "Jakarta Utara"),
    "kelapagading": ("kota", "Jakarta Utara"),
    "cilincingplumpang": ("kota", "Jakarta Utara"),
    "cilincing": ("kota", "Jakarta Utara"),
    "grogol": ("kota", "Jakarta Barat"),
    "dki": ("province", "Daerah Khusus Ibukota Jakarta"),
    "dkijakarta": ("province", "Daerah Khusus Ibukota Jakarta"),
    "jakarta": ("province", "Daerah Khusus Ibukota Jakarta"),
    "sumbar": ("province", "Sumatera Barat"),
    "sumut": ("province", "Sumatera Utara"),
    "jabar": ("province", "Jawa Barat"),
    "jateng": ("province", "Jawa Tengah"),
    "jatim": ("province", "Jawa Timur"),
}

#: Longest run of words tried as a place name after a marker or at the end of a label.
_MAX_PLACE_WORDS = 5

_MARKER_RE = re.compile(
    r"(?<!\w)(?P<marker>"
    r"provinsi|prov\b\.?"
    r"|kota\s+administrasi|kota\s+adm\b\.?|kotamadya|kodya|kota"
    r"|kabupaten|kab\b\.?"
    r"|kcu|kc|kantor\s+cabang|kacab|cabang|cab\b\.?"
    r"|kantor\s+regional\s+[ivxl]+|regional\s+wilayah\s+[ivxl]+|divre"
    r"|kelas\s+i{1,3}(?:\s+khusus)?"
    r")(?=[\s.]|$)[\s.]*",
    re.IGNORECASE,
)
_UNIT_RE = re.compile(
    r"^(?P<unit>(?:kantor\s+)?(?:kelurahan|kel\b\.?|desa|ds\b\.?|lurah|kecamatan|kec\b\.?|camat))"
    r"[\s.]+(?P<name>.+)$",
    re.IGNORECASE | re.DOTALL,
)
_COURTESY_RE = re.compile(
    r"^(?:(?:yth|kepada|kepala|pimpinan|bapak|bapk|ibu|pak|pa|bp)\b[\s./]*)+", re.IGNORECASE
)
_PROGRAM_SUFFIX_RE = re.compile(r"\s+-\s+(?:program\b|bpnt\b).*$", re.IGNORECASE | re.DOTALL)
_TRAILING_FILLER_RE = re.compile(
    r"(?:[\s,;:.\-/]+|\s+(?:pemerintah|setda|sekretariat daerah|di))+$",
    re.IGNORECASE,
)
_EDGE_PUNCT = " \t\r\n.,;:-/"


class TypeTableError(DataError):
    """A type table that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class TypeRule:
    """One row of the type table: a type (empty: level only), its level, its patterns."""

    type: str
    level: str
    patterns: tuple[re.Pattern[str], ...]
    line: int

    def matches(self, key: str) -> bool:
        return any(p.match(key) for p in self.patterns)


class TypeTable:
    """The ordered type rules; `match` gives the first rule matching a label."""

    def __init__(self, rules: Sequence[TypeRule], source: str) -> None:
        self.rules = tuple(rules)
        self.source = source

    @classmethod
    def read(cls, path: str | os.PathLike[str] = DEFAULT_TYPES_PATH) -> TypeTable:
        """Read a type table (see data/agency_types.csv for the format)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise TypeTableError(f"{p}: no such type table file") from None
        except UnicodeDecodeError as e:
            raise TypeTableError(
                f"{p}: not valid UTF-8 (byte {e.start}); save it as UTF-8"
            ) from None
        return cls.from_text(text, str(p))

    @classmethod
    def from_text(cls, text: str, source: str = "(in memory)") -> TypeTable:
        """Parse a type table from its CSV text (comment lines start with #)."""
        numbered = [
            (n, line)
            for n, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
        if not numbered:
            raise TypeTableError(f"{source}: no header; expected {','.join(TYPE_COLUMNS)}")
        rules: list[TypeRule] = []
        for i, (n, line) in enumerate(numbered):
            try:
                row = next(csv.reader(io.StringIO(line)))
            except (csv.Error, StopIteration) as e:
                raise TypeTableError(f"{source} line {n}: malformed CSV ({e})") from None
            if i == 0:
                if [c.strip() for c in row] != list(TYPE_COLUMNS):
                    raise TypeTableError(
                        f"{source} line {n}: the header must be {','.join(TYPE_COLUMNS)}"
                    )
                continue
            if len(row) != len(TYPE_COLUMNS):
                raise TypeTableError(
                    f"{source} line {n}: {len(row)} field(s), expected {len(TYPE_COLUMNS)} "
                    f"({','.join(TYPE_COLUMNS)})"
                )
            type_, level, patterns = (c.strip() for c in row)
            if level not in OFFICE_LEVELS:
                raise TypeTableError(
                    f"{source} line {n}: unknown level '{level}'; use one of "
                    f"{', '.join(OFFICE_LEVELS)}"
                )
            compiled = []
            for pat in (p.strip() for p in patterns.split("|")):
                if not pat:
                    raise TypeTableError(f"{source} line {n}: empty pattern; remove the extra '|'")
                try:
                    compiled.append(re.compile(f"(?:{pat})(?=\\s|$)"))
                except re.error as e:
                    raise TypeTableError(
                        f"{source} line {n}: pattern '{pat}' is not a valid "
                        f"regular expression ({e})"
                    ) from None
            rules.append(TypeRule(type_, level, tuple(compiled), n))
        return cls(rules, source)

    def match(self, label: str) -> TypeRule | None:
        """The first rule with a pattern matching the start of `label`'s label_key."""
        key = label_key(_strip_courtesy(label))
        for rule in self.rules:
            if rule.matches(key):
                return rule
        return None

    def types(self) -> list[str]:
        """The canonical types the table names, sorted."""
        return sorted({r.type for r in self.rules if r.type})


@functools.lru_cache(maxsize=1)
def default_types() -> TypeTable:
    """The shipped type table, `data/agency_types.csv` (read once)."""
    return TypeTable.read(DEFAULT_TYPES_PATH)


@dataclass(frozen=True)
class ParsedAgency:
    """What a label says: canonical type, office level, region code, and how it was decided.

    `type_from_table` is True when a type-table row gave the type (False: the
    label's own text is the type).
    """

    label: str
    type: str
    level: str
    region_code: str | None
    evidence: str
    type_from_table: bool = False


# --------------------------------------------------------------------------- parsing


def _strip_courtesy(text: str) -> str:
    return _COURTESY_RE.sub("", text.strip(_EDGE_PUNCT)).strip(_EDGE_PUNCT)


def _tidy(text: str) -> str:
    """Whitespace collapsed, edge punctuation and dangling filler words removed."""
    text = " ".join(text.split()).strip(_EDGE_PUNCT)
    return _TRAILING_FILLER_RE.sub("", text).strip(_EDGE_PUNCT)


def _own_type(text: str) -> str:
    """A label's own text as a type: its first line or sentence, tidied."""
    first = re.split(r"\n|[.!?](?:\s|$)", text.strip(_EDGE_PUNCT), maxsplit=1)[0]
    return _tidy(first) or _tidy(text)


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s\-]+", text) if w.strip(_EDGE_PUNCT)]


@dataclass(frozen=True)
class _Place:
    region: Region
    words: str  # the label's words that named it
    note: str = ""  # e.g. "alias of Kabupaten Karo"


class _Resolver:
    """Looks place words up in the region table, with `PLACE_ALIASES`."""

    def __init__(self, regions: RegionTable) -> None:
        self.regions = regions

    def _by_kind(self, name: str, kind: str) -> list[Region]:
        """Regions named `name` of one kind: "kota", "kabupaten", "province" or "city"."""
        if kind == "province":
            return self.regions.find(name, level="province")
        found = self.regions.find(name, level="city")
        if kind == "city":
            return found
        prefix = ("kota",) if kind == "kota" else ("kabupaten", "kab.")
        kept = [r for r in found if r.name.casefold().startswith(prefix)]
        return kept or (found if len(found) == 1 else [])

    def _alias(self, words: str) -> _Place | None:
        target = PLACE_ALIASES.get(normalize_place(words))
        if target is None:
            return None
        kind, name = target
        found = self._by_kind(name, kind)
        if len(found) != 1:
            return None
        region = found[0]
        return _Place(region, words.strip(_EDGE_PUNCT), f"alias of {region.name}")

    def place(self, words: str, kind: str) -> _Place | None:
        """One region named exactly `words` (kind as in `_by_kind`, or "any": province,
        then city with Kota before Kabupaten), or None when there is none or no single one."""
        if not normalize_place(words):
            return None
        order = {
            "any": ("province", "kota", "kabupaten"),
            "branch": ("kota", "kabupaten", "province"),
        }
        if kind in order:
            hits = (self.place(words, k) for k in order[kind])
            return next((hit for hit in hits if hit is not None), None)
        found = self._by_kind(words, kind)
        if len(found) == 1:
            return _Place(found[0], words.strip(_EDGE_PUNCT))
        alias = self._alias(words)
        if alias is not None and (kind in ("city", "any") or _kind_of(alias.region) == kind):
            return alias
        return None

    def leading(self, text: str, kind: str) -> _Place | None:
        """The longest run of up to five words at the start of `text` that names a place."""
        words = _words(text)
        for n in range(min(len(words), _MAX_PLACE_WORDS), 0, -1):
            hit = self.place(" ".join(words[:n]), kind)
            if hit is not None:
                return hit
        return None

    def trailing(self, text: str, kind: str) -> tuple[_Place, str] | None:
        """The longest run of up to four words at the end of `text` (not all of it)
        that names a place, and the text before it."""
        words = _words(text)
        for n in range(min(len(words) - 1, _MAX_PLACE_WORDS - 1), 0, -1):
            hit = self.place(" ".join(words[-n:]), kind)
            if hit is not None:
                return hit, " ".join(words[:-n])
        return None

    def unit(self, name: str, level: str, within: str | None) -> tuple[Region | None, str]:
        """A kecamatan or kelurahan named `name` within `within` (None: anywhere), and how."""
        where = f"in {within}" if within else "in the region table"
        exact = self.regions.find(name, level=level, within=within)
        if len(exact) == 1:
            return exact[0], f"{level} '{name}' {where}"
        if len(exact) > 1:
            return None, f"{len(exact)} {level} named '{name}' {where}; name the region"
        if within is None:
            return None, f"no {level} named '{name}' {where}"
        fuzzy = self.regions.fuzzy_find(name, level=level, within=within)
        if fuzzy and (len(fuzzy) == 1 or fuzzy[0][1] > fuzzy[1][1]):
            region, score = fuzzy[0]
            return region, f"{level} '{name}' ~ '{region.name}' ({score:.0f}) {where}"
        return None, f"no {level} named '{name}' {where}"


def _kind_of(region: Region) -> str:
    if region.level == "province":
        return "province"
    return "kota" if region.name.casefold().startswith("kota") else "kabupaten"


_BRANCH_MARKERS = ("kc", "kcu", "kantor cabang", "kacab", "cabang", "cab", "divre")


def _marker_kind(marker: str) -> str:
    m = " ".join(marker.casefold().replace(".", " ").split())
    if m in ("provinsi", "prov"):
        return "province"
    if m.startswith("kota") or m in ("kotamadya", "kodya"):
        return "kota"
    if m in ("kabupaten", "kab"):
        return "kabupaten"
    return "branch"


def _marker_region(text: str, resolver: _Resolver) -> tuple[_Place, str, str] | None:
    """The last region marker in `text` whose following words resolve:
    (place, the text before the marker, the marker as written)."""
    for m in reversed(list(_MARKER_RE.finditer(text))):
        after = text[m.end() :]
        hit = resolver.leading(after, _marker_kind(m.group("marker")))
        if hit is not None:
            return hit, text[: m.start()], " ".join(m.group("marker").split())
    return None


def _city_or_province(code: str) -> str:
    """The city (or province) a code lies in: the code itself when it is one."""
    return code if code.count(".") <= 1 else ancestors(code)[-2]


def parse_agency(
    label: str,
    regions: RegionTable,
    *,
    home: str | None = None,
    types: TypeTable | None = None,
) -> ParsedAgency:
    """Split an agency label into canonical type, office level and region (see the module doc).

    `home` is the region code all unqualified local offices belong to (e.g.
    "35.78" for Surabaya's data, whose labels never name the city); `types`
    defaults to the shipped table.
    """
    types = types or default_types()
    resolver = _Resolver(regions)
    # A label is one line: what follows a line break is complaint text pasted in.
    text = " ".join(label.strip().split("\n", 1)[0].split()).strip(_EDGE_PUNCT)
    text = _PROGRAM_SUFFIX_RE.sub("", text)
    text = _strip_courtesy(text)
    # "Aceh - Kanim Kelas I Banda Aceh": a leading province before a dash.
    lead = re.match(r"^(?P<place>[^-]+?)\s+-\s+(?P<rest>.+)$", text, re.DOTALL)
    if lead and resolver.place(lead.group("place"), "province") is not None:
        if types.match(lead.group("rest")) is not None:
            text = lead.group("rest")
    rule = types.match(text)
    rule_level = rule.level if rule is not None else None

    place: _Place | None = None
    rest = text
    how = ""
    found = _marker_region(text, resolver)
    if found is not None:
        place, rest, marker = found
        how = f"region from '{marker} {place.words}'"
    unit = _UNIT_RE.match(_tidy(rest))
    if unit is not None:
        word = unit.group("unit").casefold().rstrip(".").split()[-1]
        unit_level = "kecamatan" if word in ("kecamatan", "kec", "camat") else "kelurahan"
        if rule is None or not rule.type or rule.level == unit_level:
            return _unit_result(label, rule, unit_level, unit.group("name"), place, home, resolver)
    if rule is not None and rule.level in ("kecamatan", "kelurahan"):
        type_ = rule.type or ("Kecamatan" if rule.level == "kecamatan" else "Kelurahan/Desa")
        return ParsedAgency(
            label, type_, rule.level, None, "no place name in label", bool(rule.type)
        )

    if place is None and rule_level not in ("national",):
        tail = resolver.trailing(text, "branch" if rule_level == "branch" else "any")
        if tail is not None:
            place, rest = tail
            how = f"region from '{place.words}'"
    if place is not None and place.note:
        how += f" ({place.note})"

    type_ = rule.type if rule is not None and rule.type else _own_type(rest) or _own_type(text)
    from_table = rule is not None and bool(rule.type)
    code = place.region.code if place is not None else None

    def result(level: str, region_code: str | None, evidence: str) -> ParsedAgency:
        return ParsedAgency(label, type_, level, region_code, evidence, from_table)

    if rule_level == "national":
        return result("national", None, "national body: no region")
    if rule_level == "branch":
        if code is not None:
            return result("branch", code, how)
        if home is not None:
            return result("branch", _city_or_province(home), f"home region {home}")
        return result("branch", None, "no region in label")
    if rule_level == "province":
        if code is not None:
            province = ancestors(code)[-1]
            if province != code:
                how += f", province {province}"
            return result("province", province, how)
        if home is not None:
            return result("province", ancestors(home)[-1], f"home region {home}")
        return result("province", None, "no region in label")
    # local government, or a label no row names
    if code is not None:
        return result(level_of(code) if code.count(".") <= 1 else "city", code, how)
    if home is not None:
        home_code = _city_or_province(home)
        return result(level_of(home_code), home_code, f"home region {home}")
    return result("city", None, "no region in label")


def _unit_result(
    label: str,
    rule: TypeRule | None,
    level: str,
    name: str,
    place: _Place | None,
    home: str | None,
    resolver: _Resolver,
) -> ParsedAgency:
    """A kelurahan/desa or kecamatan office: look its name up below the region named or home."""
    type_ = (
        rule.type
        if rule is not None and rule.type
        else ("Kelurahan/Desa" if level == "kelurahan" else "Kecamatan")
    )
    from_table = rule is not None and bool(rule.type)
    name = _tidy(name)
    within = place.region.code if place is not None else home
    via = f" (within '{place.words}')" if place is not None else ""
    region, how = resolver.unit(name, level, within) if name else (None, "no name")
    if region is None and level == "kelurahan" and re.search(r"\s*-\s*", name):
        # "Wonorejo - Rungkut": the kecamatan after the dash tells two namesakes apart.
        village, district = re.split(r"\s*-\s*", name, maxsplit=1)
        kec, _ = resolver.unit(district.strip(), "kecamatan", within)
        if kec is not None:
            region, how = resolver.unit(village.strip(), "kelurahan", kec.code)
            how += f" (kecamatan '{district.strip()}')"
    if region is None:
        return ParsedAgency(label, type_, level, None, how + via, from_table)
    return ParsedAgency(label, type_, level, region.code, how + via, from_table)
