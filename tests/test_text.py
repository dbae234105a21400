"""data.text: normalisation, PII redaction, counting and log snippets.

Every number and address here is made up (sequential digits, runs of zeros);
none comes from the real data.
"""

from __future__ import annotations

import random
import re
import unicodedata

import pytest

from data.text import PII_KINDS, PLACEHOLDERS, count_pii, normalize_text, redact, snippet

NONE = dict.fromkeys(PII_KINDS, 0)
TEN_DIGITS = re.compile(r"\d{10}")
EMAIL_LIKE = re.compile(r"[^\s@\[\]]+@[^\s@]+\.[A-Za-z]{2,}")


def counts(**kinds: int) -> dict[str, int]:
    return {**NONE, **kinds}


# --------------------------------------------------------------------------
# normalize_text
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  jalan   rusak  ", "jalan rusak"),
        ("jalan\trusak\r\nparah\x0bsekali\x0cpak", "jalan rusak parah sekali pak"),
        ("lampu\u00a0mati\u2003di\u3000gang\u202f3", "lampu mati di gang 3"),
        ("sam\u200bpah\u200c menum\u200dpuk\u2060 lagi\ufeff", "sampah menumpuk lagi"),
        ("\ufeffKTP belum jadi", "KTP belum jadi"),
        ("pe\u00adnga\u00adduan", "pengaduan"),
        ("air\x00mati\x07sejak\x1bpagi\x7fpak\x85bu", "air mati sejak pagi pak bu"),
        ("trotoar\u200ebolong\u200fparah\u2028lagi\u2029ya", "trotoar bolong parah lagi ya"),
        ("cafe\u0301 di Jl. Mawar", "café di Jl. Mawar"),  # NFC composes
        ("luas 20 m² dan ½ kavling ﬁx", "luas 20 m² dan ½ kavling ﬁx"),  # no NFKC
        ("nomor ０８１２ fullwidth", "nomor ０８１２ fullwidth"),  # no NFKC
        ("Yth. Bapak\\nMohon dibantu\\n\\nTerima kasih", "Yth. Bapak Mohon dibantu Terima kasih"),
        ("nik:\\r\\n1234\\tok", "nik: 1234 ok"),
        ("Matur nuwun ðŸ™\x8f", "Matur nuwun 🙏"),  # cp1252 mojibake with a latin-1 byte
        ("Matur nuwun \u00f0\u009f\u0099\u008f\u00f0\u009f\u0099\u008f", "Matur nuwun 🙏🙏"),
        ("luas 20 mÂ², sedih ðŸ˜\u00ad", "luas 20 m², sedih 😭"),
        ("dia bilang â€œbesokâ€\u009d", "dia bilang “besok”"),
        ("Pengaduan café, résumé, naïve — ok", "Pengaduan café, résumé, naïve — ok"),
        ("rusak \ud800 parah", "rusak \ufffd parah"),  # lone surrogate replaced
        ("rusak \udfff", "rusak \ufffd"),
        ("emoji \ud83d\ude4f pair", "emoji 🙏 pair"),  # a surrogate pair is joined
        ("", ""),
        (" \t\n\u200b\u00a0 ", ""),
    ],
)
def test_text_normalize_cleans_unicode(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def _all_chars(categories: tuple[str, ...]) -> list[str]:
    return [
        chr(cp)
        for cp in range(0x110000)
        if not 0xD800 <= cp <= 0xDFFF and unicodedata.category(chr(cp)) in categories
    ]


@pytest.mark.parametrize("categories", [("Cc",), ("Cf",), ("Zs", "Zl", "Zp")])
def test_text_normalize_handles_every_control_format_and_space_char(
    categories: tuple[str, ...],
) -> None:
    """Checks the module's hard-coded character list against this Python's Unicode database."""
    zero_width = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"}
    for ch in _all_chars(categories):
        expected = "ab" if ch in zero_width else "a b"
        assert normalize_text(f"a{ch}b") == expected, f"U+{ord(ch):04X}"


# Strings built to make one step expose work for another.
TRICKY = [
    "Ã\u200b©",  # removing the zero-width space joins a mojibake pair
    "e\u200b\u0301",  # ... or a base letter and its accent
    "Ã\u00a0",  # mojibake "à" whose second byte is a no-break space
    "Ã\u0083Â©",  # double mojibake
    "\\\\n\\n\\",
    "a\u00ad\u0301b",
    "\u0301 awal",
    "x\x8fy\x81z",
    "\ud83d\ude4f\ud83d",
]

ALPHABET = (
    list("abc ANR09\\n.-@+()")
    + ["\u200b", "\u200d", "\u00ad", "\ufeff", "\u00a0", "\u3000", "\t", "\n", "\x00", "\x85"]
    + ["\u0301", "\u0308", "Ã", "Â", "ð", "Ÿ", "™", "\x8f", "\x9d", "©", "²", "\u00a0", "€"]
    + ["\ud800", "\udc00", "\ud83d", "\ude4f", "🙏", "é", "\u200e", "\U000e0020"]
)


def _random_strings(seed: int, n: int, max_len: int = 40) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(ALPHABET, k=rng.randint(0, max_len))) for _ in range(n)]


