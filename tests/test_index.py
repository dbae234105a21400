"""The duplicate index (model/index.py): persistence, idempotent writes, exact filters,
IVF, damaged files, threads, and acknowledged writes surviving SIGKILL."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model import index as index_module
from model.index import (
    DB_FILE,
    SNAPSHOT_FILE,
    ComplaintIndex,
    ComplaintIndexError,
    FaissSqliteIndex,
    Hit,
    IndexedComplaint,
    SearchFilter,
    open_index,
)

ROOT = Path(__file__).resolve().parents[1]
DIM = 32
EMB = "test-embedding-v1"


def clustered(n: int, seed: int = 0, centres: int = 12, noise: float = 0.25) -> np.ndarray:
    """Normalised vectors around a few random centres (like topics of complaints)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, DIM)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + noise * rng.standard_normal((n, DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


KECAMATAN = ["Gubeng", "Tegalsari", "Wonokromo"]


def records(n: int, start: int = 0, prefix: str = "c") -> list[IndexedComplaint]:
    """Deterministic complaints with varied metadata (and made-up text)."""
    out = []
    for i in range(start, start + n):
        kec = i % 3
        out.append(
            IndexedComplaint(
                id=f"{prefix}{i}",
                text=f"keluhan contoh {i}",
                created_at=f"2022-03-{i % 28 + 1:02d}T{i % 24:02d}:00:00",
                region_code=f"35.78.0{kec + 1}.100{i % 2 + 1}",
                city="Kota Surabaya",
                kecamatan=KECAMATAN[kec],
                kelurahan=f"Kel {i % 2}",
                address=None,
                text_hash=f"h{i % 40}",
                snippet=f"keluhan contoh {i}"[:10],
            )
        )
    return out


def open_(path: Path, **options: object) -> FaissSqliteIndex:
    return open_index(path, dim=DIM, embedding_id=EMB, **options)


def exact_top(q: np.ndarray, x: np.ndarray, ids: list[str], k: int) -> list[list[str]]:
    s = q @ x.T
    return [[ids[j] for j in np.argsort(-row, kind="stable")[:k]] for row in s]


def hit_ids(hits: list[list[Hit]]) -> list[list[str]]:
    return [[h.complaint.id for h in row] for row in hits]


# --------------------------------------------------------------------------- basics
def test_create_persist_and_reopen(tmp_path: Path) -> None:
    x = clustered(60)
    recs = records(60)
    with open_(tmp_path / "ix") as idx:
        assert isinstance(idx, ComplaintIndex)
        assert idx.add(recs, x) == [True] * 60
        assert len(idx) == 60
        before = hit_ids(idx.search(x[:5], 7))
        st = idx.stats()
        assert st["kind"] == "flat" and st["size"] == 60 and st["dim"] == DIM
        assert st["embedding_id"] == EMB and st["path"] == str(tmp_path / "ix")
    assert (tmp_path / "ix" / SNAPSHOT_FILE).is_file()
    for snapshot in (True, False):
        with open_(tmp_path / "ix", create=False, snapshot=snapshot) as idx:
            assert idx.stats()["loaded_from"] == ("snapshot" if snapshot else "rebuild")
            assert len(idx) == 60
            assert idx.get([r.id for r in recs]) == {r.id: r for r in recs}
            np.testing.assert_array_equal(idx.vectors([r.id for r in recs]), x)
            assert hit_ids(idx.search(x[:5], 7)) == before


def test_add_is_idempotent_and_replaces_changed_rows(tmp_path: Path) -> None:
    x = clustered(20)
    recs = records(20)
    with open_(tmp_path / "ix") as idx:
        assert idx.add(recs, x) == [True] * 20
        seq = idx.stats()["seq"]
        assert idx.add(recs, x) == [False] * 20
        assert idx.stats()["seq"] == seq  # nothing written
        changed = list(recs)
        changed[3] = replace(recs[3], kecamatan="Rungkut")
        y = x.copy()
        y[7] = clustered(1, seed=99)[0]
        result = idx.add(changed, y)
        assert result == [i in (3, 7) for i in range(20)]
        assert len(idx) == 20
        assert idx.get(["c3"])["c3"].kecamatan == "Rungkut"
        np.testing.assert_array_equal(idx.vectors(["c7"])[0], y[7])
        top = idx.search(y[7], 1)[0][0]
        assert top.complaint.id == "c7" and top.similarity == pytest.approx(1.0, abs=1e-5)
        # the old vector of c7 is gone from faiss: it no longer matches itself
        assert all(h.similarity < 0.9999 for h in idx.search(x[7], 20)[0] if h.complaint.id == "c7")
        assert hit_ids(idx.search(y[7], 5, SearchFilter(kecamatan="rungkut"))) == [["c3"]]


def test_add_rejects_bad_input_without_quoting_text(tmp_path: Path) -> None:
    with open_(tmp_path / "ix") as idx:
        with pytest.raises(ComplaintIndexError, match="16 dimensions") as err:
            idx.add(records(2), np.zeros((2, 16), dtype=np.float32))
        assert str(tmp_path / "ix") in str(err.value)
        with pytest.raises(ComplaintIndexError, match="3 vectors for 2 complaints"):
            idx.add(records(2), clustered(3))
        with pytest.raises(ComplaintIndexError, match="appears twice"):
            idx.add(records(1) * 2, clustered(2))
        bad = IndexedComplaint(id="x", text="rahasia pribadi", created_at="kemarin")
        with pytest.raises(ComplaintIndexError, match="created_at") as err:
            idx.add([bad], clustered(1))
        assert "rahasia" not in str(err.value)
        with pytest.raises(ComplaintIndexError, match="NaN"):
            idx.add(records(1), np.full((1, DIM), np.nan, dtype=np.float32))
        with pytest.raises(ComplaintIndexError, match="dimensions"):
            idx.search(np.zeros((1, 8), dtype=np.float32), 3)
        assert len(idx) == 0


def test_remove_and_readd(tmp_path: Path) -> None:
    x = clustered(30)
    with open_(tmp_path / "ix") as idx:
        idx.add(records(30), x)
        assert idx.remove(["c1", "c2", "nope", "c1"]) == 2
        assert idx.remove(["c1"]) == 0
        assert len(idx) == 28
        assert set(idx.get(["c1", "c2", "c3"])) == {"c3"}
        with pytest.raises(KeyError, match="c2"):
            idx.vectors(["c3", "c2"])
        found = {h.complaint.id for row in idx.search(x, 30) for h in row}
        assert "c1" not in found and "c2" not in found and len(found) == 28
        assert idx.add(records(1, start=1), x[1:2]) == [True]
        assert idx.search(x[1], 1)[0][0].complaint.id == "c1"
    with open_(tmp_path / "ix") as idx:
        assert len(idx) == 29 and "c2" not in idx.get(["c2"])
        assert idx.search(x[1], 1)[0][0].complaint.id == "c1"


def test_get_and_vectors_keep_the_order_given(tmp_path: Path) -> None:
    x = clustered(10)
    with open_(tmp_path / "ix") as idx:
        idx.add(records(10), x)
        np.testing.assert_array_equal(idx.vectors(["c5", "c0", "c5"]), x[[5, 0, 5]])
        assert idx.vectors([]).shape == (0, DIM)
        got = idx.get(["c9", "zz", "c0"])
        assert list(got) == ["c9", "c0"] and got["c9"] == records(10)[9]
        batches = list(idx.iter_complaints(batch=4))
        assert [len(b) for b in batches] == [4, 4, 2]
        assert [c.id for b in batches for c in b] == [f"c{i}" for i in range(10)]


def test_search_is_ordered_and_k_may_exceed_the_size(tmp_path: Path) -> None:
    x = clustered(25)
    ids = [f"c{i}" for i in range(25)]
    with open_(tmp_path / "ix") as idx:
        assert idx.search(x[:2], 5) == [[], []]  # empty index
        idx.add(records(25), x)
        hits = idx.search(x[:4], 10)
        assert hit_ids(hits) == exact_top(x[:4], x, ids, 10)
        for row in hits:
            sims = [h.similarity for h in row]
            assert sims == sorted(sims, reverse=True)
        assert hits[0][0].similarity == pytest.approx(1.0, abs=1e-5)
        assert len(idx.search(x[0], 100)[0]) == 25
        assert idx.search(x[:3], 0) == [[], [], []]
        assert idx.search(np.zeros((0, DIM), dtype=np.float32), 3) == []
        with pytest.raises(ComplaintIndexError, match="non-negative"):
            idx.search(x[:1], -1)


# --------------------------------------------------------------------------- filters
def _timed(spec: list[tuple[str, str | None]]) -> list[IndexedComplaint]:
    return [IndexedComplaint(id=i, created_at=t, text_hash=i) for i, t in spec]


def test_time_window_is_inclusive_and_naive_means_jakarta(tmp_path: Path) -> None:
    recs = _timed(
        [
            ("a", "2022-03-01T10:00:00"),  # naive: Asia/Jakarta
            ("b", "2022-03-01T03:00:00Z"),  # the same instant as a
            ("c", "2022-03-31T23:59:59+07:00"),
            ("d", "2022-04-01"),  # midnight, Jakarta
            ("e", None),
            ("f", "2022-02-28T23:59:59.999999"),
        ]
    )
    x = clustered(len(recs))
    with open_(tmp_path / "ix") as idx:
        idx.add(recs, x)

        def ids(**kw: str) -> set[str]:
            return {h.complaint.id for h in idx.search(x[0], 10, SearchFilter(**kw))[0]}

        assert ids(since="2022-03-01T10:00:00") == {"a", "b", "c", "d"}
        assert ids(since="2022-03-01T10:00:00.000001") == {"c", "d"}
        assert ids(until="2022-03-01T03:00:00+00:00") == {"a", "b", "f"}
        assert ids(until="2022-03-01T09:59:59") == {"f"}
        assert ids(since="2022-03-01", until="2022-03-31") == {"a", "b", "c"}  # whole last day
        assert ids(since="2022-04-01", until="2022-04-01") == {"d"}
        assert ids(since="2022-04-02") == set()
        assert ids(since=" ", until="") == {"a", "b", "c", "d", "e", "f"}  # empty: no condition
        with pytest.raises(ComplaintIndexError, match="'since' is not an ISO 8601") as err:
            idx.search(x[0], 3, SearchFilter(since="bulan lalu"))
        assert str(tmp_path / "ix") in str(err.value)


def test_region_prefix_matches_whole_dotted_parts(tmp_path: Path) -> None:
    codes = {
        "a": "35.78",
        "b": "35.78.01.1001",
        "c": "35.781",
        "d": "35.7",
        "e": None,
        "f": "35.78.01",
        "g": "35.78.01.1001.7",  # deeper than the 4 official levels
        "h": "35.78.01.10011",
    }
    recs = [IndexedComplaint(id=i, region_code=c, text_hash="same") for i, c in codes.items()]
    x = clustered(len(recs))
    with open_(tmp_path / "ix") as idx:
        idx.add(recs, x)

        def ids(code: str) -> set[str]:
            flt = SearchFilter(region_code=code)
            got = {h.complaint.id for h in idx.search(x[0], 10, flt)[0]}
            assert {c.id for c in idx.find_text_hash(["same"], flt)[0]} == got  # same rules
            return got

        assert ids("35.78") == {"a", "b", "f", "g", "h"}
        assert ids(" 35.78. ") == {"a", "b", "f", "g", "h"}
        assert ids("35.78.01") == {"b", "f", "g", "h"}
        assert ids("35.78.01.1001") == {"b", "g"}
        assert ids("35.78.01.1001.7") == {"g"}
        assert ids("35.78.01.1001.8") == set()
        assert ids("35.781") == {"c"}
        assert ids("35") == {"a", "b", "c", "d", "f", "g", "h"}
        assert ids("36") == set()


def test_place_names_match_ignoring_case_and_spaces(tmp_path: Path) -> None:
    recs = [
        IndexedComplaint(id="a", city="Kota Surabaya", kecamatan="Gubeng", kelurahan="Airlangga"),
        IndexedComplaint(
            id="b", city="KOTA  SURABAYA ", kecamatan=" gubeng", kelurahan="Baratajaya"
        ),
        IndexedComplaint(id="c", city="Kota Malang", kecamatan="Klojen"),
        IndexedComplaint(id="d"),
    ]
    x = clustered(len(recs))
    with open_(tmp_path / "ix") as idx:
        idx.add(recs, x)

        def ids(**kw: str) -> set[str]:
            return {h.complaint.id for h in idx.search(x[0], 10, SearchFilter(**kw))[0]}

        assert ids(kecamatan="GUBENG") == {"a", "b"}
        assert ids(city=" kota surabaya") == {"a", "b"}
        assert ids(city="kota surabaya", kelurahan="baratajaya ") == {"b"}
        assert ids(kecamatan="Rungkut") == set()
        assert ids(kecamatan="klojen", city="kota surabaya") == set()
        assert ids(city="") == {"a", "b", "c", "d"}
        flt = SearchFilter(exclude_ids=frozenset({"a", "c", "zz"}))
        assert {h.complaint.id for h in idx.search(x[0], 10, flt)[0]} == {"b", "d"}
        flt = SearchFilter(kecamatan="gubeng", exclude_ids=frozenset({"a"}))
        assert {h.complaint.id for h in idx.search(x[0], 10, flt)[0]} == {"b"}


@pytest.mark.parametrize(
    "options",
    [
        {"brute_force_max": 10_000, "brute_force_share": 1.0},  # exact scoring of the rows
        {"brute_force_max": 0},  # faiss with an IDSelectorBitmap
        {"brute_force_max": 0, "ivf_threshold": 100, "background": False, "nprobe": 1},
        # exact scoring through the IVF cache's 8-bit row codes, then full precision
        {
            "brute_force_max": 10_000,
            "brute_force_share": 1.0,
            "ivf_threshold": 100,
            "background": False,
            "nprobe": 1,
        },
    ],
    ids=["brute", "flat-selector", "ivf-selector", "ivf-codes"],
)
def test_filters_are_exact_and_return_k_hits(tmp_path: Path, options: dict[str, object]) -> None:
    n, k = 400, 10
    x = clustered(n, seed=1)
    recs = records(n)
    q = clustered(15, seed=2)
    flt = SearchFilter(since="2022-03-05", until="2022-03-20", kecamatan="wonokromo")
    passing = [
        i
        for i, r in enumerate(recs)
        if r.kecamatan == "Wonokromo" and "03-05" <= r.created_at[5:10] <= "03-20"
    ]
    assert len(passing) > k
    with open_(tmp_path / "ix", **options) as idx:
        idx.add(recs, x)
        assert idx.stats()["kind"] == ("ivf" if "ivf_threshold" in options else "flat")
        got = hit_ids(idx.search(q, k, flt))
        expected = exact_top(q, x[passing], [recs[i].id for i in passing], k)
        assert all(len(row) == k for row in got)  # k hits although nprobe=1 for IVF
        assert all(set(row) <= {recs[i].id for i in passing} for row in got)
        overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(got, expected, strict=True)])
        assert overlap >= (1.0 if options["brute_force_max"] else 0.9)
        # a filter with fewer passing rows than k returns exactly those rows
        few = SearchFilter(region_code="35.78.01.1001", since="2022-03-01", until="2022-03-02")
        want = {
            r.id for r in recs if r.region_code == "35.78.01.1001" and r.created_at < "2022-03-03"
        }
        assert 0 < len(want) < k
        assert all(set(row) == want for row in hit_ids(idx.search(q[:3], k, few)))


