"""load_complaints: every format to one schema, and errors a user can act on."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from data import Complaints, DataError, load_complaints
from data.schema import CREATED_AT, ID, LOCATION_FIELDS, TEXT
from data.text import normalize_text

# Made-up complaints in the style of a city complaint channel.
ROWS: list[dict[str, Any]] = [
    {
        "id": "c-001",
        "text": "Lampu PJU di Jl. Kenanga mati sudah seminggu, mohon segera diperbaiki.",
        "created_at": "2022-03-01T08:15:00",
        "agency": "Dinas Sumber Daya Air dan Bina Marga",
        "topic": "Penerangan Jalan",
        "city": "Surabaya",
        "kecamatan": "Tegalsari",
    },
    {
        "id": "c-002",
        "text": "Sampah   menumpuk di depan pasar, baunya sampai ke rumah warga.",
        "created_at": "2022-03-02T10:00:00",
        "agency": "Dinas Lingkungan Hidup",
        "topic": "Kebersihan",
        "city": "Surabaya",
        "kecamatan": "Wonokromo",
    },
    {
        "id": "c-003",
        "text": 'Saluran air di gang 3 mampet, kalau hujan "banjir" setinggi lutut.',
        "created_at": "2022-03-03T19:45:00",
        "agency": "Dinas Sumber Daya Air dan Bina Marga",
        "topic": "Drainase",
        "city": "Surabaya",
        "kecamatan": "Rungkut",
    },
    {
        "id": "c-004",
        "text": "Pengurusan KTP elektronik di kelurahan lambat, sudah dua bulan belum jadi.",
        "created_at": "2022-03-04T07:30:00",
        "agency": "Dinas Kependudukan dan Pencatatan Sipil",
        "topic": "",
        "city": "Surabaya",
        "kecamatan": "Sukolilo",
    },
]
COLUMNS = ["id", "text", "created_at", "agency", "topic", "city", "kecamatan"]
EXPECTED_COLUMNS = [ID, TEXT, CREATED_AT, "agency", "topic", *LOCATION_FIELDS]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def write_json(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), "utf-8")
    return path


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_tsv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Plain TSV: no quoting, so a text's quote characters are written as they are."""
    names = list(rows[0])
    lines = ["\t".join(names)] + ["\t".join(str(r[n] or "") for n in names) for r in rows]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_folder(path: Path, rows: list[dict[str, Any]]) -> Path:
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


WRITERS: dict[str, tuple[str, Callable[[Path, list[dict[str, Any]]], Path]]] = {
    "jsonl": ("complaints.jsonl", write_jsonl),
    "json": ("complaints.json", write_json),
    "csv": ("complaints.csv", write_csv),
    "tsv": ("complaints.tsv", write_tsv),
    "parquet": ("complaints.parquet", write_parquet),
    "folder": ("complaints_hf", write_folder),
}


def write(fmt: str, tmp_path: Path, rows: list[dict[str, Any]] = ROWS) -> Path:
    name, writer = WRITERS[fmt]
    return writer(tmp_path / name, rows)


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_load_every_format_gives_standard_schema(fmt: str, tmp_path: Path) -> None:
    source = write(fmt, tmp_path)
    c = load_complaints(source, label_columns=("agency", "topic"))

    assert isinstance(c, Complaints)
    assert c.dataset.column_names == EXPECTED_COLUMNS
    assert all(f.dtype == "string" for f in c.dataset.features.values())
    assert c.ids() == [r["id"] for r in ROWS]
    assert c.texts() == [normalize_text(r["text"]) for r in ROWS]
    assert c.created_at() == [r["created_at"] for r in ROWS]
    assert c.labels("agency") == [r["agency"] for r in ROWS]
    assert c.labels("topic") == ["Penerangan Jalan", "Kebersihan", "Drainase", None]
    assert c.dataset["city"] == ["Surabaya"] * 4
    assert c.dataset["region_code"] == [None] * 4
    assert (c.n_read, len(c), c.n_dropped_empty) == (4, 4, 0)
    assert c.n_unlabelled == {"agency": 0, "topic": 1}
    assert c.label_columns == ("agency", "topic")