def _check_normalized(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once, ascii(text)
    once.encode("utf-8")  # no lone surrogate survives
    assert once == once.strip(), ascii(text)
    assert "  " not in once, ascii(text)
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in once), ascii(text)


@pytest.mark.parametrize("text", TRICKY)
def test_text_normalize_is_idempotent_on_tricky_strings(text: str) -> None:
    _check_normalized(text)


@pytest.mark.parametrize("seed", range(10))
def test_text_normalize_is_idempotent_and_total_on_random_strings(seed: int) -> None:
    for text in _random_strings(seed, n=500):
        _check_normalized(text)


# --------------------------------------------------------------------------
# redact / count_pii: what is replaced
# --------------------------------------------------------------------------

REDACTED = [
    # NIK: 16 digits, however grouped
    ("NIK saya 1234567890123456 tp ditolak", "NIK saya [NIK] tp ditolak", counts(nik=1)),
    ("nik: 1234 5678 9012 3456, mohon dicek", "nik: [NIK], mohon dicek", counts(nik=1)),
    ("No. KK 1234.5678.9012.3456 a.n. bapak", "No. KK [NIK] a.n. bapak", counts(nik=1)),
    ("kk 1234-5678-9012-3456 udah didaftarkan", "kk [NIK] udah didaftarkan", counts(nik=1)),
    ("NIK 123456 010190 0001 ya", "NIK [NIK] ya", counts(nik=1)),
    ("nik 12.34.56.010190.0001", "nik [NIK]", counts(nik=1)),
    ("NIK:1234567890123456,alamat", "NIK:[NIK],alamat", counts(nik=1)),
    (
        "Nama: Budi\\nNIK\\n1234567890123456\\nAlamat",
        "Nama: Budi\\nNIK\\n[NIK]\\nAlamat",
        counts(nik=1),
    ),
    # exactly 16 digits is a NIK even with a phone-like start
    ("nik anak 6281000000000001 kok beda", "nik anak [NIK] kok beda", counts(nik=1)),
    ("nik 0812000000000001 salah ketik?", "nik [NIK] salah ketik?", counts(nik=1)),
    ("ktp 0812 0000 0000 0001", "ktp [NIK]", counts(nik=1)),
    # other ID-like numbers
    ("kartu BPJS 0001234567890 tdk aktif", "kartu BPJS [NOMOR] tdk aktif", counts(nomor=1)),
    ("bpjs no 0001 2345 67890 ditolak rs", "bpjs no [NOMOR] ditolak rs", counts(nomor=1)),
    ("sdh transfer ke rek 1234567890 bank", "sdh transfer ke rek [NOMOR] bank", counts(nomor=1)),
    ("NPWP 01.234.567.8-901.000 salah", "NPWP [NOMOR] salah", counts(nomor=1)),
    ("PBB nop 35.78.000.000.000-0001.0 tagihan", "PBB nop [NOMOR] tagihan", counts(nomor=1)),
    (
        "no pendaftaran B20220000012 blm diproses",
        "no pendaftaran B[NOMOR] blm diproses",
        counts(nomor=1),
    ),
    ("nik 123456789012345 (kurang 1 digit)", "nik [NOMOR] (kurang 1 digit)", counts(nomor=1)),
    ("Rp1500000000 contiguous", "Rp[NOMOR] contiguous", counts(nomor=1)),
    # mobile phones
    ("tolong hubungi 0812-3456-7890 ya pak", "tolong hubungi [TELEPON] ya pak", counts(telepon=1)),
    ("hub 0812 3456 7890 sore", "hub [TELEPON] sore", counts(telepon=1)),
    ("hp 0812.3456.7890", "hp [TELEPON]", counts(telepon=1)),
    ("no hp 081234567890 gak aktif", "no hp [TELEPON] gak aktif", counts(telepon=1)),
    ("telp 0812345678 (10 digit)", "telp [TELEPON] (10 digit)", counts(telepon=1)),
    ("wa 0812345678901 (13 digit)", "wa [TELEPON] (13 digit)", counts(telepon=1)),
    ("Bu RT +62 812-3456-7890 ga angkat", "Bu RT [TELEPON] ga angkat", counts(telepon=1)),
    ("+62-812-3456-7890 pak RW", "[TELEPON] pak RW", counts(telepon=1)),
    ("kontak 6281234567890 aja", "kontak [TELEPON] aja", counts(telepon=1)),
    ("62 812 3456 7890 nomernya", "[TELEPON] nomernya", counts(telepon=1)),
    ("+6281234567890.", "[TELEPON].", counts(telepon=1)),
    ("(+62) 812 3456 7890", "[TELEPON]", counts(telepon=1)),
    ("+62 0812 3456 7890 salah format", "[TELEPON] salah format", counts(telepon=1)),
    ("WA 081234567890", "WA [TELEPON]", counts(telepon=1)),
    ("hp:081234567890", "hp:[TELEPON]", counts(telepon=1)),
    ("WA081234567890 ya", "WA[TELEPON] ya", counts(telepon=1)),
    ("ketua RT (Hp 081 234 56 78 90) RT 3", "ketua RT (Hp [TELEPON]) RT 3", counts(telepon=1)),
    ("(0812) 3456 7890 mbak", "[TELEPON] mbak", counts(telepon=1)),
    ("0812 - 3456 - 7890 pak", "[TELEPON] pak", counts(telepon=1)),
    # landlines
    ("telp kantor (021) 1234567 mati", "telp kantor [TELEPON] mati", counts(telepon=1)),
    ("telp 021-1234567 ga nyambung", "telp [TELEPON] ga nyambung", counts(telepon=1)),
    ("(031) 567 8901 kelurahan", "[TELEPON] kelurahan", counts(telepon=1)),
    ("call 031-5678901 / 0341 123456", "call [TELEPON] / [TELEPON]", counts(telepon=2)),
    ("telp +62 31 5678901", "telp [TELEPON]", counts(telepon=1)),
    # e-mail
    ("email sy budi.santoso99@contoh.com", "email sy [EMAIL]", counts(email=1)),
    ("kirim ke warga_rt03@contoh.co.id ya", "kirim ke [EMAIL] ya", counts(email=1)),
    ("(siti.aminah+lapor@contoh.id)", "([EMAIL])", counts(email=1)),
    ("pakai 081234567890@contoh.net", "pakai [EMAIL]", counts(email=1)),
    # several in one text
    (
        "Sy Budi NIK 1234567890123456 WA 0812-3456-7890 email budi@contoh.com, rek 1234567890",
        "Sy Budi NIK [NIK] WA [TELEPON] email [EMAIL], rek [NOMOR]",
        counts(nik=1, telepon=1, email=1, nomor=1),
    ),
    ("hp 081234567890 081298765432", "hp [TELEPON] [TELEPON]", counts(telepon=2)),
    ("no 123 0812 3456 7890", "no 123 [TELEPON]", counts(telepon=1)),
    ("wa 081234567890 nik 1234567890123456", "wa [TELEPON] nik [NIK]", counts(telepon=1, nik=1)),
    ("x@contoh.com1234567890", "[EMAIL][NOMOR]", counts(email=1, nomor=1)),
]