def test_time_and_place_conditions_combine_like_a_row_by_row_check(tmp_path: Path) -> None:
    """Every combination of time bounds and place conditions, undated rows included, over
    all rows and over given rowids, against checking each row in Python."""
    n = 3000
    recs = [replace(r, created_at=None) if i % 7 == 0 else r for i, r in enumerate(records(n))]
    with open_(tmp_path / "ix") as idx:
        idx.add(recs, clustered(n))
        idx.remove(["c5", "c6"])
        columns = idx._cache.columns
        rowids = np.arange(columns.capacity + 5)  # some past the end
        times = [
            (None, None),
            ("2022-03-05", None),
            (None, "2022-03-20"),
            ("2022-03-05", "2022-03-20"),
        ]
        places = [
            {},
            {"kecamatan": "Gubeng"},
            {"region_code": "35.78.02.1001"},
            {"city": "nowhere"},
        ]
        for since, until in times:
            for place in places:
                flt = SearchFilter(since=since, until=until, **place)
                f = index_module._parse_filter(flt, tmp_path)
                want = set()
                for i, r in enumerate(recs):
                    day = None if r.created_at is None else r.created_at[:10]
                    ok = i not in (5, 6)
                    if since or until:
                        ok &= day is not None
                    ok &= not (since and day is not None and day < since)
                    ok &= not (until and day is not None and day > until)
                    ok &= r.kecamatan == place.get("kecamatan", r.kecamatan)
                    ok &= r.region_code == place.get("region_code", r.region_code)
                    ok &= "city" not in place
                    if ok:
                        want.add(i + 1)  # rowids start at 1
                assert set(np.flatnonzero(columns.mask(f)).tolist()) == want, (since, until, place)
                got = rowids[columns.mask(f, rowids)]
                assert set(got.tolist()) == want, (since, until, place)