@pytest.mark.parametrize("fmt", [f for f in WRITERS if f != "jsonl"])
def test_load_every_format_has_same_fingerprint_as_jsonl(fmt: str, tmp_path: Path) -> None:
    reference = load_complaints(write("jsonl", tmp_path), label_columns=("agency", "topic"))
    other = load_complaints(write(fmt, tmp_path), label_columns=("agency", "topic"))
    assert other.fingerprint() == reference.fingerprint()


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_load_writes_nothing_next_to_the_source(fmt: str, tmp_path: Path) -> None:
    source = write(fmt, tmp_path / "in" if fmt == "folder" else tmp_path)
    before = tree(tmp_path)
    load_complaints(source)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "tsv", "parquet"])
def test_load_missing_text_column_names_file_and_columns(fmt: str, tmp_path: Path) -> None:
    rows = [{"id": r["id"], "isi": r["text"], "agency": r["agency"]} for r in ROWS]
    source = write(fmt, tmp_path, rows)
    with pytest.raises(DataError) as err:
        load_complaints(source)
    message = str(err.value)
    assert str(source) in message
    assert "no text column 'text'; columns are: id, isi, agency" in message
    assert "--text-column" in message


def test_load_text_column_and_id_column_map_other_names(tmp_path: Path) -> None:
    rows = [{"nomor": r["id"], "isi": r["text"], "label": r["topic"]} for r in ROWS]
    c = load_complaints(
        write("csv", tmp_path, rows), text_column="isi", id_column="nomor", label_columns=["label"]
    )
    assert c.ids() == [r["id"] for r in ROWS]
    assert c.texts() == [normalize_text(r["text"]) for r in ROWS]
    assert c.labels("label") == ["Penerangan Jalan", "Kebersihan", "Drainase", None]


def test_load_missing_label_column_is_named_with_columns(tmp_path: Path) -> None:
    source = write("jsonl", tmp_path)
    with pytest.raises(DataError, match=r"no label column 'instansi'; columns are: id, text"):
        load_complaints(source, label_columns=["agency", "instansi"])


def test_load_labels_of_unloaded_column_is_an_error(tmp_path: Path) -> None:
    c = load_complaints(write("jsonl", tmp_path), label_columns=["agency"])
    with pytest.raises(DataError, match="not loaded as a label column"):
        c.labels("topic")


def test_load_bad_json_line_gives_line_number(tmp_path: Path) -> None:
    source = tmp_path / "rusak.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in ROWS]
    lines[2] = lines[2][:-5]  # truncated record on line 3
    source.write_text("\n".join(lines) + "\n", "utf-8")
    with pytest.raises(DataError) as err:
        load_complaints(source)
    message = str(err.value)
    assert message.startswith(f"{source}: line 3 is not valid JSON")
    assert "Saluran" not in message  # never quotes the complaint


def test_load_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    source = tmp_path / "campur.jsonl"
    source.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(["bukan", "objek"]) + "\n")
    with pytest.raises(DataError, match=r"line 3 is a JSON list, not an object"):
        load_complaints(source)


def test_load_bad_json_file_gives_line_and_column(tmp_path: Path) -> None:
    source = tmp_path / "rusak.json"
    source.write_text('[\n {"id": "a", "text": "jalan rusak"},\n {"id": "b" "text": "x"}\n]')
    with pytest.raises(DataError, match=r"rusak\.json: not valid JSON \(.* at line 3, column"):
        load_complaints(source)