@pytest.mark.parametrize(("text", "expected", "expected_counts"), REDACTED)
def test_text_redact_replaces_pii(
    text: str, expected: str, expected_counts: dict[str, int]
) -> None:
    assert redact(text) == expected
    assert count_pii(text) == expected_counts


@pytest.mark.parametrize(("text", "expected", "_counts"), REDACTED)
def test_text_redact_is_idempotent_and_leaves_nothing_to_count(
    text: str, expected: str, _counts: dict[str, int]
) -> None:
    assert redact(expected) == expected
    assert count_pii(expected) == NONE


# --------------------------------------------------------------------------
# redact / count_pii: what is kept
# --------------------------------------------------------------------------

KEPT = [
    "kejadian tgl 12-01-2022 jam 08.00 di depan pasar",
    "sudah lapor 12/01/2022 dan 15/01/2022 blm ada respon",
    "tgl 2022-01-05 pukul 10:30:00",
    "jam pelayanan 08.00-12.00 13.00-15.00 tapi tutup",
    "tgl 08 12 2022 10 orang antri",
    "dari 01.02.2022-03.04.2022 sampai sekarang",
    "bayar Rp 1.500.000 padahal Rp1500000 katanya",
    "anggaran Rp 1.500.000.000 kemana?",
    "total 2.500.000.000,- untuk saluran",
    "penghasilan cuma 500.000-600.000 sebulan",
    "dimintai Rp. 10.000-50.000 tiap bulan",
    "Rp 100 500 000 000 ditulis spasi",
    "RT 03 RW 05 Kel. Mawar, rumah no 12A",
    "Jl. Kenanga No. 123 Blok C-7 kode pos 60234",
    "tahun 2021 dan 2022 sama saja, 3x lapor",
    "antrian nomor 157 dari 200",
    "nomor surat 100.3/123-45/436.7.2/2022",
    "bisa dicek di @dinaskebersihan.sby ya",
    "mention @pemkot dan @dispenduk",
    "budi di rumah @ jam 7",
    "kelas 7 8 9 semua libur",
    "0812 saja yg diingat",
    "harga 081.000 per meter",
]


