"""data.pairs: reading pair files, and errors that name the line without personal data.

The formats and most of their checks are covered with the duplicate scorer in
test_dedup.py; these are the error paths.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from data import Complaints, DataError, load_complaints
from data.pairs import pairs_from_ids, read_pair_ids_csv, read_pairs_jsonl

NIK = "3578012345678901"


def _write_jsonl(path: Path, rows: Sequence[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _pair(name: str | int | None = None) -> dict[str, object]:
    row: dict[str, object] = {"a": {"text": "lampu mati"}, "b": {"text": "lampu jalan mati"}}
    if name is not None:
        row["pair"] = name
    return row


@pytest.fixture
def complaints(tmp_path: Path) -> Complaints:
    rows = [{"id": f"c{i}", "text": f"keluhan nomor {i}"} for i in range(4)]
    rows.append({"id": NIK, "text": "keluhan dengan id berupa NIK"})
    return load_complaints(_write_jsonl(tmp_path / "c.jsonl", rows))


# ------------------------------------------------------------------------ ids CSV


def test_ids_csv_invalid_utf8_is_a_data_error_naming_the_line(tmp_path: Path) -> None:
    csv = tmp_path / "pairs.csv"
    csv.write_bytes(b"id_a,id_b,label\nc0,c1,1\nr001,r\xe9,1\n")
    with pytest.raises(DataError) as err:
        read_pair_ids_csv(csv)
    assert str(err.value) == f"{csv}: line 3 is not valid UTF-8 (byte 6); save the file as UTF-8"


def test_ids_csv_unknown_id_that_is_personal_data_is_redacted(
    tmp_path: Path, complaints: Complaints
) -> None:
    csv = tmp_path / "pairs.csv"
    csv.write_text(f"id_a,id_b,label\nc0,c1,1\nc2,{NIK[:-1]}0,0\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        pairs_from_ids(csv, complaints)
    message = str(err.value)
    assert f"{csv}: line 3: id '[NIK]' is not in" in message
    assert NIK[:-1] not in message


def test_ids_csv_resolves_an_id_that_is_personal_data(
    tmp_path: Path, complaints: Complaints
) -> None:
    csv = tmp_path / "pairs.csv"
    csv.write_text(f"id_a,id_b,label\nc0,{NIK},1\n", encoding="utf-8")
    [pair] = pairs_from_ids(csv, complaints)
    assert (pair.a.id, pair.b.id, pair.label) == ("c0", NIK, True)


def test_ids_csv_errors_count_blank_lines(tmp_path: Path, complaints: Complaints) -> None:
    csv = tmp_path / "pairs.csv"
    csv.write_text("id_a,id_b,label\n\nc0,c1,1\n\nc2,c9,0\n", encoding="utf-8")
    assert read_pair_ids_csv(csv) == [("c0", "c1", True), ("c2", "c9", False)]
    with pytest.raises(DataError, match=r"pairs\.csv: line 5: id 'c9' is not in"):
        pairs_from_ids(csv, complaints)


# ------------------------------------------------------------------------ pairs JSONL


def test_pairs_jsonl_duplicate_name_that_is_personal_data_is_redacted(tmp_path: Path) -> None:
    f = _write_jsonl(tmp_path / "p.jsonl", [_pair(NIK), _pair("p2"), _pair(int(NIK))])
    with pytest.raises(DataError) as err:
        read_pairs_jsonl(f)
    message = str(err.value)
    assert message.startswith(f"{f}: line 3: pair '[NIK]' appears twice (first on line 1)")
    assert NIK not in message


def test_pairs_jsonl_unnamed_pairs_are_named_after_their_line(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    rows = [_pair(), _pair(), _pair(0), _pair("1")]
    f.write_text(
        "\n".join(json.dumps(r) for r in rows[:2])
        + "\n\n"
        + "\n".join(json.dumps(r) for r in rows[2:])
        + "\n",
        encoding="utf-8",
    )
    # the explicit names "0" and "1" no longer clash with the unnamed pairs' names
    assert [p.pair for p in read_pairs_jsonl(f)] == ["line-1", "line-2", "0", "1"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [_pair(), _pair("line-1")],
            "line 2: pair 'line-1' appears twice "
            "(line 1 has no 'pair' and is named after its line)",
        ),
        (
            [_pair("line-2"), _pair()],
            "line 2: pair 'line-2' appears twice "
            "(this line has no 'pair' and is named after it; line 1 uses it)",
        ),
    ],
)
def test_pairs_jsonl_clash_with_an_unnamed_pair_says_why(
    tmp_path: Path, rows: list[object], message: str
) -> None:
    f = _write_jsonl(tmp_path / "p.jsonl", rows)
    with pytest.raises(DataError) as err:
        read_pairs_jsonl(f)
    assert str(err.value).startswith(f"{f}: {message}; pair names must be unique")
