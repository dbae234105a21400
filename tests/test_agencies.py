"""Parsing agency labels into (type, level, region): data/agencies.py and build_directory."""

from __future__ import annotations

import re

import pytest

from model.regions import Region, RegionTable, is_within
from tests.conftest import skip_without_shared
from training.agencies import PLACE_ALIASES, TypeTable, TypeTableError, default_types, parse_agency
from training.build_directory import build_directory, resolve_home

# Real codes and names (Kepmendagri), just the ones the examples need.
_ROWS = [
    ("12", "Sumatera Utara"),
    ("12.77", "Kota Padangsidimpuan"),
    ("16", "Sumatera Selatan"),
    ("16.71", "Kota Palembang"),
    ("31", "Daerah Khusus Ibukota Jakarta"),
    ("31.74", "Kota Administrasi Jakarta Selatan"),
    ("32", "Jawa Barat"),
    ("32.04", "Kabupaten Bandung"),
    ("32.73", "Kota Bandung"),
    ("32.73.16", "Kiaracondong"),
    ("33", "Jawa Tengah"),
    ("33.22", "Kabupaten Semarang"),
    ("33.24", "Kabupaten Kendal"),
    ("33.74", "Kota Semarang"),
    ("35", "Jawa Timur"),
    ("35.13", "Kabupaten Probolinggo"),
    ("35.22", "Kabupaten Bojonegoro"),
    ("35.74", "Kota Probolinggo"),
    ("35.78", "Kota Surabaya"),
    ("35.78.01", "Karang Pilang"),
    ("35.78.01.1002", "Kebraon"),
    ("35.78.03", "Rungkut"),
    ("35.78.03.1005", "Wonorejo"),
    ("35.78.05", "Tegalsari"),
    ("35.78.05.1002", "Dr. Soetomo"),
    ("35.78.05.1005", "Wonorejo"),
    ("35.78.09", "Sukolilo"),
    ("35.78.09.1001", "Keputih"),
    ("35.78.10", "Tambaksari"),
    ("62", "Kalimantan Tengah"),
    ("62.02", "Kabupaten Kotawaringin Timur"),
    ("62.71", "Kota Palangkaraya"),
]
_LEVEL = {1: "province", 2: "city", 3: "kecamatan", 4: "kelurahan"}


@pytest.fixture(scope="module")
def regions() -> RegionTable:
    return RegionTable.from_regions(
        Region(code, name, _LEVEL[code.count(".") + 1]) for code, name in _ROWS
    )