def test_find_text_hash(tmp_path: Path) -> None:
    recs = [
        IndexedComplaint(id="late", text_hash="H", created_at="2022-05-01", kecamatan="Gubeng"),
        IndexedComplaint(id="early", text_hash="H", created_at="2022-01-01", kecamatan="Tegalsari"),
        IndexedComplaint(id="undated", text_hash="H"),
        IndexedComplaint(id="other", text_hash="G", created_at="2022-02-01"),
    ]
    with open_(tmp_path / "ix") as idx:
        idx.add(recs, clustered(4))
        found = idx.find_text_hash(["H", "nope", "G", ""])
        assert [[c.id for c in row] for row in found] == [
            ["early", "late", "undated"],
            [],
            ["other"],
            [],
        ]
        assert found[0][0] == recs[1]
        got = idx.find_text_hash(["H"], SearchFilter(since="2022-03-01"))
        assert [c.id for c in got[0]] == ["late"]
        got = idx.find_text_hash(["H"], SearchFilter(kecamatan="TEGALSARI"))
        assert [c.id for c in got[0]] == ["early"]
        got = idx.find_text_hash(["H"], SearchFilter(exclude_ids=frozenset({"early"})))
        assert [c.id for c in got[0]] == ["late", "undated"]


# --------------------------------------------------------------------------- refusals, damage
def test_refuses_another_embedding_or_dim(tmp_path: Path) -> None:
    with open_(tmp_path / "ix") as idx:
        idx.add(records(3), clustered(3))
    with pytest.raises(ComplaintIndexError, match="re-embed") as err:
        open_index(tmp_path / "ix", dim=DIM, embedding_id="other-model")
    assert str(tmp_path / "ix") in str(err.value) and "other-model" in str(err.value)
    with pytest.raises(ComplaintIndexError, match="32-dimensional"):
        open_index(tmp_path / "ix", dim=64, embedding_id=EMB)
    with open_(tmp_path / "ix") as idx:  # the refusals left it intact
        assert len(idx) == 3