def test_load_empty_text_rows_are_dropped_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [
        *ROWS,
        {**ROWS[0], "id": "c-005", "text": "   "},
        {**ROWS[1], "id": "c-006", "text": ""},
    ]
    rows.append({**ROWS[2], "id": "c-007", "text": None})
    with caplog.at_level(logging.WARNING, logger="aduan.data"):
        c = load_complaints(write("jsonl", tmp_path, rows))
    assert (c.n_read, len(c), c.n_dropped_empty) == (7, 4, 3)
    assert c.ids() == ["c-001", "c-002", "c-003", "c-004"]
    warning = caplog.records[-1]
    assert warning.levelno == logging.WARNING
    assert "dropped 3 row(s) with empty text" in warning.getMessage()
    assert "c-005, c-006, c-007" in warning.getMessage()
    assert all("Lampu" not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_load_generates_ids_from_file_stem_and_row(fmt: str, tmp_path: Path) -> None:
    rows = [{"text": r["text"], "agency": r["agency"]} for r in ROWS]
    rows.insert(1, {"text": " ", "agency": "Dinas Perhubungan"})
    source = write(fmt, tmp_path, rows)
    first = load_complaints(source)
    # row 1 was dropped (empty text); ids keep counting the rows read
    assert first.ids() == ["complaints-0", "complaints-2", "complaints-3", "complaints-4"]
    assert load_complaints(source).ids() == first.ids()


def test_load_duplicate_ids_name_the_id_and_lines(tmp_path: Path) -> None:
    rows = [*ROWS, {**ROWS[3], "id": "c-002"}]
    with pytest.raises(DataError) as err:
        load_complaints(write("jsonl", tmp_path, rows))
    message = str(err.value)
    assert "duplicate id 'c-002' at line 2 and line 5" in message
    assert "KTP" not in message


def test_load_duplicate_id_that_is_personal_data_is_redacted(tmp_path: Path) -> None:
    rows = [{**ROWS[0], "id": "3578012345678901"}, {**ROWS[1], "id": "3578012345678901"}]
    with pytest.raises(DataError) as err:
        load_complaints(write("jsonl", tmp_path, rows))
    message = str(err.value)
    assert "duplicate id '[NIK]' at line 1 and line 2" in message
    assert "3578012345678901" not in message


def test_load_missing_column_list_redacts_and_shortens_names(tmp_path: Path) -> None:
    """A header-less CSV read with a header: its first complaint becomes the column names."""
    source = tmp_path / "tanpa-header.csv"
    first = "Lampu mati sejak lama di depan rumah saya hubungi 081234567890"
    source.write_text(f"1,{first},pelapor@example.com\n2,jalan rusak,Dinas PU\n", "utf-8")
    with pytest.raises(DataError) as err:
        load_complaints(source)
    message = str(err.value)
    assert "columns are: 1, Lampu mati sejak lama di depan rumah sa…, [EMAIL]." in message
    assert "081234567890" not in message and "hubungi" not in message


def test_load_duplicate_ids_in_csv_name_rows(tmp_path: Path) -> None:
    rows = [*ROWS, {**ROWS[0]}]
    with pytest.raises(DataError, match=r"duplicate id 'c-001' at data row 1 and data row 5"):
        load_complaints(write("csv", tmp_path, rows))


def test_load_empty_id_is_an_error(tmp_path: Path) -> None:
    rows = [*ROWS, {**ROWS[0], "id": ""}]
    with pytest.raises(DataError, match=r"line 5 has an empty 'id'"):
        load_complaints(write("jsonl", tmp_path, rows))


def test_load_require_labels_drops_and_counts_unlabelled(tmp_path: Path) -> None:
    rows = [*ROWS, {**ROWS[0], "id": "c-005", "agency": None, "topic": "  "}]
    source = write("jsonl", tmp_path, rows)
    kept = load_complaints(source, label_columns=["agency", "topic"])
    assert len(kept) == 5
    assert kept.n_unlabelled == {"agency": 1, "topic": 2}
    assert kept.labels("agency")[-1] is None

    strict = load_complaints(source, label_columns=["agency", "topic"], require_labels=True)
    assert strict.ids() == ["c-001", "c-002", "c-003"]
    assert strict.n_unlabelled == {"agency": 1, "topic": 2}


def test_load_csv_keeps_ids_and_labels_as_strings(tmp_path: Path) -> None:
    rows = [{"id": f"00{i}", "text": r["text"], "label": str(i % 2)} for i, r in enumerate(ROWS)]
    c = load_complaints(write("csv", tmp_path, rows), label_columns=["label"])
    assert c.ids() == ["000", "001", "002", "003"]
    assert c.labels("label") == ["0", "1", "0", "1"]


def test_load_csv_keeps_na_text_as_text(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "text": "NA", "agency": "NA"},
        {"id": "b", "text": "Jalan rusak", "agency": ""},
    ]
    c = load_complaints(write("csv", tmp_path, rows), label_columns=["agency"])
    assert c.texts() == [normalize_text("NA"), normalize_text("Jalan rusak")]
    assert c.labels("agency") == ["NA", None]