# label, home, type, level, region_code
CASES = [
    ("Dinas Pekerjaan Umum Kota Semarang", None, "Dinas Pekerjaan Umum", "city", "33.74"),
    (
        "Dinas Kependudukan dan Pencatatan Sipil Kabupaten Kendal",
        None,
        "Dinas Kependudukan dan Pencatatan Sipil",
        "city",
        "33.24",
    ),
    (
        "Dinas Pemberdayaan Masyarakat dan Desa Kab. Bojonegoro",
        None,
        "Dinas Pemberdayaan Masyarakat dan Desa",
        "city",
        "35.22",
    ),
    ("DINAS LINGKUNGAN HIDUP Probolinggo", None, "Dinas Lingkungan Hidup", "city", "35.74"),
    ("Kantor Walikota Jakarta Selatan", None, "Pemerintah Kota/Kabupaten", "city", "31.74"),
    ("Suku Dinas Perhubungan Jakarta Selatan", None, "Dinas Perhubungan", "city", "31.74"),
    ("Kecamatan Kiaracondong Kota Bandung", None, "Kecamatan", "kecamatan", "32.73.16"),
    ("Polrestabes Bandung", None, "Polres", "branch", "32.73"),
    ("BKN Kantor Regional VII Palembang", None, "BKN Kantor Regional", "branch", "16.71"),
    (
        "Kanwil Kementerian Hukum dan HAM Jawa Barat",
        None,
        "Kanwil Kementerian Hukum dan HAM",
        "province",
        "32",
    ),
    ("Kementerian Sosial", None, "Kementerian Sosial", "national", None),
    ("Kementerian Sosial", "35.78", "Kementerian Sosial", "national", None),
    ("Direktorat Jenderal Imigrasi", "35.78", "Direktorat Jenderal Imigrasi", "national", None),
    ("PT Pos Indonesia", None, "PT Pos Indonesia", "national", None),
    ("BPJS Kesehatan", "35.78", "BPJS Kesehatan", "national", None),
    ("Dinas Sosial", None, "Dinas Sosial", "city", None),
    ("Dinas Sosial", "35.78", "Dinas Sosial", "city", "35.78"),
    ("Dinas Sosial Jawa Tengah", None, "Dinas Sosial", "province", "33"),
    ("Pemerintah Provinsi DKI Jakarta", None, "Pemerintah Provinsi", "province", "31"),
    ("Kelurahan Kebraon", "35.78", "Kelurahan/Desa", "kelurahan", "35.78.01.1002"),
    ("Kelurahan dr. Soetomo", "35.78", "Kelurahan/Desa", "kelurahan", "35.78.05.1002"),
    ("Kelurahan Wonorejo - Rungkut", "35.78", "Kelurahan/Desa", "kelurahan", "35.78.03.1005"),
    ("Kelurahan Wonorejo-Tegalsari", "35.78", "Kelurahan/Desa", "kelurahan", "35.78.05.1005"),
    ("Kelurahan Wonorejo", "35.78", "Kelurahan/Desa", "kelurahan", None),  # two of them
    ("Kecamatan Tambaksari", "35.78", "Kecamatan", "kecamatan", "35.78.10"),
    ("RSUD dr. Mohamad Soewandhie", "35.78", "RSUD", "city", "35.78"),
    ("Rumah Sakit Umum Daerah Kota Semarang", None, "RSUD", "city", "33.74"),
    ("Satuan Polisi Pamong Praja", "35.78", "Satuan Polisi Pamong Praja", "city", "35.78"),
    (
        "Kantor Satuan Polisi Pamong Praja Kota Semarang",
        None,
        "Satuan Polisi Pamong Praja",
        "city",
        "33.74",
    ),
    (
        "Bagian Perekonomian dan Sumber Daya Alam",
        "35.78",
        "Bagian Perekonomian dan Sumber Daya Alam",
        "city",
        "35.78",
    ),
    (
        "Pemerintah Kota Semarang - Program BPNT Rastra",
        None,
        "Pemerintah Kota/Kabupaten",
        "city",
        "33.74",
    ),
    (
        "Kepala Dinas Kependudukan dan Catatan Sipil Kota Probolinggo",
        None,
        "Dinas Kependudukan dan Pencatatan Sipil",
        "city",
        "35.74",
    ),
]


@pytest.mark.parametrize(("label", "home", "type_", "level", "code"), CASES)
def test_parse_agency_examples(
    regions: RegionTable, label: str, home: str | None, type_: str, level: str, code: str | None
) -> None:
    p = parse_agency(label, regions, home=home)
    assert (p.type, p.level, p.region_code) == (type_, level, code), p.evidence
    assert p.label == label
    assert p.evidence


@pytest.mark.parametrize(
    ("label", "code"),
    [
        ("BPJS Kesehatan KC Sampit", "62.02"),
        ("BPJS Kesehatan KC Palangkaraya", "62.71"),
        ("BPJS Kesehatan KCU Padang Sidempuan", "12.77"),
        ("BPJS Kesehatan Cab Palembang", "16.71"),
        ("BPJS Kesehatan Kantor Cabang Semarang", "33.74"),
    ],
)
def test_branch_towns(regions: RegionTable, label: str, code: str) -> None:
    p = parse_agency(label, regions)
    assert (p.type, p.level, p.region_code) == ("BPJS Kesehatan Kantor Cabang", "branch", code)