def test_refuses_foreign_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(ComplaintIndexError, match="no complaint index"):
        open_(tmp_path / "missing", create=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ComplaintIndexError, match="is a file"):
        open_(tmp_path / "file")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(ComplaintIndexError, match="not an aduan complaint index"):
        open_(tmp_path / "other")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / DB_FILE).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ComplaintIndexError, match="not an SQLite database") as err:
        open_(tmp_path / "garbage")
    assert str(tmp_path / "garbage") in str(err.value)
    with pytest.raises(ComplaintIndexError, match="unknown index option"):
        open_(tmp_path / "ix", nlsit=4)
    with pytest.raises(ComplaintIndexError, match="synchronous"):
        open_(tmp_path / "ix", synchronous="OFF")


def test_one_opener_at_a_time(tmp_path: Path) -> None:
    with open_(tmp_path / "ix"):
        with pytest.raises(ComplaintIndexError, match="already open"):
            open_(tmp_path / "ix")
    with open_(tmp_path / "ix", synchronous="FULL") as idx:  # released on close
        idx.add(records(2), clustered(2))
        idx.close()
        idx.close()  # twice is fine
        with pytest.raises(ComplaintIndexError, match="closed"):
            idx.search(clustered(1), 3)


def _snapshot_files(folder: Path) -> dict[str, Path]:
    meta = json.loads((folder / SNAPSHOT_FILE).read_text())
    return {key: folder / f["name"] for key, f in meta["files"].items()}