@pytest.mark.parametrize("text", KEPT)
def test_text_redact_keeps_non_personal_numbers(text: str) -> None:
    assert redact(text) == text
    assert count_pii(text) == NONE


@pytest.mark.parametrize(("text", "_expected", "expected_counts"), REDACTED)
def test_text_personal_identifiers_are_what_redact_replaces(
    text: str, _expected: str, expected_counts: dict[str, int]
) -> None:
    from data.text import personal_identifiers

    keys = personal_identifiers(text)
    assert 1 <= len(keys) <= sum(expected_counts.values())  # repeats are one key
    for key in keys:
        assert "@" in key or key.isdigit()


@pytest.mark.parametrize("text", KEPT)
def test_text_personal_identifiers_skip_what_redact_keeps(text: str) -> None:
    from data.text import personal_identifiers

    assert personal_identifiers(text) == frozenset()


def test_text_personal_identifiers_compare_phones_and_emails_as_written_differently() -> None:
    from data.text import personal_identifiers

    same = {"081234567890", "budi@contoh.id"}
    assert personal_identifiers("hp 0812-3456-7890, Budi@Contoh.ID") == same
    assert personal_identifiers("wa +62 812 3456 7890 / budi@contoh.id") == same
    assert personal_identifiers("(+62) 0812 3456 7890") == {"081234567890"}


def test_text_count_pii_reports_every_kind() -> None:
    assert set(count_pii("apa saja")) == set(PII_KINDS) == set(PLACEHOLDERS)


@pytest.mark.parametrize("placeholder", list(PLACEHOLDERS.values()))
def test_text_placeholders_cannot_be_redacted_again(placeholder: str) -> None:
    assert not re.search(r"\d|@", placeholder)
    assert redact(f"no {placeholder} ya") == f"no {placeholder} ya"


# --------------------------------------------------------------------------
# Property-style checks on generated texts
# --------------------------------------------------------------------------

WORDS = (
    "mohon dibantu pak bu jalan rusak lampu mati sampah sudah lapor tapi belum ada "
    "tindak lanjut nggih matur nuwun kulo warga RT RW no gang kelurahan kecamatan "
    "tgl jam Rp ketua hubungi WA hp telp nik kk email bpjs rek"
).split()


def _fake_nik(rng: random.Random) -> str:
    digits = "".join(rng.choices("0123456789", k=16))
    sep = rng.choice(["", " ", ".", "-"])
    if not sep:
        return digits
    return sep.join(digits[i : i + 4] for i in range(0, 16, 4))


def _fake_mobile(rng: random.Random) -> str:
    rest = "".join(rng.choices("0123456789", k=rng.randint(7, 10)))
    body = "8" + rng.choice("1235789") + rest
    prefix = rng.choice(["0", "+62 ", "+62-", "62", "+62"])
    sep = rng.choice(["", " ", "-", "."])
    groups = [body[:3], body[3:7], body[7:]]
    return prefix + sep.join(g for g in groups if g)


def _fake_landline(rng: random.Random) -> str:
    area = rng.choice(["021", "031", "0341", "0274"])
    number = "".join(rng.choices("0123456789", k=rng.randint(6, 7)))
    return rng.choice([f"({area}) {number}", f"{area}-{number}", f"{area}{number}"])


def _fake_email(rng: random.Random) -> str:
    user = rng.choice(["budi", "siti.aminah", "warga_rt03", "ani99", "x"])
    return f"{user}{rng.randint(0, 999)}@{rng.choice(['contoh.com', 'contoh.co.id', 'mail.id'])}"


def _fake_account(rng: random.Random) -> str:
    return "".join(rng.choices("123456789", k=1) + rng.choices("0123456789", k=rng.randint(9, 14)))