def test_branch_alias_evidence_names_the_region(regions: RegionTable) -> None:
    p = parse_agency("BPJS Kesehatan KC Sampit", regions)
    assert "Kotawaringin Timur" in p.evidence
    assert "sampit" in PLACE_ALIASES


def test_evidence_says_how(regions: RegionTable) -> None:
    assert "Kabupaten Kendal" in parse_agency("Dinas Kesehatan Kabupaten Kendal", regions).evidence
    assert "home region 35.78" in parse_agency("Dinas Sosial", regions, home="35.78").evidence
    assert parse_agency("Dinas Sosial", regions).evidence == "no region in label"


@pytest.mark.parametrize(
    "label",
    [
        "Dinas Pekerjaan Umum",
        "Dinas Pekerjaan Umum dan Penataan Ruang Kabupaten Kendal",
        "Dinas PUPR Kota Semarang",
        "Dinas Sumber Daya Air dan Bina Marga",
        "Dinas Bina Marga Kota Semarang",
        "Pekerjaan Umum dan Penataan Ruang Kabupaten Kendal",
        "DPUPR Pemerintah Kabupaten Kendal",
    ],
)
def test_public_works_variants_share_a_type(regions: RegionTable, label: str) -> None:
    assert parse_agency(label, regions).type == "Dinas Pekerjaan Umum"


@pytest.mark.parametrize(
    ("label", "type_"),
    [
        (
            "Dinas Perumahan Rakyat dan Kawasan Permukiman serta Pertanahan",
            "Dinas Perumahan dan Kawasan Permukiman",
        ),
        ("Dinas Perindustrian dan Tenaga Kerja", "Dinas Tenaga Kerja"),
        ("Dinas Tenaga Kerja dan Transmigrasi", "Dinas Tenaga Kerja"),
        ("Badan Pengelola Lingkungan Hidup Daerah", "Dinas Lingkungan Hidup"),
        ("PDAM Tirto Moedal Kota Semarang", "PDAM"),
        ("Perumda Air Minum Tirtawening Kota Bandung", "PDAM"),
        ("RSUD Bhakti Dharma Husada", "RSUD"),
        ("Badan Penanggulangan Bencana Daerah", "Badan Penanggulangan Bencana Daerah"),
        ("BPJS Ketenagakerjaan Kacab Bandung", "BPJS Ketenagakerjaan Kantor Cabang"),
        ("Kanim Kelas I Khusus Jakarta Selatan", "Kantor Imigrasi"),
        ("Desa Sukamaju", "Kelurahan/Desa"),
    ],
)
def test_type_canonicalisation(regions: RegionTable, label: str, type_: str) -> None:
    assert parse_agency(label, regions).type == type_


def test_unmatched_label_keeps_its_text_less_the_region(regions: RegionTable) -> None:
    p = parse_agency("Dinas Kebudayaan dan Pariwisata Kota Bandung", regions)
    assert (p.type, p.region_code, p.type_from_table) == (
        "Dinas Kebudayaan dan Pariwisata",
        "32.73",
        False,
    )


def test_same_type_across_cities(regions: RegionTable) -> None:
    a = parse_agency("Dinas Perhubungan Kota Bandung", regions)
    b = parse_agency("Dinas Perhubungan", regions, home="35.78")
    assert a.type == b.type == "Dinas Perhubungan"
    assert (a.region_code, b.region_code) == ("32.73", "35.78")