@pytest.mark.parametrize(
    "damage", ["truncate", "flip", "json", "columns", "codes", "no-codes", "delete"]
)
def test_damaged_snapshot_is_ignored_and_rebuilt(tmp_path: Path, damage: str) -> None:
    x = clustered(300)
    folder = tmp_path / "ix"
    with open_(folder, ivf_threshold=100, background=False) as idx:
        idx.add(records(300), x)
        assert idx.stats()["kind"] == "ivf"
        before = hit_ids(idx.search(x[:5], 5))
    files = _snapshot_files(folder)
    if damage == "truncate":
        data = files["faiss"].read_bytes()
        files["faiss"].write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        data = bytearray(files["faiss"].read_bytes())
        data[len(data) // 2] ^= 0xFF
        files["faiss"].write_bytes(bytes(data))
    elif damage == "json":
        (folder / SNAPSHOT_FILE).write_text('{"format": "aduan-complaint-index-snap')
    elif damage == "columns":
        files["columns"].write_bytes(b"\0" * files["columns"].stat().st_size)
    elif damage == "codes":
        files["codes"].write_bytes(b"\0" * files["codes"].stat().st_size)
    elif damage == "no-codes":  # as a version 1 snapshot, which had none
        meta = json.loads((folder / SNAPSHOT_FILE).read_text())
        del meta["files"]["codes"]
        (folder / SNAPSHOT_FILE).write_text(json.dumps(meta))
    else:
        files["faiss"].unlink()
    with open_(folder, ivf_threshold=100, background=False) as idx:
        st = idx.stats()
        assert st["loaded_from"] == "rebuild" and st["kind"] == "ivf" and st["size"] == 300
        assert hit_ids(idx.search(x[:5], 5)) == before
    with open_(folder, ivf_threshold=100) as idx:  # closing wrote a good snapshot again
        assert idx.stats()["loaded_from"] == "snapshot"


def test_reopen_replays_changes_made_after_the_snapshot(tmp_path: Path) -> None:
    x = clustered(120)
    folder = tmp_path / "ix"
    idx = open_(folder)
    idx.add(records(100), x[:100])
    assert idx.checkpoint() and not idx.checkpoint()  # second: nothing new
    idx.remove(["c0", "c1"])
    idx.add(records(20, start=100), x[100:])
    idx.add([replace(records(1, start=5)[0], kecamatan="Rungkut")], x[5:6])
    idx._release()  # as if killed: no snapshot on close
    (folder / "stray.txt").write_text("ignored")  # foreign files beside a real index are fine
    with open_(folder) as idx:
        st = idx.stats()
        assert st["loaded_from"] == "snapshot" and st["replayed_on_open"] == 2 + 20 + 1
        assert len(idx) == 118 and not idx.get(["c0", "c1"])
        assert idx.get(["c5"])["c5"].kecamatan == "Rungkut"
        got = hit_ids(idx.search(x[100:], 1))
        assert got == [[f"c{i}"] for i in range(100, 120)]
        assert hit_ids(idx.search(x[5], 1, SearchFilter(kecamatan="rungkut"))) == [["c5"]]


# --------------------------------------------------------------------------- IVF
def test_switches_to_ivf_and_stays_accurate(tmp_path: Path) -> None:
    everything = clustered(1060, seed=3, centres=20)
    x, q = everything[:1000], everything[1000:]  # q: held out, around the same centres
    ids = [f"c{i}" for i in range(1000)]
    folder = tmp_path / "ix"
    with open_(folder, ivf_threshold=200, background=False) as idx:
        for lo in range(0, 1000, 100):
            idx.add(records(100, start=lo), x[lo : lo + 100])
            assert idx.stats()["kind"] == ("flat" if lo + 100 < 200 else "ivf")
        st = idx.stats()
        assert st["nlist"] > 1 and 1 <= st["nprobe"] <= st["nlist"]
        assert st["trained_size"] == 800  # retrained at 4x the first training size (200)
        calibration = st["last_build"]["calibration"]
        assert calibration["nprobe"][-1]["recall"] >= 0.99
        assert st["filter_boost"] >= 1
        got = hit_ids(idx.search(q, 10))
        want = exact_top(q, x, ids, 10)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)])
        assert recall >= 0.95
        assert idx.remove(["c10", "c11"]) == 2  # really removed from the IVF lists
        assert "c10" not in {h.complaint.id for h in idx.search(x[10], 50)[0]}
        assert idx.add(records(1, start=10), x[10:11]) == [True]
        assert idx.search(x[10], 1)[0][0].complaint.id == "c10"
    with open_(folder, ivf_threshold=200) as idx:
        st = idx.stats()
        assert st["kind"] == "ivf" and st["loaded_from"] == "snapshot" and st["size"] == 999
        assert idx.get(["c10"]) and not idx.get(["c11"])
        got = hit_ids(idx.search(q, 10, SearchFilter(exclude_ids=frozenset({"c10"}))))
        want = exact_top(q, np.delete(x, [10, 11], 0), np.delete(ids, [10, 11]).tolist(), 10)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)])
        assert recall >= 0.95