def test_load_tsv_quote_characters_do_not_merge_rows(tmp_path: Path) -> None:
    source = tmp_path / "kutip.tsv"
    source.write_text(
        'id\ttext\n1\tkata "warga jalan berlubang\n2\tlampu mati\n3\tgot "mampet" lagi\n', "utf-8"
    )
    c = load_complaints(source)
    assert c.ids() == ["1", "2", "3"]
    assert c.texts()[0] == normalize_text('kata "warga jalan berlubang')


def test_load_malformed_csv_names_file(tmp_path: Path) -> None:
    source = tmp_path / "rusak.csv"
    source.write_text('id,text\n1,jalan rusak\n2,"lampu mati\n3,got mampet\n', "utf-8")
    with pytest.raises(DataError, match=r"rusak\.csv: could not read as CSV \(ParserError"):
        load_complaints(source)


@pytest.mark.parametrize(
    ("name", "content", "line", "fields", "header"),
    [
        # a trailing comma: pandas took the id as the index and shifted every column left
        ("t.csv", "id,text,agency\n1,jalan rusak,Dinas PU,\n2,lampu mati,Dishub,\n", 2, 4, 3),
        ("rusak.csv", "id,text\n1,jalan rusak\n2,lampu mati,ekstra,kolom\n", 3, 4, 2),
        ("t.tsv", "id\ttext\n1\tjalan rusak\n\n2\tlampu\tmati\n", 4, 3, 2),
    ],
)
def test_load_row_with_more_fields_than_the_header_names_the_line(
    tmp_path: Path, name: str, content: str, line: int, fields: int, header: int
) -> None:
    source = tmp_path / name
    source.write_text(content, "utf-8")
    with pytest.raises(DataError) as err:
        load_complaints(source)
    message = str(err.value)
    assert message.startswith(f"{source}: line {line} has {fields} fields, the header has {header}")
    assert "rusak" not in message.removeprefix(str(source))


def test_load_csv_quoted_delimiters_and_newlines_stay_in_their_field(tmp_path: Path) -> None:
    source = tmp_path / "kutip.csv"
    source.write_text(
        'id,text,agency\n1,"jalan, rusak\nparah",Dinas PU\n\n2,"lampu ""mati"", gelap",\n'
        '3,got mampet,"Dinas, SDA"\n',
        "utf-8",
    )
    c = load_complaints(source, label_columns=["agency"])
    assert c.ids() == ["1", "2", "3"]
    assert c.texts()[:2] == [normalize_text("jalan, rusak\nparah"), 'lampu "mati", gelap']
    assert c.labels("agency") == ["Dinas PU", None, "Dinas, SDA"]