FAKES = [_fake_nik, _fake_mobile, _fake_landline, _fake_email, _fake_account]


def _generated(seed: int) -> tuple[str, list[str]]:
    """A complaint-like text with some personal data in it, and that data."""
    rng = random.Random(seed)
    parts: list[str] = []
    secrets: list[str] = []
    for _ in range(rng.randint(3, 60)):
        roll = rng.random()
        if roll < 0.15:
            secret = rng.choice(FAKES)(rng)
            secrets.append(secret)
            parts.append(secret + rng.choice(["", ",", ".", ")"]))
        elif roll < 0.25:
            parts.append(str(rng.randint(0, 99_999)))
        else:
            parts.append(rng.choice(WORDS))
    return rng.choice([" ", "  ", "\n", " \\n"]).join(parts), secrets


@pytest.mark.parametrize("batch", range(10))
def test_text_redact_removes_generated_pii(batch: int) -> None:
    for seed in range(batch * 50, batch * 50 + 50):
        text, secrets = _generated(seed)
        redacted = redact(text)
        for secret in secrets:
            assert secret not in redacted, f"seed {seed}: a {len(secret)}-char secret left"
        assert not TEN_DIGITS.search(redacted), f"seed {seed}"
        assert not EMAIL_LIKE.search(redacted), f"seed {seed}"
        assert redact(redacted) == redacted, f"seed {seed}"
        assert count_pii(redacted) == NONE, f"seed {seed}"
        assert sum(count_pii(text).values()) >= len(secrets), f"seed {seed}"


def _random_digit_soup(seed: int) -> str:
    rng = random.Random(seed)
    pieces = rng.choices(
        ["0", "8", "6", "2", "1", "9", " ", ".", "-", "+", "(", ")", "@", "a"], k=60
    )
    return "".join(pieces)


@pytest.mark.parametrize("batch", range(10))
def test_text_redact_is_idempotent_on_digit_soup(batch: int) -> None:
    for seed in range(batch * 100, batch * 100 + 100):
        text = _random_digit_soup(seed)
        once = redact(text)
        assert redact(once) == once, text
        assert count_pii(once) == NONE, text
        assert not TEN_DIGITS.search(once), text


# --------------------------------------------------------------------------
# snippet
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "max_chars", "expected"),
    [
        ("jalan  rusak\\ndi gang 3", 160, "jalan rusak di gang 3"),
        ("hub 0812-3456-7890 ya", 160, "hub [TELEPON] ya"),
        ("lampu jalan mati sudah seminggu", 20, "lampu jalan mati…"),
        ("lampu jalan mati sudah seminggu", 31, "lampu jalan mati sudah seminggu"),
        ("lampu jalan mati, sudah seminggu", 18, "lampu jalan mati…"),
        ("abcdefghijklmnopqrstuvwxyz", 10, "abcdefghi…"),
        ("nik 1234567890123456 mohon dicek", 12, "nik [NIK]…"),
        ("apa", 1, "…"),
        ("jalan rusak parah", 12, "jalan rusak…"),
    ],
)
def test_text_snippet_normalises_redacts_and_truncates(
    text: str, max_chars: int, expected: str
) -> None:
    assert snippet(text, max_chars) == expected


def test_text_snippet_redacts_before_cutting() -> None:
    text = "a" * 150 + " nik 1234567890123456"  # the cut would fall inside the NIK
    out = snippet(text, 160)
    assert "1234" not in out
    assert len(out) <= 160


@pytest.mark.parametrize("max_chars", [0, -5])
def test_text_snippet_rejects_a_non_positive_budget(max_chars: int) -> None:
    with pytest.raises(ValueError, match="max_chars"):
        snippet("jalan rusak", max_chars)


@pytest.mark.parametrize("batch", range(10))
def test_text_snippet_never_shows_pii(batch: int) -> None:
    for seed in range(batch * 50, batch * 50 + 50):
        text, secrets = _generated(seed)
        max_chars = random.Random(seed).choice([20, 60, 160, 1000])
        out = snippet(text, max_chars)
        assert len(out) <= max_chars, f"seed {seed}"
        assert not TEN_DIGITS.search(out), f"seed {seed}"
        assert not EMAIL_LIKE.search(out), f"seed {seed}"
        for secret in secrets:
            assert secret not in out, f"seed {seed}"
        full = redact(normalize_text(text))
        if out.endswith("…"):
            kept = out[:-1]
            assert full.startswith(kept), f"seed {seed}"
            assert len(kept) < len(full), f"seed {seed}"
        else:
            assert out == full, f"seed {seed}"