def test_ivf_exact_filtered_scoring_follows_adds_removes_and_reopens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 8-bit row codes behind exact filtered search stay in step with the rows."""
    monkeypatch.setattr(index_module._RowCodes, "CHUNK", 50)  # several scans, merged
    x = clustered(700, seed=6)
    recs = records(700)
    q = clustered(8, seed=7)
    flt = SearchFilter(kecamatan="gubeng")
    opts = {
        "ivf_threshold": 200,
        "background": False,
        "brute_force_max": 10_000,
        "brute_force_share": 1.0,
    }

    def check(idx: Any, live: list[int]) -> None:
        passing = [i for i in live if recs[i].kecamatan == "Gubeng"]
        assert len(passing) > 40  # more than are re-scored in full precision
        want = exact_top(q, x[passing], [recs[i].id for i in passing], 10)
        assert hit_ids(idx.search(q, 10, flt)) == want

    folder = tmp_path / "ix"
    idx = open_(folder, **opts)
    idx.add(recs[:300], x[:300])  # IVF built here: codes for rows 1..300
    assert idx.stats()["kind"] == "ivf" and idx.stats()["codes_bytes"] > 0
    idx.add(recs[300:700], x[300:700])  # codes grow past the built capacity
    check(idx, list(range(700)))
    idx.add([replace(recs[0], kecamatan="Rungkut")], x[0:1])  # moved out of the filter
    changed = x.copy()
    idx.add(recs[3:4], changed[10:11])  # same id, new vector
    x[3] = changed[10]
    idx.remove([r.id for r in recs[6:60]])
    live = [i for i in range(1, 700) if not 6 <= i < 60]
    check(idx, live)
    assert idx.checkpoint()
    idx.add(recs[6:30], x[6:30])  # after the snapshot: replayed on open
    idx._release()  # as if killed
    with open_(folder, **opts) as idx:
        assert idx.stats()["loaded_from"] == "snapshot" and idx.stats()["replayed_on_open"] == 24
        check(idx, sorted(live + list(range(6, 30))))


def test_exact_scoring_is_chosen_by_rows_and_share_passing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = clustered(600, seed=8)
    opts = {"ivf_threshold": 200, "background": False, "brute_force_max": 100}
    with open_(tmp_path / "ix", brute_force_share=0.1, **opts) as idx:
        idx.add(records(600), x)
        narrow = SearchFilter(region_code="35.78.01.1001", since="2022-03-20")
        n_narrow = len(idx.search(x[0], 600, narrow)[0])
        assert 0 < n_narrow <= 60  # at most 10% of the rows
        calls: list[int] = []
        exact = idx._exact

        def spy(queries: np.ndarray, k: int, rowids: np.ndarray) -> Any:
            calls.append(len(rowids))
            return exact(queries, k, rowids)

        monkeypatch.setattr(idx, "_exact", spy)
        idx.search(x[0], 5, SearchFilter(region_code="35.78.01.1001"))  # 100 rows, 17%
        idx.search(x[0], 5, narrow)
        idx.search(x[0], 5, SearchFilter(kecamatan="Gubeng"))  # 200 rows: over 100
        assert calls == [n_narrow]  # only the narrow filter was scored exactly


def test_an_ivf_rebuild_due_on_open_is_saved_once(tmp_path: Path) -> None:
    x = clustered(700, seed=5)
    folder = tmp_path / "ix"
    with open_(folder, ivf_threshold=200, background=False) as idx:
        idx.add(records(200), x[:200])  # IVF trained on 200
        idx.add(records(500, start=200), x[200:])  # under 4x: no retrain
        assert idx.stats()["trained_size"] == 200
    # Reopened with a lower growth, a retrain is due: built inline and saved as the
    # snapshot, so the next open neither builds again nor starts a background build.
    with open_(folder, ivf_threshold=200, retrain_growth=2.0, background=False) as idx:
        assert idx.stats()["trained_size"] == 700
    with open_(folder, ivf_threshold=200, retrain_growth=2.0) as idx:
        st = idx.stats()
        assert st["loaded_from"] == "snapshot" and st["trained_size"] == 700
        assert not st["building"]


def test_background_build_keeps_serving_and_catches_up(tmp_path: Path) -> None:
    x = clustered(900, seed=4)
    with open_(tmp_path / "ix", ivf_threshold=300) as idx:
        idx.add(records(300), x[:300])  # starts the background build
        for lo in range(300, 900, 50):  # written while it may be building
            idx.add(records(50, start=lo), x[lo : lo + 50])
            assert len(idx.search(x[lo], 5)[0]) == 5
        idx.remove(["c0"])
        assert idx.wait_for_build(timeout=60)
        # at most one more build (growth) may have started; wait for it too
        idx._maybe_rebuild()
        assert idx.wait_for_build(timeout=60)
        st = idx.stats()
        assert st["kind"] == "ivf" and st["size"] == 899 and not st["building"]
        assert st["build_error"] is None
        top = hit_ids(idx.search(x[1:900:37], 1))
        assert top == [[f"c{i}"] for i in range(1, 900, 37)]
        assert "c0" not in {h.complaint.id for h in idx.search(x[0], 20)[0]}


# --------------------------------------------------------------------------- threads
def test_concurrent_adds_and_searches(tmp_path: Path) -> None:
    x = clustered(800, seed=5)
    errors: list[BaseException] = []
    stop = threading.Event()
    with open_(tmp_path / "ix", ivf_threshold=250) as idx:  # a background build mid-way

        def writer(w: int) -> None:
            try:
                for b in range(10):
                    lo = w * 200 + b * 20
                    assert idx.add(records(20, start=lo), x[lo : lo + 20]) == [True] * 20
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        def searcher(s: int) -> None:
            flt = SearchFilter(kecamatan="gubeng", since="2022-03-02")
            try:
                while not stop.is_set():
                    for row in idx.search(x[s::97], 5, flt if s else None):
                        assert len(row) <= 5
                        assert all(h.complaint.kecamatan == "Gubeng" for h in row) or not s
                    idx.stats()
                    len(idx)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        readers = [threading.Thread(target=searcher, args=(s,)) for s in range(2)]
        for t in threads + readers:
            t.start()
        for t in threads:
            t.join(60)
        stop.set()
        for t in readers:
            t.join(60)
        assert not errors, errors
        assert idx.wait_for_build(timeout=60)
        assert len(idx) == 800
        assert len(idx.get([f"c{i}" for i in range(800)])) == 800
        top = hit_ids(idx.search(x[::41], 1))
        assert top == [[f"c{i}"] for i in range(0, 800, 41)]


# --------------------------------------------------------------------------- SIGKILL
def unit_vector(key: str) -> np.ndarray:
    """A deterministic vector per id (the writer process and the test agree on it)."""
    seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


# The writer: adds complaints in batches of 5 and prints each acknowledged batch's ids
# (one line, flushed) only after add() returned; optionally checkpoints (snapshot
# writes) every few batches, so kills also land inside snapshot writes and IVF builds.
WRITER = """
import hashlib
import sys
import numpy as np
from model.index import IndexedComplaint, open_index
DIM = __DIM__


