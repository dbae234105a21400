"""The agency directory (data/directory.py) and the shipped sample directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data.directory import (
    COLUMNS,
    Directory,
    DirectoryError,
    Office,
    label_key,
)
from data.schema import DataError
from model.regions import Region, RegionTable

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
HEADER = ",".join(COLUMNS)
GOOD_ROWS = [
    "dishub-sby,Dinas Perhubungan Kota Surabaya,Dinas Perhubungan,city,35.78,Dishub Surabaya",
    "kel-keputih,Kelurahan Keputih,Kelurahan/Desa,kelurahan,35.78.09.1001,",
    "kemensos,Kementerian Sosial,Kementerian Sosial,national,,Kemensos|Depsos",
    "bpjs-kc-sby,BPJS Kesehatan Kantor Cabang Surabaya,BPJS Kesehatan Kantor Cabang,branch,35.78,",
    "dinsos,Dinas Sosial,Dinas Sosial,city,,",
]


@pytest.fixture()
def regions() -> RegionTable:
    return RegionTable.from_regions(
        [
            Region("35", "Jawa Timur", "province"),
            Region("35.78", "Kota Surabaya", "city"),
            Region("35.78.09", "Sukolilo", "kecamatan"),
            Region("35.78.09.1001", "Keputih", "kelurahan"),
        ]
    )


def _write(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "directory.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_read_good_file(tmp_path: Path, regions: RegionTable) -> None:
    d = Directory.read(_write(tmp_path, GOOD_ROWS), regions=regions)
    assert len(d) == 5
    assert [o.id for o in d.offices] == sorted(o.id for o in d.offices)
    kemensos = d.get("kemensos")
    assert kemensos == Office(
        "kemensos",
        "Kementerian Sosial",
        "Kementerian Sosial",
        "national",
        None,
        ("Kemensos", "Depsos"),
    )
    assert kemensos.to_dict()["aliases"] == ["Kemensos", "Depsos"]
    assert d.get("nope") is None
    assert d.source.endswith("directory.csv")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["x,Nama,Tipe,city,35.78,"] + ["", "y,Nama Y,,city,35.78,"], "line 4: empty type"),
        (["x,,Tipe,city,35.78,"], "line 2: empty name"),
        ([",Nama,Tipe,city,35.78,"], "line 2: empty id"),
        (["Dishub,Nama,Tipe,city,35.78,"], "line 2: id 'Dishub' is not valid"),
        (["-x,Nama,Tipe,city,35.78,"], "line 2: id '-x' is not valid"),
        (
            ["x,Nama A,Tipe,city,35.78,", "x,Nama B,Tipe,city,35.78,"],
            "line 3: duplicate id 'x' (already on",
        ),
        (
            ["a,Kelurahan  dr. Soetomo,T,city,,", "b,kelurahan DR SOETOMO,T,city,,"],
            "line 3: name 'kelurahan DR SOETOMO' is already used by office 'a'",
        ),
        (
            ["a,Dinas A,T,city,,Dishub", "b,Dinas B,T,city,,dishub."],
            "line 3: alias 'dishub.' is already used by office 'a'",
        ),
        (["a,Dinas A,T,county,35.78,"], "line 2: unknown level 'county'"),
        (["a,Dinas A,T,city,35-78,"], "line 2: malformed region_code '35-78'"),
        (["a,Dinas A,T,city,35.78.09,"], "line 2: region_code '35.78.09' has 3 part(s) but a city"),
        (["a,Dinas A,T,province,35.78,"], "has 2 part(s) but a province office needs 1"),
        (["a,Dinas A,T,kecamatan,35.78,"], "a kecamatan office needs 3"),
        (["a,Kel A,T,kelurahan,35.78.09,"], "a kelurahan office needs 4"),
        (["a,Kemensos,T,national,35,"], "line 2: a national office has no region"),
        (["a,Dinas A,T,city,35.71,"], "line 2: region_code '35.71' is not in the region table"),
        (["a,...,T,city,,"], "line 2: name '...' has no letters or digits"),
        (["a,Dinas A,T,city,35.78"], "line 2: 5 field(s), expected 6"),
        ([], "no offices, only the header"),
        (["", " , , , , , "], "no offices, only the header"),
    ],
)
def test_validation_errors(
    tmp_path: Path, regions: RegionTable, rows: list[str], message: str
) -> None:
    path = _write(tmp_path, rows)
    with pytest.raises(DirectoryError) as info:
        Directory.read(path, regions=regions)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert isinstance(info.value, DataError)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("id,name,type,level,region_code", "line 1: missing column(s) aliases"),
        (HEADER + ",notes", "line 1: unexpected column(s) notes"),
        ("id,name,type,level,region,aliases", "missing column(s) region_code; unexpected"),
    ],
)
def test_header_errors(tmp_path: Path, header: str, message: str) -> None:
    with pytest.raises(DirectoryError, match="header must be") as info:
        Directory.read(_write(tmp_path, [], header=header))
    assert message in str(info.value)


def test_header_order_is_free(tmp_path: Path) -> None:
    path = _write(
        tmp_path, ["Dinas A,a,,T,city,35.78"], header="name,id,aliases,type,level,region_code"
    )
    assert Directory.read(path).get("a") == Office("a", "Dinas A", "T", "city", "35.78")


def test_empty_region_allowed_except_meaning_national(tmp_path: Path) -> None:
    rows = [
        "a,Dinas A,T,city,,",
        "b,Kecamatan B,Kecamatan,kecamatan,,",
        "c,BPJS C,B,branch,,",
        "d,BPJS D,B,branch,35.78.09,",  # branch: any depth
    ]
    assert len(Directory.read(_write(tmp_path, rows))) == 4


def test_missing_file_and_bad_utf8(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError, match="no such directory file"):
        Directory.read(tmp_path / "absent.csv")
    path = tmp_path / "bad.csv"
    path.write_bytes(HEADER.encode() + b"\na,Dinas A,T,city,,\nb,Dinas \xff,T,city,,\n")
    with pytest.raises(DirectoryError, match=r"bad.csv line 3: not valid UTF-8"):
        Directory.read(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DirectoryError, match="empty"):
        Directory.read(empty)


def test_from_offices_validates() -> None:
    offices = [Office("a", "Dinas A", "T", "city", None), Office("a", "Dinas B", "T", "city", None)]
    with pytest.raises(DirectoryError, match=r"mine office 2: duplicate id 'a'"):
        Directory.from_offices(offices, source="mine")


def test_round_trip(tmp_path: Path, regions: RegionTable) -> None:
    d = Directory.read(_write(tmp_path, GOOD_ROWS), regions=regions)
    out = tmp_path / "sub" / "out.csv"
    d.write(out)
    again = Directory.read(out, regions=regions)
    assert again.offices == d.offices
    assert again.fingerprint() == d.fingerprint()
    assert out.read_text(encoding="utf-8") == d.to_csv()
    assert out.read_text(encoding="utf-8").splitlines()[0] == HEADER
    assert [p.name for p in out.parent.iterdir()] == ["out.csv"]  # no temp file left
    # names with commas and quotes survive
    tricky = Directory.from_offices(
        [Office("t", 'Dinas "X", Bagian Y', "T", "city", None, ("Alias, Z",))]
    )
    tricky.write(out)
    assert Directory.read(out).offices == tricky.offices


def test_lookup_ignores_case_spacing_punctuation(tmp_path: Path) -> None:
    d = Directory.read(_write(tmp_path, GOOD_ROWS))
    assert d.lookup("dinas perhubungan  KOTA surabaya") == d.get("dishub-sby")
    assert d.lookup("Dishub Surabaya.") == d.get("dishub-sby")
    assert d.lookup("KEMENSOS") == d.get("kemensos")
    assert d.lookup("Kelurahan Keputih ") == d.get("kel-keputih")
    assert d.lookup("Kelurahan Keputih Baru") is None
    assert label_key("Kelurahan  dr. Soetomo") == label_key("kelurahan dr soetomo")
    assert label_key("Barang/Jasa\n(BPPT)") == "barang jasa bppt"


def test_of_type_and_types(tmp_path: Path) -> None:
    d = Directory.read(_write(tmp_path, GOOD_ROWS))
    assert [o.id for o in d.of_type("Dinas Perhubungan")] == ["dishub-sby"]
    assert d.of_type("Nope") == ()
    assert d.types() == sorted(
        {
            "Dinas Perhubungan",
            "Kelurahan/Desa",
            "Kementerian Sosial",
            "BPJS Kesehatan Kantor Cabang",
            "Dinas Sosial",
        }
    )


def test_fingerprint_changes_on_rename(tmp_path: Path) -> None:
    d = Directory.read(_write(tmp_path, GOOD_ROWS))
    renamed = [
        o if o.id != "dinsos" else Office(o.id, "Dinas Sosial Kota", o.type, o.level, None)
        for o in d.offices
    ]
    assert Directory.from_offices(renamed).fingerprint() != d.fingerprint()
    assert Directory.from_offices(reversed(d.offices)).fingerprint() == d.fingerprint()


# --------------------------------------------------------------------------- shipped sample


def test_sample_directory_is_valid_and_covers_every_sample_label() -> None:
    regions = RegionTable.read(SAMPLES / "regions.csv")
    directory = Directory.read(SAMPLES / "directory.csv", regions=regions)
    rows = [
        json.loads(line)
        for line in (SAMPLES / "complaints.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    for row in rows:
        office = directory.lookup(row["agency"])
        assert office is not None, row["agency"]
        assert office.name == row["agency"]
        assert row["region_code"] in regions
        # the office serves the complaint's place (its city, or the kelurahan itself)
        assert office.region_code is not None
        assert row["region_code"].startswith(office.region_code), row["agency"]
    # every kelurahan of the sample regions in Surabaya has an office
    covered = {o.region_code for o in directory.of_type("Kelurahan/Desa")}
    surabaya_villages = [
        r.code for r in regions if r.level == "kelurahan" and r.code.startswith("35.78.")
    ]
    assert set(surabaya_villages) <= covered


def test_sample_files_are_up_to_date() -> None:
    """The shipped files are what the documented commands produce from the sample."""
    from data.load import load_complaints
    from training.build_directory import build_directory

    regions = RegionTable.read(SAMPLES / "regions.csv")
    complaints = load_complaints(SAMPLES / "complaints.jsonl", label_columns=["agency"])
    directory, _ = build_directory(
        complaints, regions, home="35.78", complete=("kelurahan", "kecamatan")
    )
    assert directory.to_csv() == (SAMPLES / "directory.csv").read_text(encoding="utf-8")


@pytest.mark.shared_data
def test_sample_regions_are_up_to_date(tmp_path: Path) -> None:
    """regions.csv is what `--sample-regions` writes from the shared region table."""
    from tests.conftest import skip_without_shared
    from training.build_directory import main, region_files

    skip_without_shared()
    if not all(p.is_file() for p in region_files(None)):
        pytest.skip("the shared regions folder is incomplete")
    out = tmp_path / "regions.csv"
    assert main(["--sample-regions", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == (SAMPLES / "regions.csv").read_text(encoding="utf-8")


def test_build_script_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from training.build_directory import main

    out = str(tmp_path / "d.csv")

    def build(data: Path, *options: str) -> int:
        return main(["--data", str(data), "--regions", str(SAMPLES / "regions.csv"),
                     *options, "--out", out])  # fmt: skip

    assert build(tmp_path / "absent.jsonl") == 2
    assert "absent.jsonl" in capsys.readouterr().err
    assert build(SAMPLES / "complaints.jsonl", "--home", "Kota Atlantis") == 2
    err = capsys.readouterr().err
    assert "--home: 'Kota Atlantis' matches no city or province" in err
    assert len(err.strip().splitlines()) == 1
    assert build(SAMPLES / "complaints.jsonl", "--home", "35.78", "--complete", "kelurahan") == 0
    assert len(Directory.read(out)) > 35


def test_build_summary_shows_no_label_with_personal_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # labels pasted from complaints (LAPOR! 2017 has some) are counted, not shown
    from training.build_directory import main

    rows = [
        {"text": "jalan rusak", "agency": "Dinas Atlantis"},
        {"text": "klaim belum cair", "agency": "BPJS cabang hubungi 0812-3456-7890"},
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = str(tmp_path / "d.csv")
    assert main(["--data", str(data), "--regions", str(SAMPLES / "regions.csv"), "--out", out]) == 0
    err = capsys.readouterr().err
    assert "'Dinas Atlantis'" in err and "0812" not in err
    assert "(+1 long, multi-line or personal-data labels not shown)" in err