def test_default_type_table_is_valid() -> None:
    table = default_types()
    assert "Dinas Pekerjaan Umum" in table.types()
    assert "Kelurahan/Desa" in table.types()
    rule = table.match("Kepala Dinas Sosial Kota Bandung")
    assert rule is not None and rule.type == "Dinas Sosial"
    other = table.match("Dinas Sosialita")  # a prefix must end at a word end
    assert other is not None and other.type == "" and other.level == "city"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind,level,patterns\n", "line 1: the header must be"),
        ("# comment\ntype,level,patterns\nX,county,x\n", "line 3: unknown level 'county'"),
        ("type,level,patterns\nX,city,dinas (x\n", "line 2: pattern 'dinas (x'"),
        ("type,level,patterns\nX,city,a||b\n", "line 2: empty pattern"),
        ("type,level,patterns\nX,city\n", "line 2: 2 field(s)"),
    ],
)
def test_type_table_errors(text: str, message: str) -> None:
    with pytest.raises(TypeTableError, match=re.escape(message)):
        TypeTable.from_text(text, "types.csv")


def test_custom_type_table(regions: RegionTable) -> None:
    table = TypeTable.from_text("type,level,patterns\nDinas Air,city,dinas sumber daya air\n")
    p = parse_agency("Dinas Sumber Daya Air dan Bina Marga", regions, home="35.78", types=table)
    assert (p.type, p.level, p.region_code, p.type_from_table) == (
        "Dinas Air",
        "city",
        "35.78",
        True,
    )


def test_build_directory_in_memory(regions: RegionTable) -> None:
    labels = ["Dinas Sosial", "Kelurahan Keputih", "Kelurahan Keputih", "kelurahan keputih.", None]
    directory, report = build_directory(labels, regions, home="35.78", complete=("kecamatan",))
    assert report.n_labels == 3
    office = directory.lookup("Kelurahan Keputih")
    assert office is not None and office.region_code == "35.78.09.1001"
    assert office.aliases == ("kelurahan keputih.",)
    assert directory.lookup("kelurahan keputih.") == office
    # every kecamatan of Surabaya in the table gets an office
    kecamatan = directory.of_type("Kecamatan")
    assert {o.region_code for o in kecamatan} == {
        "35.78.01",
        "35.78.03",
        "35.78.05",
        "35.78.09",
        "35.78.10",
    }
    assert report.n_completed == 5
    assert resolve_home("Kota Surabaya", regions) == "35.78"
    assert resolve_home("Kabupaten Semarang", regions) == "33.22"


@pytest.mark.shared_data
def test_shared_corpora_directories(capsys: pytest.CaptureFixture[str]) -> None:
    skip_without_shared("surabaya-2022")
    skip_without_shared("lapor-2017")
    from data.load import load_complaints
    from training.build_directory import region_files

    table = RegionTable.read(*region_files(None))
    sby = load_complaints("surabaya-2022", label_columns=["agency"])
    directory, report = build_directory(
        sby, table, home="35.78", complete=("kelurahan", "kecamatan")
    )
    gold = {lb for lb in sby.labels("agency") if lb}
    assert all(directory.lookup(lb) is not None for lb in gold)
    assert report.with_region == report.n_from_labels  # every Surabaya label resolved
    kelurahan = [lb for lb in gold if lb.startswith("Kelurahan")]
    for lb in kelurahan:
        office = directory.lookup(lb)
        assert office is not None and office.level == "kelurahan"
        assert office.region_code and is_within(office.region_code, "35.78"), lb
    # completion: every kelurahan and kecamatan of Surabaya has an office
    villages = [r for k in table.children("35.78") for r in table.children(k.code)]
    covered = {o.region_code for o in directory}
    assert all(r.code in covered for r in villages)
    assert all(k.code in covered for k in table.children("35.78"))

    lapor = load_complaints("lapor-2017", label_columns=["agency"])
    directory, report = build_directory(lapor, table)
    assert all(
        directory.lookup(lb) is not None for lb in lapor.labels("agency") if lb and lb.strip(". ")
    )
    regional = report.n_from_labels - report.national
    share = report.with_region / regional
    with capsys.disabled():
        print(
            f"\nLAPOR: {report.with_region}/{regional} non-national label offices with a region "
            f"({share:.0%}); type from table {report.typed_from_table}/{report.n_from_labels}"
        )
    assert share > 0.75
    assert report.typed_from_table / report.n_from_labels > 0.6
