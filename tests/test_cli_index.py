"""`aduan index add|stats`: filling the API's duplicate index from a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.bundle import Bundle
from model.dedup import DuplicateFinder, make_complaint
from model.index import open_index, read_index_identity

PLACES = [("Gubeng", "Airlangga"), ("Wonokromo", "Jagir"), ("Rungkut", "Kalirungkut")]


def _rows(n: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for i in range(n):
        kec, kel = PLACES[i % len(PLACES)]
        row: dict[str, object] = {
            "id": f"SBY-{i:04d}",
            "text": f"Lampu jalan di gang {i} mati sejak minggu lalu, mohon diperbaiki",
            "kecamatan": kec,
            "kelurahan": kel,
        }
        if i % 5:  # every fifth row has no time
            row["created_at"] = f"2022-05-{1 + i % 28:02d}T08:00:00"
        rows.append(row)
    return rows


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def model(tiny_bundle: Bundle, tmp_path: Path) -> Path:
    """The tiny bundle saved where the CLI can load it."""
    folder = tmp_path / "bundle"
    tiny_bundle.save(folder)
    return folder


def _add(model: Path, data: Path, index: Path, *extra: str) -> list[str]:
    return ["index", "add", "--model", str(model), "--data", str(data), "--index", str(index),
            "--runtime", "torch", *extra]  # fmt: skip


def test_index_add_fills_the_index_as_the_api_would_and_resumes(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import run

    index = tmp_path / "index"
    rows = _rows(30)
    # an interrupted earlier run: the first 10 rows are already there
    assert run(_add(model, _write(tmp_path / "first.jsonl", rows[:10]), index)) == 0
    capsys.readouterr()
    data = _write(tmp_path / "all.jsonl", rows)
    assert run(_add(model, data, index, "--commit-every", "7")) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert (report["added"], report["already_there"], report["size"]) == (20, 10, 30)
    assert "6 row(s) have no created_at" in err  # rows 0, 5, ..., 25
    assert run(_add(model, data, index)) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 0

    finder = DuplicateFinder(Bundle.load(model))
    assert read_index_identity(index) == (finder.embedding_id, finder.dim)  # no re-embedding
    with open_index(index, dim=finder.dim, embedding_id=finder.embedding_id) as idx:
        stored = idx.get(["SBY-0007", "SBY-0010"])
        want = make_complaint(
            str(rows[7]["text"]), id="SBY-0007", created_at="2022-05-08T08:00:00",
            kecamatan="Wonokromo", kelurahan="Jagir",
        )  # fmt: skip
        assert stored["SBY-0007"] == want
        assert stored["SBY-0010"].created_at is None
        vector = finder.embed([want.text])
        assert idx.search(vector, 1)[0][0].complaint.id == "SBY-0007"

    assert run(["index", "stats", "--index", str(index)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["size"] == 30 and stats["embedding_id"] == finder.embedding_id


def test_index_add_bad_file_and_missing_index_are_clean_errors(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import run

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "lampu mati"}\n{"id": "b", "text": \n', encoding="utf-8")
    index = tmp_path / "index"
    assert run(_add(model, bad, index)) == 2
    err = capsys.readouterr().err
    assert f"{bad}" in err and "line 2" in err and "Traceback" not in err
    assert not index.exists()  # nothing created for a file that cannot be read
    assert run(["index", "stats", "--index", str(index)]) == 2
    assert "no index here" in capsys.readouterr().err
    index.mkdir()
    (index / "index.sqlite3").write_bytes(b"not a database")
    assert run(["index", "stats", "--index", str(index)]) == 2
    assert "damaged or not an aduan index database" in capsys.readouterr().err
    (index / "index.sqlite3").unlink()
    index.rmdir()
    assert run(_add(tmp_path / "nope", _write(tmp_path / "ok.jsonl", _rows(2)), index)) == 2
    assert "no model bundle" in capsys.readouterr().err


def test_index_add_while_another_process_holds_the_index_is_a_clean_error(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import run

    index = tmp_path / "index"
    finder = DuplicateFinder(Bundle.load(model))
    with open_index(index, dim=finder.dim, embedding_id=finder.embedding_id):  # the server
        assert run(_add(model, _write(tmp_path / "ok.jsonl", _rows(2)), index)) == 2
    err = capsys.readouterr().err
    assert str(index) in err and "Traceback" not in err