def test_load_csv_with_fewer_fields_than_the_header_reads_them_as_missing(
    tmp_path: Path,
) -> None:
    source = tmp_path / "pendek.csv"
    source.write_text("id,text,agency\n1,jalan rusak\n2,lampu mati,Dishub\n", "utf-8")
    c = load_complaints(source, label_columns=["agency"])
    assert c.ids() == ["1", "2"] and c.labels("agency") == [None, "Dishub"]


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_load_invalid_utf8_deep_in_a_delimited_file_names_the_line(
    fmt: str, tmp_path: Path
) -> None:
    sep = "," if fmt == "csv" else "\t"
    lines = [f"id{sep}text"] + [f"{i}{sep}keluhan nomor {i} jalan rusak" for i in range(3000)]
    source = tmp_path / f"latin1.{fmt}"
    source.write_bytes(
        ("\n".join(lines) + "\n").encode() + f"3000{sep}caf".encode() + b"\xe9 rusak\n"
    )
    with pytest.raises(DataError) as err:
        load_complaints(source)
    assert str(err.value) == (
        f"{source}: line 3002 is not valid UTF-8 (byte 8); save the file as UTF-8"
    )


def test_load_read_errors_print_nothing_of_their_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """`datasets` logs "Failed to read file ..." (which may quote a cell) before raising;
    only aduan's DataError may report it."""
    bad_csv = tmp_path / "rusak.csv"
    bad_csv.write_text('id,text\n1,"jalan rusak\n', "utf-8")
    not_parquet = tmp_path / "bukan.parquet"
    not_parquet.write_text("bukan parquet", "utf-8")
    bad_parquet = write_parquet(tmp_path / "rusak.parquet", ROWS * 50)
    content = bytearray(bad_parquet.read_bytes())
    content[100:1100] = bytes(b ^ 0x5A for b in content[100:1100])  # data pages, not the footer
    bad_parquet.write_bytes(content)
    with caplog.at_level(logging.DEBUG):
        for source in (bad_csv, not_parquet, bad_parquet):
            with pytest.raises(DataError, match="could not read as"):
                load_complaints(source)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "Failed to read" not in capfd.readouterr().err
    assert logging.getLogger("datasets").level != logging.CRITICAL + 1  # restored


def write_empty_parquet(path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}), path
    )
    return path


@pytest.mark.parametrize(
    ("name", "content", "detail"),
    [
        ("kosong.csv", "id,text,agency\n", " (only a header)"),
        ("kosong2.csv", "id,text,agency\n\n\n", " (only a header)"),
        ("kosong.tsv", "id\ttext\n", " (only a header)"),
        ("kosong.jsonl", "", " (the file is empty or holds only blank lines)"),
        ("kosong2.jsonl", "\n  \n\n", " (the file is empty or holds only blank lines)"),
        ("kosong.json", "[]", " (an empty array)"),
        ("kosong2.json", '{"data": []}', " (an empty array)"),
        ("kosong3.json", " \n", " (the file is empty)"),
        ("kosong.parquet", None, ""),
    ],
)
def test_load_source_without_rows_says_so(
    tmp_path: Path, name: str, content: str | None, detail: str
) -> None:
    source = tmp_path / name
    if content is None:
        write_empty_parquet(source)
    else:
        source.write_text(content, "utf-8")
    with pytest.raises(DataError) as err:
        load_complaints(source)
    assert str(err.value) == f"{source}: no rows{detail}"


@pytest.mark.parametrize("suffix", [".xlsx", ".txt", ""])
def test_load_unsupported_extension_lists_supported(suffix: str, tmp_path: Path) -> None:
    source = tmp_path / f"keluhan{suffix}"
    source.write_text("id,text\n1,jalan rusak\n")
    with pytest.raises(DataError) as err:
        load_complaints(source)
    message = str(err.value)
    assert str(source) in message and "unsupported file type" in message
    assert ".jsonl, .json, .csv, .tsv, .parquet" in message