def unit_vector(key):
    seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


path, tag, threshold, every = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
idx = open_index(path, dim=DIM, embedding_id="kill-test", ivf_threshold=threshold)
print("open", flush=True)
batch = 0
while True:
    ids = [f"{tag}-{batch}-{j}" for j in range(5)]
    recs = [IndexedComplaint(id=i, text="teks " + i, text_hash=i, created_at="2022-01-01")
            for i in ids]
    idx.add(recs, np.stack([unit_vector(i) for i in ids]))
    if batch % 3 == 0:
        idx.remove([f"{tag}-{batch}-4"])
        ids = ids[:4]
    print(" ".join(ids), flush=True)
    batch += 1
    if every and batch % every == 0:
        idx.checkpoint()
""".replace("__DIM__", str(DIM))


def _run_and_kill(
    folder: Path, tag: str, acks: int, delay: float, threshold: int, every: int
) -> tuple[set[str], set[str]]:
    """Start the writer, SIGKILL it after `acks` acknowledged batches (+ `delay` s);
    returns (acknowledged ids, removed ids)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", WRITER, str(folder), tag, str(threshold), str(every)]
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    got: list[str] = []
    try:
        while len(got) < acks + 1:  # +1: the "open" line
            try:
                got.append(lines.get(timeout=60))
            except queue.Empty:
                pytest.fail(
                    f"the writer stalled; stderr: {proc.stderr.read() if proc.stderr else ''}"
                )
        time.sleep(delay)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        reader.join(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    while not lines.empty():
        got.append(lines.get())
    acked: set[str] = set()
    removed: set[str] = set()
    for line in got[1:]:
        if line.endswith("\n"):  # a torn last line is not counted
            ids = line.split()
            acked.update(ids)
            batch = ids[0].rsplit("-", 1)[0]
            if int(batch.rsplit("-", 1)[1]) % 3 == 0:
                removed.add(f"{batch}-4")
    return acked, removed


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    folder = tmp_path / "ix"
    all_acked: set[str] = set()
    all_removed: set[str] = set()
    scenarios = [  # (acks before the kill, extra delay s, IVF threshold, checkpoint every)
        (1, 0.0, 10**6, 0),
        (6, 0.03, 10**6, 2),
        (25, 0.0, 60, 3),  # IVF builds in the background, snapshots, replays
        (12, 0.11, 60, 1),
        (3, 0.0, 60, 0),
    ]
    for n, (acks, delay, threshold, every) in enumerate(scenarios):
        acked, removed = _run_and_kill(folder, f"r{n}", acks, delay, threshold, every)
        assert len(acked) >= acks * 4
        all_acked |= acked
        all_removed |= removed
        with open_index(folder, dim=DIM, embedding_id="kill-test", ivf_threshold=threshold) as idx:
            stored = idx.get(sorted(all_acked | all_removed))
            assert set(stored) >= all_acked, sorted(all_acked - set(stored))[:5]
            assert not set(stored) & all_removed
            ids = sorted(all_acked)
            want = np.stack([unit_vector(i) for i in ids])
            np.testing.assert_array_equal(idx.vectors(ids), want)
            top = hit_ids(idx.search(want[::7], 1))
            assert top == [[i] for i in ids[::7]]
            assert len(idx) >= len(all_acked)
            extra = f"after-{n}"  # writing after the reopen works
            assert idx.add([IndexedComplaint(id=extra)], unit_vector(extra)[None]) == [True]
            all_acked.add(extra)


def test_leftovers_of_a_killed_snapshot_writer_are_removed(tmp_path: Path) -> None:
    folder = tmp_path / "ix"
    x = clustered(40)
    with open_(folder) as idx:
        idx.add(records(40), x)
    leftovers = [folder / ".tmp-1234abcd-snapshot-9-dead.faiss", folder / "snapshot-9-dead.faiss"]
    for p in leftovers:
        p.write_bytes(b"half a snapshot")
    with open_(folder) as idx:
        assert idx.stats()["loaded_from"] == "snapshot"
        assert hit_ids(idx.search(x[:3], 1)) == [["c0"], ["c1"], ["c2"]]
    assert not any(p.exists() for p in leftovers)
