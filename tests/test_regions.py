"""Region codes, the region table and the gazetteer (model/regions.py).

Unit tests use a tiny table of well-known places built in code; the
`shared_data` tests read the official tables from the shared data folder
(never copied into the repo) and the Surabaya complaints (only counts are
printed: the corpus holds personal data).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from data.registry import SHARED_DATA_ENV, shared_data_dir
from model.regions import (
    LEVELS,
    Gazetteer,
    Region,
    RegionsError,
    RegionTable,
    Resolution,
    ancestors,
    is_within,
    level_of,
    normalize_place,
    parent_of,
)
from tests.conftest import skip_without_shared

HEADER = "code,name,level,parent_code\n"

# A few well-known places (codes as in the official table where it matters little).
PLACES: list[tuple[str, str, str]] = [
    ("31", "Daerah Khusus Ibukota Jakarta", "province"),
    ("31.74", "Kota Administrasi Jakarta Selatan", "regency_city"),
    ("33", "Jawa Tengah", "province"),
    ("33.18", "Kabupaten Pati", "regency_city"),
    ("33.18.01", "Sukolilo", "district"),
    ("33.22", "Kabupaten Semarang", "regency_city"),
    ("33.24", "Kabupaten Kendal", "regency_city"),
    ("33.74", "Kota Semarang", "regency_city"),
    ("33.74.10", "Tembalang", "district"),
    ("33.74.10.1001", "Bulusan", "village"),
    ("35", "Jawa Timur", "province"),
    ("35.78", "Kota Surabaya", "regency_city"),
    ("35.78.01", "Karang Pilang", "district"),
    ("35.78.03", "Rungkut", "district"),
    ("35.78.03.1005", "Wonorejo", "village"),
    ("35.78.05", "Tegalsari", "district"),
    ("35.78.05.1002", "Dr. Soetomo", "village"),
    ("35.78.05.1005", "Wonorejo", "village"),
    ("35.78.09", "Sukolilo", "district"),
    ("35.78.09.1001", "Keputih", "village"),
    ("35.78.12", "Pabean Cantian", "district"),
    ("35.78.12.1001", "Bongkaran", "village"),
    ("35.78.25", "Gunung Anyar", "district"),
]
SURABAYA, SUKOLILO, KEPUTIH = "35.78", "35.78.09", "35.78.09.1001"
TEMBALANG, KENDAL = "33.74.10", "33.24"


@pytest.fixture(scope="module")
def table() -> RegionTable:
    return RegionTable.from_regions(Region(c, n, lv) for c, n, lv in PLACES)


@pytest.fixture(scope="module")
def national(table: RegionTable) -> Gazetteer:
    return Gazetteer(table)


@pytest.fixture(scope="module")
def surabaya(table: RegionTable) -> Gazetteer:
    return Gazetteer(table, scope=(SURABAYA,))


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


GOOD_ROWS = ["35,Jawa Timur,province,", "35.78,Kota Surabaya,regency_city,35"]


# --------------------------------------------------------------------------- code helpers
def test_code_helpers() -> None:
    assert [level_of(c) for c in ("35", "35.78", "35.78.10", "35.78.10.1002")] == list(LEVELS)
    assert parent_of("35.78.10.1002") == "35.78.10"
    assert parent_of("35") is None
    assert ancestors("35.78.10.1002") == ["35.78.10.1002", "35.78.10", "35.78", "35"]
    assert ancestors("35") == ["35"]
    assert is_within("35.78.10.1002", "35.78") and is_within("35.78", "35.78")
    assert not is_within("35.78", "35.78.10") and not is_within("35.781", "35.78")
    for bad in ("", "3", "35.7", "35.78.1", "35.78.10.100", "35.78.", "ab", "35-78"):
        with pytest.raises(ValueError):
            level_of(bad)
    with pytest.raises(ValueError):
        parent_of("35.x")


def test_normalize_place() -> None:
    assert normalize_place("Gunung Anyar") == normalize_place("Gununganyar") == "gununganyar"
    assert normalize_place("Kab. Kendal") == normalize_place("KENDAL") == "kendal"
    assert normalize_place("dr. Soetomo") == normalize_place("Dr Soetomo")
    assert normalize_place("Kota Surabaya") == normalize_place("surabaya")
    assert normalize_place("Kota Administrasi Jakarta Selatan") == "jakartaselatan"
    assert normalize_place("Kota Adm. Jakarta Selatan") == "jakartaselatan"
    for marked in ("Kecamatan Tembalang", "kec. tembalang", "Kec Tembalang", "kec.tembalang"):
        assert normalize_place(marked) == "tembalang"
    for marked in ("Kelurahan Keputih", "kel. keputih", "Desa Keputih", "ds. keputih"):
        assert normalize_place(marked) == "keputih"
    assert normalize_place("Provinsi Jawa Timur") == normalize_place("prov. jawa timur")
    # Only whole admin words are dropped; a name that is only one keeps it.
    assert normalize_place("Kabanjahe") == "kabanjahe"
    assert normalize_place("Kotabaru") == "kotabaru"
    assert normalize_place("Kota") == "kota"
    assert normalize_place("Ｓｕｒａｂａｙａ") == "surabaya"  # NFKC (full-width letters)


# --------------------------------------------------------------------------- reading
def test_read_accepts_shared_and_aduan_levels(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "regions.csv",
        [
            *GOOD_ROWS,
            "35.78.09,Sukolilo,kecamatan,35.78",
            '35.78.09.1001,"Keputih, Timur",village,35.78.09',
        ],
    )
    t = RegionTable.read(path)
    assert len(t) == 4
    assert t.get("35.78") == Region("35.78", "Kota Surabaya", "city")
    assert t.get("35.78.09.1001") == Region("35.78.09.1001", "Keputih, Timur", "kelurahan")


def test_read_several_files(tmp_path: Path) -> None:
    a = write_csv(tmp_path / "regions.csv", [*GOOD_ROWS, "35.78.09,Sukolilo,district,35.78"])
    b = write_csv(tmp_path / "villages.csv", ["35.78.09.1001,Keputih,village,35.78.09"])
    assert len(RegionTable.read(a, b)) == 4
    with pytest.raises(RegionsError, match=r"villages\.csv line 2: parent_code '35\.78\.09'"):
        RegionTable.read(b)  # its parents are in the other file


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("35.7,Nowhere,regency_city,35", "line 4: malformed code '35.7'"),
        ("35.78.09,Sukolilo,regency_city,35.78", "line 4: level 'regency_city' does not agree"),
        ("35.78,Kota Surabaya,regency_city,35", "line 4: duplicate code '35.78' (already on"),
        ("35.78.09,Sukolilo,district,35", "line 4: parent_code '35' of '35.78.09' should be"),
        ("35.78.09,,district,35.78", "line 4: empty name"),
        ("35.78.09,Sukolilo,hamlet,35.78", "line 4: unknown level 'hamlet'"),
        ("35.78.09,Sukolilo,district", "line 4: expected 4 fields, found 3"),
    ],
)
def test_read_rejects_bad_rows_naming_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    path = write_csv(tmp_path / "regions.csv", [*GOOD_ROWS, row])
    with pytest.raises(RegionsError) as err:
        RegionTable.read(path)
    assert str(err.value).startswith(str(path))
    assert "regions.csv " + message in str(err.value)


def test_read_rejects_missing_columns_and_files(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "regions.csv", ["35,Jawa Timur,province"], "code,name,level\n")
    with pytest.raises(RegionsError, match=r"regions\.csv line 1: missing column\(s\) parent_code"):
        RegionTable.read(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(RegionsError, match=r"empty\.csv line 1: empty file"):
        RegionTable.read(empty)
    with pytest.raises(RegionsError, match=r"nope\.csv: region file not found"):
        RegionTable.read(tmp_path / "nope.csv")
    assert issubclass(RegionsError, ValueError)


def test_from_regions_validates() -> None:
    with pytest.raises(RegionsError, match="duplicate code '35'"):
        RegionTable.from_regions([Region("35", "Jawa Timur", "province")] * 2)
    with pytest.raises(RegionsError, match="malformed code"):
        RegionTable.from_regions([Region("35.7", "X", "city")])
    with pytest.raises(RegionsError, match="does not agree"):
        RegionTable.from_regions([Region("35", "Jawa Timur", "city")])


def test_write_read_round_trip(tmp_path: Path, table: RegionTable) -> None:
    path = tmp_path / "out.csv"
    table.write(path)
    back = RegionTable.read(path)
    assert len(back) == len(table)
    assert back.fingerprint() == table.fingerprint()
    assert list(back) == list(table)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "code,name,level,parent_code"
    assert "35.78,Kota Surabaya,city,35" in lines  # aduan level names
    assert len(table.fingerprint()) == 64
    other = RegionTable.from_regions([*table, Region("36", "Banten", "province")])
    assert other.fingerprint() != table.fingerprint()


def test_subset(table: RegionTable) -> None:
    sub = table.subset([SUKOLILO])
    assert sorted(r.code for r in sub) == ["35", SURABAYA, SUKOLILO, KEPUTIH]
    sub = table.subset(["35.78", "33.24"])
    assert "35.78.05.1002" in sub and "33" in sub and "33.24" in sub
    assert "33.74" not in sub and "31" not in sub
    with pytest.raises(KeyError):
        table.subset(["99"])


def test_lookups(table: RegionTable) -> None:
    assert len(table) == len(PLACES)
    assert SURABAYA in table and "99" not in table and 35 not in table
    assert table.get("99") is None
    assert [r.code for r in table.children(None)] == ["31", "33", "35"]
    assert [r.code for r in table.children(SUKOLILO)] == [KEPUTIH]
    assert table.children("99") == []
    assert table.display(KEPUTIH) == "Keputih, Kecamatan Sukolilo, Kota Surabaya"
    assert table.display(SUKOLILO) == "Kecamatan Sukolilo, Kota Surabaya"
    assert table.display(SURABAYA) == "Kota Surabaya"
    assert table.display("35") == "Jawa Timur"
    with pytest.raises(KeyError):
        table.display("99")


def test_find(table: RegionTable) -> None:
    assert [r.code for r in table.find("kab. kendal")] == [KENDAL]
    assert [r.code for r in table.find("KAB KENDAL")] == [KENDAL]
    assert [r.code for r in table.find("Kota Surabaya")] == [SURABAYA]
    assert [r.code for r in table.find("Sukolilo")] == ["33.18.01", SUKOLILO]
    assert [r.code for r in table.find("Sukolilo", within="35")] == [SUKOLILO]
    assert [r.code for r in table.find("Semarang", level="city")] == ["33.22", "33.74"]
    assert [r.code for r in table.find("Semarang", level="kecamatan")] == []
    assert [r.code for r in table.find("Gununganyar", level="district")] == ["35.78.25"]
    assert [r.code for r in table.find("Dr Soetomo")] == ["35.78.05.1002"]
    with pytest.raises(ValueError, match="unknown region level"):
        table.find("x", level="hamlet")


def test_fuzzy_find(table: RegionTable) -> None:
    hits = table.fuzzy_find("Tembalamg", level="kecamatan")
    assert [r.code for r, _ in hits] == [TEMBALANG]
    assert 88 <= hits[0][1] < 100
    hits = table.fuzzy_find("Pabean Cantikan", level="kecamatan", within=SURABAYA)
    assert [r.code for r, _ in hits] == ["35.78.12"]
    assert table.fuzzy_find("Pabean Cantikan", within="33") == []
    assert table.fuzzy_find("Keputih")[0] == (table.get(KEPUTIH), 100.0)
    assert table.fuzzy_find("Zzzzzz") == []
    assert table.fuzzy_find("") == []


# --------------------------------------------------------------------------- gazetteer
def test_region_code_first(national: Gazetteer) -> None:
    r = national.resolve("kec. tembalang", {"region_code": f" {KEPUTIH}. ", "city": "Semarang"})
    assert (r.code, r.level, r.source, r.confidence) == (KEPUTIH, "kelurahan", "region_code", 1.0)
    assert r.name == "Keputih, Kecamatan Sukolilo, Kota Surabaya"


def test_unknown_region_code_is_ignored(national: Gazetteer, surabaya: Gazetteer) -> None:
    r = national.resolve("", {"region_code": "35.99"})
    assert (r.code, r.source) == (None, "none")
    assert "region_code '35.99' not in the region table" in r.evidence
    r = national.resolve("banjir di kab. kendal", {"region_code": "35.99"})
    assert (r.code, r.source) == (KENDAL, "text")
    assert "region_code '35.99' not in the region table" in r.evidence
    r = surabaya.resolve("", {"region_code": "not a code"})
    assert r.source == "scope"
    assert not any("not a code" in e for e in r.evidence)
    # digits that are no code (a NIK, a phone number typed there) are not echoed either
    for typed in ("3578012345678901", "35.78.081234567890", "0812.3456.7890"):
        r = national.resolve("", {"region_code": typed})
        assert r.code is None and "region_code is not a region code; ignored" in r.evidence
        assert not any(typed in e for e in r.evidence)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("banjir di kab. kendal", KENDAL),
        ("KAB KENDAL banjir lagi", KENDAL),
        ("jalan rusak di kec. tembalang", TEMBALANG),
        ("sampah menumpuk di kel. keputih", KEPUTIH),
        ("macet di kota semarang", "33.74"),
        ("macet di kab semarang", "33.22"),
        ("macet di Semarang", "33.74"),  # unmarked: the city over the regency
        ("Kecamatan Tembalang, Kota Semarang", TEMBALANG),
        ("Jakarta Selatan banjir", "31.74"),
        ("Keputih Sukolilo Surabaya", KEPUTIH),  # unmarked, each within the next
        ("provinsi jawa timur", "35"),
    ],
)
def test_text_mentions(national: Gazetteer, text: str, code: str) -> None:
    r = national.resolve(text)
    assert (r.code, r.source) == (code, "text"), r.evidence
    assert r.level == level_of(code)
    assert 0 < r.confidence < 1


def test_text_evidence_quotes_only_place_words(national: Gazetteer) -> None:
    r = national.resolve("Pak Budi 081234 melapor sampah di kec. tembalang sejak senin")
    assert r.evidence == ("text 'kec. tembalang'",)
    assert "budi" not in json.dumps(r.to_dict()).casefold()


def test_street_is_not_a_place(surabaya: Gazetteer, national: Gazetteer) -> None:
    r = surabaya.resolve("Lampu PJU mati di Jl. Semarang no. 12 sejak kemarin")
    assert (r.code, r.source) == (SURABAYA, "scope")
    assert national.resolve("gg. semarang banjir").source == "none"
    assert national.resolve("jalan di Semarang rusak").code == "33.74"  # "jalan" = road


def test_ordinary_words_and_unmarked_lower_levels(national: Gazetteer, surabaya: Gazetteer) -> None:
    # A kecamatan/kelurahan name alone counts only inside another mention or the scope.
    assert national.resolve("rumah di Keputih banjir").source == "none"
    r = surabaya.resolve("rumah di Keputih banjir")
    assert (r.code, r.source) == (KEPUTIH, "text")
    r = national.resolve("rumah di Keputih, Surabaya banjir")
    assert r.code == KEPUTIH
    # Marker words used as ordinary words.
    assert national.resolve("taman kota ini kotor, desa kami juga").source == "none"


def test_ambiguity(national: Gazetteer, surabaya: Gazetteer) -> None:
    r = national.resolve("kec. sukolilo")
    assert r.code is None and r.level is None and r.source == "text"
    assert r.candidates == ("33.18.01", SUKOLILO)
    assert r.confidence <= 0.3
    assert any("ambiguous" in e for e in r.evidence)
    # Resolved by another mention ...
    assert national.resolve("kec. sukolilo, surabaya").code == SUKOLILO
    assert national.resolve("kec. sukolilo kab. pati").code == "33.18.01"
    # ... or by the scope, unless the text says otherwise.
    r = surabaya.resolve("kec. sukolilo")
    assert (r.code, r.candidates) == (SUKOLILO, ())
    assert surabaya.resolve("kec. sukolilo kab pati").code == "33.18.01"
    # Two villages of one city: their common ancestor.
    r = national.resolve("kel. wonorejo")
    assert (r.code, r.level) == (SURABAYA, "city")
    assert r.candidates == ("35.78.03.1005", "35.78.05.1005")
    assert r.to_dict()["name"] == "Kota Surabaya"


def test_typos_in_marked_text(national: Gazetteer, surabaya: Gazetteer) -> None:
    r = national.resolve("banjir di kec. tembalamg")
    assert (r.code, r.source) == (TEMBALANG, "text")
    assert r.evidence[0].startswith("text 'kec. tembalamg' ~ Tembalang (")
    assert r.confidence < national.resolve("kec. tembalang").confidence
    assert surabaya.resolve("banjir di kec. tembalamg").code == TEMBALANG  # outside the scope
    assert surabaya.resolve("kel. keputhi rusak").code == KEPUTIH
    assert national.resolve("kel. bulusn, kota semarang").code == "33.74.10.1001"


def test_location_fields(national: Gazetteer, surabaya: Gazetteer) -> None:
    loc = {"city": "Kota Surabaya", "kecamatan": "Sukolilo", "kelurahan": "Keputih"}
    r = national.resolve("", loc)
    assert (r.code, r.source, r.confidence) == (KEPUTIH, "location", 0.95)
    assert "location.kelurahan 'Keputih' within Kecamatan Sukolilo" in r.evidence
    # Spelling variants and typos, matched within the parent.
    r = national.resolve(
        "", {"city": "Surabaya", "kecamatan": "Pabean Cantikan", "kelurahan": "Bongkaran"}
    )
    assert (r.code, r.source) == ("35.78.12.1001", "location")
    assert 0.5 < r.confidence < 0.95
    assert (
        national.resolve("", {"city": "Surabaya", "kecamatan": "Karangpilang"}).code == "35.78.01"
    )
    assert national.resolve("", {"kecamatan": "Gununganyar"}).code == "35.78.25"
    assert surabaya.resolve("", {"kecamatan": "Sukolilo"}).code == SUKOLILO
    assert national.resolve("", {"kecamatan": "Sukolilo"}).candidates == ("33.18.01", SUKOLILO)
    # The kelurahan is in another kecamatan of the city: found there, and said so.
    r = national.resolve("", {"city": "Surabaya", "kecamatan": "Rungkut", "kelurahan": "Keputih"})
    assert r.code == KEPUTIH
    assert any("not in Kecamatan Rungkut" in e for e in r.evidence)
    # "Wonorejo Rungkut": qualified by its kecamatan's name.
    r = national.resolve(
        "", {"city": "Surabaya", "kecamatan": "Rungkut", "kelurahan": "Wonorejo Rungkut"}
    )
    assert r.code == "35.78.03.1005"
    # Kota vs Kabupaten.
    assert national.resolve("", {"city": "Kab. Semarang"}).code == "33.22"
    assert national.resolve("", {"city": "Semarang"}).code == "33.74"
    assert national.resolve("", {"city": "Semarang", "kecamatan": "Tembalang"}).code == TEMBALANG


def test_location_beats_text_and_text_refines_city(national: Gazetteer) -> None:
    loc = {"city": "Surabaya", "kecamatan": "Sukolilo", "kelurahan": "Keputih"}
    assert national.resolve("banjir di kec. tembalang kota semarang", loc).code == KEPUTIH
    r = national.resolve("banjir di kel. keputih", {"city": "Kota Surabaya"})
    assert (r.code, r.source) == (KEPUTIH, "text")
    assert r.evidence == ("location.city 'Kota Surabaya'", "text 'kel. keputih'")
    # Text outside the location's city does not move it.
    r = national.resolve("banjir di kec. tembalang", {"city": "Kota Surabaya"})
    assert (r.code, r.source) == (SURABAYA, "location")
    # Marked mentions in the address refine the fields.
    r = national.resolve("", {"city": "Surabaya", "address": "Jl. Kenjeran 5, Kel. Keputih"})
    assert (r.code, r.source) == (KEPUTIH, "location")
    # Unknown names fall through to the text, without quoting them.
    r = national.resolve("kab. kendal", {"kelurahan": "Rumah Pak Budi"})
    assert r.code == KENDAL
    assert not any("Budi" in e for e in r.evidence)


def test_scope_fallback_and_nothing_found(
    surabaya: Gazetteer, national: Gazetteer, table: RegionTable
) -> None:
    r = surabaya.resolve("lampu jalan mati sudah seminggu")
    assert (r.code, r.level, r.source, r.confidence) == (SURABAYA, "city", "scope", 0.5)
    assert r.evidence == ("deployment scope Kota Surabaya",)
    r = national.resolve("lampu jalan mati sudah seminggu")
    assert (r.code, r.level, r.source, r.evidence) == (None, None, "none", ("no place name found",))
    assert national.resolve().source == "none"
    two = Gazetteer(table, scope=("35.78", "33.74"))
    assert two.resolve("tidak ada tempat").code is None
    with pytest.raises(RegionsError, match="deployment scope"):
        Gazetteer(table, scope=("99",))


def test_resolution_to_dict(national: Gazetteer) -> None:
    d = national.resolve("kec. sukolilo").to_dict()
    assert json.loads(json.dumps(d)) == d
    assert set(d) == {"code", "level", "name", "source", "evidence", "confidence", "candidates"}
    assert d["candidates"] == ["33.18.01", SUKOLILO]
    r = Resolution(None, None, "none", ("no place name found",), 0.0)
    assert r.to_dict()["name"] is None


# --------------------------------------------------------------------------- shared data
def regions_dir() -> Path:
    root = shared_data_dir() / "regions"
    if not (root / "regions.csv").is_file() or not (root / "villages.csv").is_file():
        pytest.skip(
            f"official region tables not found at {root}; set ${SHARED_DATA_ENV} "
            "to the shared data folder"
        )
    return root


@pytest.fixture(scope="module")
def official() -> RegionTable:
    root = regions_dir()
    return RegionTable.read(root / "regions.csv", root / "villages.csv")


@pytest.mark.shared_data
def test_official_tables(official: RegionTable) -> None:
    counts = {lv: 0 for lv in LEVELS}
    for r in official:
        counts[r.level] += 1
    assert counts["province"] == 38
    assert counts["city"] > 500 and counts["kecamatan"] > 7000 and counts["kelurahan"] > 80000
    assert official.get("35.78") is not None and official.get("35.78").level == "city"  # type: ignore[union-attr]
    started = time.perf_counter()
    gazetteer = Gazetteer(official, scope=("35.78",))
    assert time.perf_counter() - started < 5
    r = gazetteer.resolve("banjir di kec. tembalang, kota semarang")
    assert r.level == "kecamatan" and is_within(r.code or "", "33.74")


@pytest.mark.shared_data
def test_surabaya_location_fields_resolve_to_kelurahan(official: RegionTable) -> None:
    skip_without_shared("surabaya-2022")
    gazetteer = Gazetteer(official, scope=("35.78",))
    path = shared_data_dir() / "surabaya" / "complaints-2022.jsonl"
    rows = resolved = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if not record.get("kelurahan"):
                continue
            rows += 1
            fields = {k: record.get(k) for k in ("city", "kecamatan", "kelurahan")}
            if gazetteer.resolve("", fields).level == "kelurahan":
                resolved += 1
    rate = resolved / rows
    print(f"surabaya: {resolved}/{rows} rows with a kelurahan resolve to one ({rate:.2%})")
    assert rows > 1000
    assert rate >= 0.95


def test_glued_government_prefixes_name_a_city(national: Gazetteer) -> None:
    r = national.resolve("mohon #pemkotsemarang segera perbaiki")
    assert r.code == "33.74" and r.source == "text", "pemkot: the Kota, not the Kabupaten"
    assert national.resolve("laporan untuk pemkabsemarang").code == "33.22"
    assert national.resolve("kotasurabaya banyak sampah").code == "35.78"
    assert national.resolve("kotakita semua").code is None, "not a place after the prefix"


def test_a_city_name_after_a_street_name_ends_the_street(national: Gazetteer) -> None:
    r = national.resolve("jalan berlubang di jl. kali progo semarang mohon diperbaiki")
    assert r.code == "33.74" and "semarang" in r.evidence[0]
    # the first word after the marker is the street's own name, even when it is a city's
    assert national.resolve("jalan berlubang di jl. semarang mohon diperbaiki").code is None