def test_load_missing_file_is_a_data_error(tmp_path: Path) -> None:
    source = tmp_path / "tidak-ada.jsonl"
    with pytest.raises(DataError, match=r"tidak-ada\.jsonl: no such file or folder"):
        load_complaints(source)


def test_load_unknown_bare_name_lists_registered_sets() -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'surabaya-2023'.*surabaya-2022"):
        load_complaints("surabaya-2023")


def test_load_created_at_must_be_iso_8601(tmp_path: Path) -> None:
    rows = [*ROWS, {**ROWS[0], "id": "c-005", "created_at": "1 Maret 2022"}]
    with pytest.raises(DataError) as err:
        load_complaints(write("jsonl", tmp_path, rows))
    assert "line 5: created_at is not an ISO 8601 date/time" in str(err.value)
    assert "Maret" not in str(err.value)


def test_load_created_at_is_canonical_iso(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [
        {"id": "a", "text": "jalan rusak", "created_at": "2022-05-01 07:00"},
        {"id": "b", "text": "lampu mati", "created_at": "2022-05-02"},
        {"id": "c", "text": "got mampet", "created_at": None},
    ]
    c = load_complaints(write("jsonl", tmp_path, rows))
    assert c.created_at() == ["2022-05-01T07:00:00", "2022-05-02T00:00:00", None]


def test_load_limit_reads_first_rows(tmp_path: Path) -> None:
    for fmt in ("jsonl", "csv", "parquet"):
        c = load_complaints(write(fmt, tmp_path), limit=2)
        assert (c.n_read, c.ids()) == (2, ["c-001", "c-002"])


def test_load_datasetdict_folder_picks_split(tmp_path: Path) -> None:
    import datasets

    folder = tmp_path / "dd"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(ROWS[:3]),
            "test": datasets.Dataset.from_list(ROWS[3:]),
        }
    ).save_to_disk(str(folder))
    assert load_complaints(folder).ids() == ["c-001", "c-002", "c-003"]  # default: train
    assert load_complaints(folder, split="test").ids() == ["c-004"]
    with pytest.raises(DataError, match=r"no split 'valid'; splits are: train, test"):
        load_complaints(folder, split="valid")


def test_load_split_on_single_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="only applies to registered sets"):
        load_complaints(write("jsonl", tmp_path), split="test")


def test_load_fingerprint_is_stable_and_sensitive(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    a = write("jsonl", tmp_path / "a")
    fp = load_complaints(a, label_columns=["agency"]).fingerprint()
    assert fp == load_complaints(a, label_columns=["agency"]).fingerprint()
    assert fp["rows"] == 4
    assert fp["label_counts"] == {
        "agency": {
            "Dinas Kependudukan dan Pencatatan Sipil": 1,
            "Dinas Lingkungan Hidup": 1,
            "Dinas Sumber Daya Air dan Bina Marga": 2,
        }
    }
    changed = [*ROWS[:3], {**ROWS[3], "agency": "Dinas Lingkungan Hidup"}]
    b = write("jsonl", tmp_path, changed)
    assert load_complaints(b, label_columns=["agency"]).fingerprint()["sha256"] != fp["sha256"]


def test_concat_joins_rows_of_the_same_columns(tmp_path: Path) -> None:
    """Train and dev of one split joined (to fit on both): rows in order; a column that
    is empty in one part (an all-null label) still joins."""
    path = write("jsonl", tmp_path)
    c = load_complaints(path, label_columns=["agency"])
    first, second = c.select([0, 1]), c.select([2, 3])
    empty = second.with_labels("agency", [None, None])
    joined = first.concat(empty)
    assert joined.ids() == c.ids() and joined.texts() == c.texts()
    assert joined.labels("agency") == [*first.labels("agency"), None, None]
    with pytest.raises(ValueError, match="different columns"):
        first.concat(load_complaints(path))


def test_load_importing_data_stays_light() -> None:
    code = "import sys, data; print('torch' in sys.modules, 'datasets' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["False", "False"], out.stderr
