"""The duplicate-complaint index: earlier complaints, their embeddings, and search over both.

`open_index(path, dim=..., embedding_id=...)` opens (or creates) an index
folder; `ComplaintIndex` is the small interface the API and the dedup CLI code
against, so another backend (PostgreSQL + pgvector) can be added later.
`FaissSqliteIndex` is the embedded default:

- **SQLite is the source of truth** (`index.sqlite3`, WAL mode): one row per
  complaint (metadata, the normalised text, `created_at` also as epoch
  microseconds, indexed filter columns) and its vector as a float32 blob, in a
  separate table so metadata scans do not read vectors. Every `add`/`remove`
  is one transaction that bumps a change sequence number (`seq`); each row
  records the `seq` of its last write and removals leave a tombstone, so
  "everything that changed after seq S" is one indexed query.
- **Durability.** An `add`/`remove` that returned is committed. With
  `synchronous="NORMAL"` (the default) in WAL mode a commit is written to the
  WAL file before it returns, so it survives the process being killed at any
  moment (SIGKILL, OOM killer): the data is in the OS page cache and SQLite
  recovers the WAL on the next open. Only a power loss or kernel crash can
  lose the last commits (never corrupting the file); pass
  `synchronous="FULL"` to fsync every commit and survive that too (slower
  writes). tests/test_index.py kills a writer process mid-run to check this.
- **faiss is a cache** over the SQLite rowids (`IndexIDMap2(IndexFlatIP)`
  while small, `IndexIVFFlat` with a hash-table direct map past
  `ivf_threshold`; both support `remove_ids` and `reconstruct`). It is saved as
  a snapshot tagged with the change sequence it reflects (on `close`,
  `checkpoint` and after an IVF (re)build), written to a temporary file,
  fsynced and renamed, with sizes and CRC32s recorded in `snapshot.json`,
  which is renamed into place last. Opening loads the snapshot and replays the
  changes made after it; a missing, torn, foreign or stale snapshot is
  detected, logged and ignored, and the cache is rebuilt from SQLite. A kill
  can therefore cost time on the next open, never data.
- **Filters** are applied exactly: a copy of the filter columns is kept in
  numpy arrays indexed by rowid (saved with the snapshot) and every filter is
  a boolean mask over it. When few rows pass (`brute_force_max`, and at most
  `brute_force_share` of them), their
  vectors are scored exactly (an IVF cache keeps 8-bit codes of the vectors
  by rowid for this, saved with the snapshot: the best candidates by the
  codes are scored again in full precision); otherwise faiss searches with
  an `IDSelectorBitmap` of the mask, widening `nprobe` until k hits are found
  (or all lists were scanned), so k hits come back whenever k rows match.
- **IVF** (`nlist` ~ 4·sqrt(n), spherical k-means) is trained in a background
  thread from a consistent SQLite read snapshot while the old index keeps
  serving; the changes made meanwhile are replayed before the swap. It is
  retrained when the index has grown `retrain_growth` times since training.
  `nprobe` is calibrated at build time: the smallest power of two whose
  recall@10 against exact search, on stored vectors used as queries, reaches
  `target_recall`; so is the extra probing that filtered searches need (on
  pseudo-random subsets of 10% and 2% of the rows).

The index is thread-safe (one lock; SQLite with `check_same_thread=False`)
and single-process: a lock file makes a second opener fail with a clear error
(its faiss cache would not see the first one's writes).

Complaint text is stored (to re-embed when the embedding model changes) but
never logged or put in an error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import logging
import math
import operator
import os
import secrets
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import faiss as _faiss
import numpy as np

from model.files import fsync_dir

# faiss 1.15 ships partial type stubs (no DirectMap, no IO callbacks, no kwargs for
# search parameters): use it untyped.
faiss: Any = _faiss

log = logging.getLogger("aduan.index")

FORMAT = "aduan-complaint-index"
SCHEMA_VERSION = 1
SNAPSHOT_FORMAT = "aduan-complaint-index-snapshot"
SNAPSHOT_VERSION = 2  # 2: IVF snapshots carry the 8-bit row codes
DB_FILE = "index.sqlite3"
LOCK_FILE = "index.lock"
SNAPSHOT_FILE = "snapshot.json"
TMP_PREFIX = ".tmp-"

#: Naive times are local time in Surabaya/Jakarta (WIB, UTC+07:00; no daylight saving).
JAKARTA = timezone(timedelta(hours=7), "Asia/Jakarta")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NO_TIME = np.iinfo(np.int64).min  # created_at unknown (in the numpy copy)
_SQL_CHUNK = 500  # ids per "IN (...)" query (SQLite allows 32,766 variables)
_CALIBRATION_QUERIES = 256
_CALIBRATION_K = 10
_CALIBRATION_WIDE = 1024  # exact top list kept per calibration query (filtered recall)


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class IndexedComplaint:
    """One stored complaint: what search returns besides the similarity."""

    id: str
    text: str = ""  # normalised text, kept to re-embed when the model changes; never logged
    created_at: str | None = None  # ISO 8601; naive times are Asia/Jakarta (UTC+07:00)
    region_code: str | None = None  # e.g. "35.78" (Kota Surabaya) or "35.78.01.1001"
    city: str | None = None
    kecamatan: str | None = None
    kelurahan: str | None = None
    address: str | None = None
    text_hash: str = ""  # computed by the caller (exact re-submission key)
    snippet: str = ""  # redacted snippet, computed by the caller


@dataclass(frozen=True)
class Hit:
    complaint: IndexedComplaint
    similarity: float  # inner product of query and stored vector (cosine when normalised)


@dataclass(frozen=True)
class SearchFilter:
    """Conditions a hit must meet; every given condition must hold (AND).

    - `since` / `until`: ISO 8601 dates or times, both inclusive; naive values
      are Asia/Jakarta time, and a date-only `until` ("2022-03-31") covers that
      whole day. Complaints without `created_at` never pass a time condition.
    - `region_code`: prefix match on whole dotted parts: "35.78" matches
      "35.78" and "35.78.01.1001" but not "35.781".
    - `city`, `kecamatan`, `kelurahan`: equality ignoring case and surrounding
      (and repeated inner) whitespace.
    - `exclude_ids`: complaints never returned (e.g. the query itself).
    Empty strings mean "no condition".
    """

    since: str | None = None
    until: str | None = None
    region_code: str | None = None
    city: str | None = None
    kecamatan: str | None = None
    kelurahan: str | None = None
    exclude_ids: frozenset[str] = frozenset()


class ComplaintIndexError(ValueError):
    """The index cannot be opened or used as asked; the message names the path and is
    meant for the user (it never quotes complaint text)."""


@runtime_checkable
class ComplaintIndex(Protocol):
    """What the API and the dedup CLI need from a duplicate index (any backend)."""

    dim: int
    embedding_id: str  # which embedding model filled the index

    def __len__(self) -> int: ...

    def add(self, complaints: Sequence[IndexedComplaint], vectors: np.ndarray) -> list[bool]:
        """Idempotent by id. True where the row was added or changed, False where an
        identical row (same metadata and same vector) was already there. A changed row
        replaces the old one. Durable when it returns."""
        ...

    def remove(self, ids: Sequence[str]) -> int:
        """Remove complaints by id; returns how many were removed (unknown ids ignored)."""
        ...

    def get(self, ids: Sequence[str]) -> dict[str, IndexedComplaint]:
        """The stored complaints among `ids` (unknown ids are left out)."""
        ...

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Stored vectors, rows in the order given; KeyError naming the first unknown id."""
        ...

    def search(
        self, vectors: np.ndarray, k: int, flt: SearchFilter | None = None
    ) -> list[list[Hit]]:
        """The k most similar stored complaints passing `flt`, best first, per query row."""
        ...

    def find_text_hash(
        self, text_hashes: Sequence[str], flt: SearchFilter | None = None
    ) -> list[list[IndexedComplaint]]:
        """Stored complaints with each text hash (exact re-submissions), oldest first."""
        ...

    def iter_complaints(self, batch: int = 1000) -> Iterator[list[IndexedComplaint]]:
        """Every stored complaint in batches, in insertion order (re-embedding, clustering)."""
        ...

    def stats(self) -> dict[str, Any]:
        """Size, kind ("flat" | "ivf"), path, embedding_id, dim and backend details."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class IndexOptions:
    """Tuning and durability options of `FaissSqliteIndex` (the `**options` of `open_index`)."""

    #: "NORMAL": an acknowledged write survives the process being killed (WAL);
    #: "FULL": fsync every commit, so it also survives a power loss.
    synchronous: str = "NORMAL"
    #: Switch from exact IndexFlatIP to IVF at this many vectors. Measured with
    #: bench/index.py (--sweep) on this project's 2-core machine, 1 thread, 384-dim
    #: e5-like vectors: one exact query takes p50/p99 0.28/0.40 ms at 10k vectors,
    #: 1.2/1.8 ms at 25k, 3.5/7.7 ms at 50k and 7.7/10.9 ms at 100k, while IVF reaches
    #: recall@10 >= 0.99 at 0.13-0.24 ms from 25k on (at 10k it must scan half its
    #: lists to get there). 20k keeps exact search well under the 5 ms p99 goal
    #: with room for a loaded machine.
    ivf_threshold: int = 20_000
    nlist: int | None = None  # IVF lists; None: ~4*sqrt(n), a power of two
    nprobe: int | None = None  # lists scanned per query; None: calibrated at build time
    #: With a filter passing a share p of the rows, IVF probes nprobe * filter_boost / p
    #: lists. None: calibrated with nprobe (2.0 when nprobe is given).
    filter_boost: float | None = None
    target_recall: float = 0.99  # recall@10 the nprobe calibration aims for
    retrain_growth: float = 4.0  # retrain IVF when n reaches this multiple of its training n
    train_points_per_list: int = 40  # k-means sample size per list (faiss warns under 39)
    #: A filter passing at most this many rows is answered by exact scoring of those
    #: rows (through their 8-bit codes, `_RowCodes`, in an IVF cache); past it, by faiss
    #: search with a bitmap of the rows passing, which probes more lists the fewer rows
    #: pass. `python bench/index.py --sizes 1000000 --crossover` times both for one
    #: kecamatan over growing date ranges: at 1M vectors (IVF, nlist 2,048, 1 thread)
    #: exact scoring had the lower p50 and p99 at every size measured, up to 18,456
    #: rows, while faiss answered one kecamatan (31,978 rows) faster than exact
    #: scoring would (docs/benchmarks.md, session 9).
    brute_force_max: int = 16_000
    #: ... and only while the filter passes at most this share of the rows. faiss's
    #: cost falls as the share grows (fewer lists probed), exact scoring's rises with
    #: the rows: in a 100k index, a ±45-day window (12,000-25,000 rows) took 1.6 ms
    #: through faiss and 4.7 ms through the row codes (bench/serve.py's in-process
    #: duplicate search, session 9). 2% keeps 1M indexes at 16,000 rows.
    brute_force_share: float = 0.02
    background: bool = True  # build IVF in a background thread (False: inside add/open)
    snapshot: bool = True  # save the faiss cache on close/checkpoint/after an IVF build
    verify_snapshot: bool = True  # check the snapshot's CRC32 when loading it
    seed: int = 0  # k-means and calibration sampling

    def __post_init__(self) -> None:
        if self.synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError(f'synchronous must be "NORMAL" or "FULL", not {self.synchronous!r}')
        if self.ivf_threshold < 1:
            raise ValueError("ivf_threshold must be at least 1")
        if self.nlist is not None and self.nlist < 1:
            raise ValueError("nlist must be at least 1")
        if self.nprobe is not None and self.nprobe < 1:
            raise ValueError("nprobe must be at least 1")
        if self.filter_boost is not None and self.filter_boost <= 0:
            raise ValueError("filter_boost must be positive")
        if not 0.0 < self.target_recall <= 1.0:
            raise ValueError("target_recall must be in (0, 1]")
        if self.retrain_growth <= 1.0:
            raise ValueError("retrain_growth must be more than 1")
        if self.brute_force_max < 0 or self.train_points_per_list < 1:
            raise ValueError("brute_force_max and train_points_per_list must be positive")
        if not 0.0 < self.brute_force_share <= 1.0:
            raise ValueError("brute_force_share must be in (0, 1]")


# --------------------------------------------------------------------------- values
def epoch_us(value: str, *, end_of_day: bool = False) -> int:
    """Epoch microseconds of an ISO 8601 date or time (naive = Asia/Jakarta).

    A date-only value is its midnight, or with `end_of_day` its last
    microsecond. Raises ValueError for anything else.
    """
    text = value.strip()
    if len(text) == 10:  # YYYY-MM-DD
        d = date.fromisoformat(text)
        dt = datetime(d.year, d.month, d.day, tzinfo=JAKARTA)
        if end_of_day:
            dt += timedelta(days=1, microseconds=-1)
    else:
        dt = datetime.fromisoformat(text)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=JAKARTA)
    return (dt - _EPOCH) // timedelta(microseconds=1)


def place_key(value: str | None) -> str:
    """The comparison key of a city/kecamatan/kelurahan name ("" when absent)."""
    return " ".join(value.split()).casefold() if value else ""


def region_key(value: str | None) -> str:
    """A region code without surrounding whitespace or trailing dots ("" when absent)."""
    return value.strip().rstrip(".") if value else ""


@dataclass(frozen=True)
class _Filter:
    """A SearchFilter parsed once: epoch bounds and comparison keys."""

    since_us: int | None = None
    until_us: int | None = None
    region: str = ""
    city: str = ""
    kecamatan: str = ""
    kelurahan: str = ""
    exclude_ids: frozenset[str] = frozenset()

    @property
    def has_columns(self) -> bool:
        """True when a condition other than exclude_ids is set."""
        return bool(
            self.since_us is not None
            or self.until_us is not None
            or self.region
            or self.city
            or self.kecamatan
            or self.kelurahan
        )


def _parse_filter(flt: SearchFilter | None, where: Path) -> _Filter:
    if flt is None:
        return _Filter()
    if not isinstance(flt, SearchFilter):
        raise ComplaintIndexError(f"{where}: the filter must be a SearchFilter")
    bounds: dict[str, int | None] = {}
    for name in ("since", "until"):
        value = getattr(flt, name)
        if value is None or not str(value).strip():
            bounds[name] = None
            continue
        try:
            bounds[name] = epoch_us(str(value), end_of_day=name == "until")
        except ValueError:
            raise ComplaintIndexError(
                f"{where}: filter {name!r} is not an ISO 8601 date or time: {value!r}"
            ) from None
    exclude = flt.exclude_ids
    if isinstance(exclude, str):  # a lone id, not its characters
        exclude = frozenset([exclude])
    return _Filter(
        since_us=bounds["since"],
        until_us=bounds["until"],
        region=region_key(flt.region_code),
        city=place_key(flt.city),
        kecamatan=place_key(flt.kecamatan),
        kelurahan=place_key(flt.kelurahan),
        exclude_ids=frozenset(exclude),
    )


# --------------------------------------------------------------------------- filter columns
def _grown_capacity(capacity: int, needed: int) -> int:
    """The new length of an array indexed by rowid that must hold rowid needed - 1:
    doubled (at least 1024), so a stream of adds copies it O(log n) times."""
    return max(needed, 2 * capacity, 1024)


_PLACES = ("region", "city", "kecamatan", "kelurahan")  # the order of a _ColumnRow
#: Region codes cut to their first 1..4 dotted parts (province, regency/city, kecamatan,
#: kelurahan): a prefix filter of d <= 4 parts is one integer comparison on level d.
_REGION_LEVELS = 4
_FIELDS = _PLACES + tuple(f"region{d}" for d in range(1, _REGION_LEVELS + 1))
#: created_us, then the region, city, kecamatan and kelurahan keys
_ColumnRow = tuple[int | None, str, str, str, str]


class _Columns:
    """The filter columns of the live rows as numpy arrays indexed by SQLite rowid.

    A cache of SQLite, like the faiss index (saved with the snapshot, replayed
    with it): evaluating a filter over 1M rows is a few vectorised comparisons.
    Place names are stored as integer codes into per-field vocabularies.
    """

    def __init__(self, capacity: int = 0) -> None:
        self.live = np.zeros(capacity, dtype=bool)
        self.ts = np.full(capacity, _NO_TIME, dtype=np.int64)
        self.codes = {f: np.zeros(capacity, dtype=np.int32) for f in _FIELDS}
        self.names: dict[str, list[str]] = {f: [""] for f in _FIELDS}
        self.lookup: dict[str, dict[str, int]] = {f: {"": 0} for f in _FIELDS}
        self.count = 0
        self._regions_sorted: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def capacity(self) -> int:
        return len(self.live)

    def nbytes(self) -> int:
        return int(self.live.nbytes + self.ts.nbytes + sum(a.nbytes for a in self.codes.values()))

    def _grow(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        extra = _grown_capacity(self.capacity, needed) - self.capacity
        self.live = np.concatenate([self.live, np.zeros(extra, dtype=bool)])
        self.ts = np.concatenate([self.ts, np.full(extra, _NO_TIME, dtype=np.int64)])
        for f in _FIELDS:
            self.codes[f] = np.concatenate([self.codes[f], np.zeros(extra, dtype=np.int32)])

    def _code(self, place: str, key: str) -> int:
        code = self.lookup[place].get(key)
        if code is None:
            code = len(self.names[place])
            self.names[place].append(key)
            self.lookup[place][key] = code
            if place == "region":
                self._regions_sorted = None
        return code

    def set_rows(self, rowids: Sequence[int] | np.ndarray, rows: Sequence[_ColumnRow]) -> None:
        """Insert or overwrite rows (rowids unique within one call)."""
        rid = np.asarray(rowids, dtype=np.int64)
        if not len(rid):
            return
        self._grow(int(rid.max()) + 1)
        self.count += int((~self.live[rid]).sum())
        self.live[rid] = True
        self.ts[rid] = [_NO_TIME if r[0] is None else r[0] for r in rows]
        for j, place in enumerate(_PLACES, start=1):
            self.codes[place][rid] = [self._code(place, str(r[j])) for r in rows]
        parts = [str(r[1]).split(".") if r[1] else [] for r in rows]
        for d in range(1, _REGION_LEVELS + 1):
            level = f"region{d}"
            self.codes[level][rid] = [self._code(level, ".".join(p[:d])) for p in parts]

    def kill(self, rowids: Sequence[int] | np.ndarray) -> None:
        rid = np.asarray(rowids, dtype=np.int64)
        rid = rid[rid < self.capacity]
        self.count -= int(self.live[rid].sum())
        self.live[rid] = False

    def region_codes(self, prefix: str) -> np.ndarray:
        """Codes of the stored region codes equal to `prefix` or below it ("prefix.*")."""
        if self._regions_sorted is None:
            names = np.array(self.names["region"], dtype=str)
            order = np.argsort(names, kind="stable")
            self._regions_sorted = (names[order], order)
        names, order = self._regions_sorted
        i = int(np.searchsorted(names, prefix, "left"))
        exact = order[i : i + 1] if i < len(names) and names[i] == prefix else order[:0]
        lo = int(np.searchsorted(names, prefix + ".", "left"))
        hi = int(np.searchsorted(names, prefix + "/", "left"))  # "/" follows "." in code order
        return np.concatenate([exact, order[lo:hi]])

    def mask(self, f: _Filter, rowids: np.ndarray | None = None) -> np.ndarray:
        """Which rows pass the column conditions of `f` (all rowids, or those given)."""
        if rowids is None:
            m = self.live.copy()
            sel: Any = slice(None)
        else:
            rowids = np.asarray(rowids, dtype=np.int64)
            inside = rowids < self.capacity
            sel = np.where(inside, rowids, 0)
            m = self.live[sel] & inside
        if f.since_us is not None or f.until_us is not None:
            ts = self.ts[sel]
            if f.since_us is not None:  # also excludes _NO_TIME (the smallest int64)
                m &= ts >= f.since_us
            else:
                m &= ts != _NO_TIME
            if f.until_us is not None:
                m &= ts <= f.until_us
        if f.region:
            depth = f.region.count(".") + 1
            if depth <= _REGION_LEVELS:
                code = self.lookup[f"region{depth}"].get(f.region)
                if code is None:
                    m[:] = False
                else:
                    m &= self.codes[f"region{depth}"][sel] == code
            else:
                lut = np.zeros(len(self.names["region"]), dtype=bool)
                lut[self.region_codes(f.region)] = True
                m &= lut[self.codes["region"][sel]]
        for place in ("city", "kecamatan", "kelurahan"):
            key = getattr(f, place)
            if key:
                code = self.lookup[place].get(key)
                if code is None:
                    m[:] = False
                else:
                    m &= self.codes[place][sel] == code
        return m

    # -------------------------------------------------------------- persistence
    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {"live": self.live, "ts": self.ts}
        for place in _FIELDS:
            arrays["codes_" + place] = self.codes[place]
            arrays["names_" + place] = np.array(self.names[place], dtype=str)
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> _Columns:
        """Raises ValueError (or KeyError/OSError) when the data is not a saved _Columns."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            out = cls()
            out.live = z["live"].astype(bool)
            out.ts = z["ts"].astype(np.int64)
            for place in _FIELDS:
                out.codes[place] = z["codes_" + place].astype(np.int32)
                out.names[place] = [str(s) for s in z["names_" + place].tolist()]
        n = len(out.live)
        if len(out.ts) != n or any(len(c) != n for c in out.codes.values()):
            raise ValueError("column arrays of different lengths")
        for place in _FIELDS:
            out.lookup[place] = {name: i for i, name in enumerate(out.names[place])}
            codes = out.codes[place]
            if len(out.lookup[place]) != len(out.names[place]) or (
                n and (codes.min() < 0 or codes.max() >= len(out.names[place]))
            ):
                raise ValueError("column vocabulary is inconsistent")
        out.count = int(out.live.sum())
        return out


# --------------------------------------------------------------------------- SQLite
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    # row_id is the faiss id; AUTOINCREMENT: a removed row's id is never reused.
    """CREATE TABLE complaints (
        row_id INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        seq INTEGER NOT NULL,
        text TEXT NOT NULL,
        created_at TEXT,
        created_us INTEGER,
        region_code TEXT,
        region_key TEXT NOT NULL,
        city TEXT,
        city_key TEXT NOT NULL,
        kecamatan TEXT,
        kecamatan_key TEXT NOT NULL,
        kelurahan TEXT,
        kelurahan_key TEXT NOT NULL,
        address TEXT,
        text_hash TEXT NOT NULL,
        snippet TEXT NOT NULL)""",
    "CREATE INDEX complaints_seq ON complaints(seq)",
    "CREATE INDEX complaints_created ON complaints(created_us)",
    "CREATE INDEX complaints_region ON complaints(region_key)",
    "CREATE INDEX complaints_city ON complaints(city_key)",
    "CREATE INDEX complaints_kecamatan ON complaints(kecamatan_key)",
    "CREATE INDEX complaints_kelurahan ON complaints(kelurahan_key)",
    "CREATE INDEX complaints_text_hash ON complaints(text_hash)",
    "CREATE TABLE vectors (row_id INTEGER PRIMARY KEY, vector BLOB NOT NULL)",
    "CREATE TABLE tombstones (row_id INTEGER PRIMARY KEY, seq INTEGER NOT NULL)",
    "CREATE INDEX tombstones_seq ON tombstones(seq)",
)
#: IndexedComplaint fields after `id`, in SELECT order.
_RECORD = (
    "text",
    "created_at",
    "region_code",
    "city",
    "kecamatan",
    "kelurahan",
    "address",
    "text_hash",
    "snippet",
)
_SELECT = "SELECT row_id, id, " + ", ".join(_RECORD) + " FROM complaints"
_COLUMN_SQL = "c.created_us, c.region_key, c.city_key, c.kecamatan_key, c.kelurahan_key"
_INSERT = (
    "INSERT INTO complaints (row_id, id, seq, created_us, region_key, city_key, kecamatan_key, "
    "kelurahan_key, " + ", ".join(_RECORD) + ") VALUES (" + ", ".join("?" * 17) + ")"
)
_UPDATE = (
    "UPDATE complaints SET seq = ?, created_us = ?, region_key = ?, city_key = ?, "
    "kecamatan_key = ?, kelurahan_key = ?, "
    + ", ".join(f"{name} = ?" for name in _RECORD)
    + " WHERE row_id = ?"
)


def _chunks(items: Sequence[Any], size: int = _SQL_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _complaint(row: Sequence[Any]) -> IndexedComplaint:
    """An IndexedComplaint from a `_SELECT` row (row_id first)."""
    return IndexedComplaint(row[1], *row[2:])


def _ids(conn: sqlite3.Connection, sql: str, *params: Any) -> np.ndarray:
    """The first column of a query, as int64 (row ids)."""
    return np.fromiter((r[0] for r in conn.execute(sql, params)), dtype=np.int64)


def _meta_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0])


def _decode(blobs: Sequence[bytes], dim: int, where: Path) -> np.ndarray:
    if any(len(b) != dim * 4 for b in blobs):
        raise ComplaintIndexError(f"{where}: a stored vector has the wrong size; damaged index")
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)


def _stream(
    conn: sqlite3.Connection,
    dim: int,
    where: Path,
    *,
    rowids: np.ndarray | None = None,
    chunk: int = 20_000,
) -> Iterator[tuple[np.ndarray, np.ndarray, list[_ColumnRow]]]:
    """(rowids, vectors, column rows) of every row in rowid order, or of the rowids given."""
    head = (
        f"SELECT c.row_id, v.vector, {_COLUMN_SQL} FROM complaints c "
        "JOIN vectors v ON v.row_id = c.row_id WHERE "
    )
    last = 0
    while True:
        if rowids is None:
            rows = conn.execute(
                head + "c.row_id > ? ORDER BY c.row_id LIMIT ?", (last, chunk)
            ).fetchall()
        else:
            part = [int(r) for r in rowids[last : last + _SQL_CHUNK]]
            last += len(part)
            if not part:
                return
            rows = conn.execute(head + f"c.row_id IN ({_marks(len(part))})", part).fetchall()
        if not rows:
            if rowids is None:
                return
            continue
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        yield ids, _decode([r[1] for r in rows], dim, where), [r[2:] for r in rows]
        if rowids is None:
            last = int(ids[-1])


def _fetch_vectors(
    conn: sqlite3.Connection, rowids: np.ndarray, dim: int, where: Path
) -> np.ndarray:
    """Vectors of existing rowids, in the order given."""
    out = np.empty((len(rowids), dim), dtype=np.float32)
    pos = {int(r): i for i, r in enumerate(rowids)}
    for part in _chunks([int(r) for r in rowids]):
        sql = f"SELECT row_id, vector FROM vectors WHERE row_id IN ({_marks(len(part))})"
        rows = conn.execute(sql, part).fetchall()
        if len(rows) != len(part):
            raise ComplaintIndexError(f"{where}: a complaint has no stored vector; damaged index")
        out[[pos[r[0]] for r in rows]] = _decode([r[1] for r in rows], dim, where)
    return out


# --------------------------------------------------------------------------- faiss
def auto_nlist(n: int, points_per_list: int = 40) -> int:
    """IVF list count for n vectors: the power of two nearest 4*sqrt(n), with at least
    `points_per_list` training points per list."""
    nlist = 2 ** round(math.log2(4 * math.sqrt(max(n, 1))))
    while nlist > 1 and nlist * points_per_list > n:
        nlist //= 2
    return int(min(nlist, 65_536))


def _new_flat(dim: int) -> Any:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def _new_ivf(dim: int, nlist: int, seed: int) -> Any:
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.spherical = True  # centroids on the unit sphere, like the vectors
    ivf.cp.seed = seed
    return ivf


def _kind(index: Any) -> str:
    return "ivf" if isinstance(index, faiss.IndexIVF) else "flat"


def _remove_ids(index: Any, rowids: np.ndarray) -> None:
    if not len(rowids):
        return
    ids = np.ascontiguousarray(rowids, dtype=np.int64)
    if isinstance(index, faiss.IndexIVF):  # hash-table direct map: targeted removal
        index.remove_ids(faiss.IDSelectorArray(ids))
    else:  # IndexIDMap2 scans its id map once against a hash set
        index.remove_ids(faiss.IDSelectorBatch(ids))


class _TopK:
    """Running exact top-k (by inner product) of a few queries over streamed chunks."""

    def __init__(self, queries: np.ndarray, k: int) -> None:
        self.queries = queries
        self.k = k
        self.scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        self.ids = np.zeros((len(queries), 0), dtype=np.int64)

    def update(self, rowids: np.ndarray, vectors: np.ndarray) -> None:
        scores = np.concatenate([self.scores, self.queries @ vectors.T], axis=1)
        wide = np.broadcast_to(rowids, (len(self.queries), len(rowids)))
        ids = np.concatenate([self.ids, wide], axis=1)
        if scores.shape[1] > self.k:
            part = np.argpartition(-scores, self.k - 1, axis=1)[:, : self.k]
            scores = np.take_along_axis(scores, part, 1)
            ids = np.take_along_axis(ids, part, 1)
        self.scores, self.ids = scores, ids


def _recall(
    found_scores: np.ndarray,
    found_ids: np.ndarray,
    exact: list[np.ndarray],
    own: np.ndarray,
    k: int,
) -> float:
    """Tie-robust recall@k with each query's own row left out: the share of the exact
    top k (scores, best first, own row already left out) whose k-th score or better
    the approximate search found."""
    total = 0.0
    for i, ex in enumerate(exact):
        got = found_scores[i][(found_ids[i] != own[i]) & (found_ids[i] >= 0)][:k]
        total += min(len(ex), int((got >= ex[-1] - 1e-5).sum())) / len(ex)
    return total / max(len(exact), 1)


def _member(rowids: np.ndarray, share: float) -> np.ndarray:
    """A fixed pseudo-random subset of the rows (about `share` of them): a stand-in for a
    filter that is unrelated to the content, such as a time window or a region."""
    mixed = (rowids.astype(np.uint64) * np.uint64(2654435761)) % np.uint64(2**32)
    return mixed < np.uint64(share * 2**32)


def _calibrate(
    ivf: Any, exact: _TopK, own: np.ndarray, target: float
) -> tuple[int, float, dict[str, Any]]:
    """Measure, on stored vectors used as queries (their own row left out):

    - nprobe: the smallest power of two whose recall@10 reaches `target`;
    - the filter boost: with a filter passing a share p of the rows, search probes
      nprobe * boost / p lists; the smallest boost in 1, 2, 4, ... reaching `target`
      on pseudo-random subsets of 10% and 2% of the rows (the largest of the two).
    """
    k = _CALIBRATION_K
    order = np.argsort(-exact.scores, axis=1)
    scores = np.take_along_axis(exact.scores, order, 1)
    ids = np.take_along_axis(exact.ids, order, 1)
    plain = [s[i != o][:k] for s, i, o in zip(scores, ids, own, strict=True)]
    curve: list[dict[str, float]] = []
    nprobe = 1
    while True:
        nprobe = min(nprobe, ivf.nlist)
        params = faiss.SearchParametersIVF(nprobe=nprobe)
        found_scores, found_ids = ivf.search(exact.queries, k + 1, params=params)
        recall = _recall(found_scores, found_ids, plain, own, k)
        curve.append({"nprobe": nprobe, "recall": round(recall, 4)})
        if curve[-1]["recall"] >= target or nprobe >= ivf.nlist:
            break
        nprobe *= 2
    boosts: dict[str, Any] = {}
    boost = 1.0
    for share in (0.1, 0.02):
        exact_f, queries, owners = [], [], []
        for q in range(len(own)):
            keep = _member(ids[q], share) & (ids[q] != own[q])
            if keep.sum() >= k:  # the exact filtered top k is inside the kept top list
                exact_f.append(scores[q][keep][:k])
                queries.append(q)
                owners.append(own[q])
        if len(queries) < len(own) // 2:
            continue  # too few rows for this share to measure it
        top = int(ids.max()) + 1
        bits = np.packbits(_member(np.arange(top), share), bitorder="little")
        sel = faiss.IDSelectorBitmap(bits)
        measured = []
        factor = 1.0
        while True:
            probe = min(ivf.nlist, math.ceil(nprobe * factor / share))
            params = faiss.SearchParametersIVF(sel=sel, nprobe=probe)
            found_scores, found_ids = ivf.search(exact.queries[queries], k + 1, params=params)
            recall = _recall(found_scores, found_ids, exact_f, np.array(owners), k)
            measured.append({"boost": factor, "nprobe": probe, "recall": round(recall, 4)})
            if recall >= target or probe >= ivf.nlist:
                break
            factor *= 2
        boosts[f"share {share}"] = measured
        boost = max(boost, factor)
    return nprobe, boost, {"nprobe": curve, "filter": boosts}


class _RowCodes:
    """8-bit scalar-quantised copies of the vectors, indexed by rowid (IVF caches only).

    Exact scoring of the few rows a selective filter passes needs their vectors;
    faiss's IVF reconstructs each through a hash-table lookup and a random read.
    Here the rows' codes are one gather from a contiguous array and a SIMD scan,
    and each query's best candidates by the codes are then scored again in full
    precision (`FaissSqliteIndex._exact`). A quarter of the float32
    vectors' memory (366 MiB at 1M 384-dim vectors).
    """

    #: Widen each dimension's trained min..max range by this share on both sides, so
    #: vectors added after training rarely fall outside it (those are clipped).
    RANGE_MARGIN = 0.05
    CHUNK = 16384  # rows scanned at a time (bounds the copy of their codes: 6 MiB)

    def __init__(self, sq: Any, codes: np.ndarray) -> None:
        self.sq = sq
        self.codes = codes

    @classmethod
    def train(cls, sample: np.ndarray, capacity: int) -> _RowCodes:
        """A quantiser with per-dimension ranges fitted on `sample` (n, dim) float32."""
        dim = sample.shape[1]
        sq = faiss.ScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit)
        sq.rangestat = faiss.ScalarQuantizer.RS_minmax
        sq.rangestat_arg = cls.RANGE_MARGIN
        sq.train(np.ascontiguousarray(sample, dtype=np.float32))
        return cls(sq, np.zeros((capacity, sq.code_size), dtype=np.uint8))

    def nbytes(self) -> int:
        return int(self.codes.nbytes)

    def set_rows(self, rowids: np.ndarray, vectors: np.ndarray) -> None:
        """Store the codes of `vectors` at `rowids` (growing the array as needed)."""
        rid = np.asarray(rowids, dtype=np.int64)
        if not len(rid):
            return
        needed = int(rid.max()) + 1
        if needed > len(self.codes):
            new = _grown_capacity(len(self.codes), needed)
            grown = np.zeros((new, self.codes.shape[1]), dtype=np.uint8)
            grown[: len(self.codes)] = self.codes
            self.codes = grown
        self.codes[rid] = self.sq.compute_codes(np.ascontiguousarray(vectors, dtype=np.float32))

    def candidates(self, queries: np.ndarray, rowids: np.ndarray, m: int) -> np.ndarray:
        """Per query, the (at most) m rowids among `rowids` with the highest inner product
        by their codes; rows padded with -1.

        The rows' codes are copied into a scratch faiss IndexScalarQuantizer, whose
        search computes the inner products on the codes directly (SIMD), without
        writing the decoded vectors out.
        """
        m = min(m, len(rowids))
        scan = faiss.IndexScalarQuantizer(
            self.sq.d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        faiss.copy_array_to_vector(faiss.vector_to_array(self.sq.trained), scan.sq.trained)
        scan.is_trained = True
        scores: list[np.ndarray] = []
        found: list[np.ndarray] = []
        for lo in range(0, len(rowids), self.CHUNK):
            part = rowids[lo : lo + self.CHUNK]
            faiss.copy_array_to_vector(np.take(self.codes, part, axis=0).ravel(), scan.codes)
            scan.ntotal = len(part)
            s, pos = scan.search(queries, min(m, len(part)))
            scores.append(s)
            found.append(np.where(pos >= 0, part[np.maximum(pos, 0)], -1))
        s, r = np.concatenate(scores, axis=1), np.concatenate(found, axis=1)
        if s.shape[1] > m:
            top = np.argpartition(-s, m - 1, axis=1)[:, :m]
            r = np.take_along_axis(r, top, 1)
        return r

    def to_bytes(self, capacity: int) -> bytes:
        buf = io.BytesIO()
        trained = faiss.vector_to_array(self.sq.trained)
        np.savez(buf, trained=trained, codes=self.codes[:capacity])
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, dim: int) -> _RowCodes:
        """Raises ValueError (or KeyError/OSError) when the data is not saved _RowCodes."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            trained = np.ascontiguousarray(z["trained"], dtype=np.float32)
            codes = np.ascontiguousarray(z["codes"], dtype=np.uint8)
        sq = faiss.ScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit)
        if trained.shape != (2 * dim,) or codes.ndim != 2 or codes.shape[1] != sq.code_size:
            raise ValueError("row codes of the wrong shape")
        faiss.copy_array_to_vector(trained, sq.trained)
        return cls(sq, codes)


@dataclass
class _Cache:
    """A faiss index and the filter columns, both reflecting SQLite at change `seq`."""

    index: Any
    columns: _Columns
    seq: int
    nprobe: int = 0  # IVF only
    filter_boost: float = 1.0  # IVF only: a filter passing share p probes nprobe*boost/p
    trained_size: int = 0  # IVF only: rows when it was trained
    build: dict[str, Any] = field(default_factory=dict)  # how it was built (timings, calibration)
    codes: _RowCodes | None = None  # IVF only: 8-bit copies for exact filtered scoring

    @property
    def kind(self) -> str:
        return _kind(self.index)

    @property
    def nlist(self) -> int:
        return int(self.index.nlist) if self.kind == "ivf" else 0

    def put(self, rowids: np.ndarray, vectors: np.ndarray, rows: Sequence[_ColumnRow]) -> None:
        """Add rows (not already in it) to every part of the cache: the faiss index, the
        filter columns and, for IVF, the row codes."""
        self.index.add_with_ids(vectors, rowids)
        self.columns.set_rows(rowids, rows)
        if self.codes is not None:
            self.codes.set_rows(rowids, vectors)


def _build(
    conn: sqlite3.Connection,
    dim: int,
    kind: str,
    opts: IndexOptions,
    where: Path,
    cancel: threading.Event | None = None,
) -> _Cache:
    """Build the cache from SQLite inside one read transaction (a consistent snapshot,
    so it can run on its own connection while another thread writes)."""
    started = time.perf_counter()
    info: dict[str, Any] = {"kind": kind}
    conn.execute("BEGIN")
    try:
        seq = _meta_seq(conn)
        rowids = _ids(conn, "SELECT row_id FROM complaints INDEXED BY complaints_seq")
        n = len(rowids)
        exact: _TopK | None = None
        codes: _RowCodes | None = None
        self_ids = rowids[:0]
        if kind == "ivf":
            rng = np.random.default_rng(opts.seed)
            nlist = min(opts.nlist or auto_nlist(n, opts.train_points_per_list), max(n, 1))
            index = _new_ivf(dim, nlist, opts.seed)
            sample = np.sort(rng.choice(rowids, min(n, nlist * opts.train_points_per_list), False))
            t0 = time.perf_counter()
            train_x = _fetch_vectors(conn, sample, dim, where)
            index.train(train_x)
            codes = _RowCodes.train(train_x, int(rowids.max()) + 1)
            info.update(nlist=nlist, train_points=len(sample), train_s=time.perf_counter() - t0)
            index.set_direct_map_type(faiss.DirectMap.Hashtable)
            if opts.nprobe is None:
                self_ids = np.sort(rng.choice(rowids, min(n, _CALIBRATION_QUERIES), False))
                exact = _TopK(_fetch_vectors(conn, self_ids, dim, where), _CALIBRATION_WIDE)
        else:
            index = _new_flat(dim)
        columns = _Columns(int(rowids.max()) + 1 if n else 0)
        cache = _Cache(index, columns, seq, trained_size=n if kind == "ivf" else 0, codes=codes)
        for ids, vecs, cols in _stream(conn, dim, where):
            if cancel is not None and cancel.is_set():
                raise _Cancelled
            cache.put(ids, vecs, cols)
            if exact is not None:
                exact.update(ids, vecs)
    finally:
        conn.execute("COMMIT")
    if kind == "ivf":
        if exact is not None:
            cache.nprobe, cache.filter_boost, info["calibration"] = _calibrate(
                index, exact, self_ids, opts.target_recall
            )
        else:
            cache.nprobe = min(opts.nprobe or 1, index.nlist)
            cache.filter_boost = 2.0
        if opts.filter_boost is not None:
            cache.filter_boost = opts.filter_boost
        index.nprobe = cache.nprobe
        info.update(nprobe=cache.nprobe, filter_boost=cache.filter_boost)
    info.update(rows=n, seconds=round(time.perf_counter() - started, 3))
    cache.build = info
    return cache


class _Cancelled(Exception):
    """A background build stopped because the index is closing."""


def _catch_up(cache: _Cache, conn: sqlite3.Connection, dim: int, where: Path) -> int:
    """Apply the changes committed after `cache.seq` (one read transaction); returns how
    many rows were removed or (re)added."""
    conn.execute("BEGIN")
    try:
        seq = _meta_seq(conn)
        if seq == cache.seq:
            return 0
        removed = _ids(conn, "SELECT row_id FROM tombstones WHERE seq > ?", cache.seq)
        changed = _ids(
            conn, "SELECT row_id FROM complaints WHERE seq > ? ORDER BY row_id", cache.seq
        )
        _remove_ids(cache.index, np.concatenate([removed, changed]))
        cache.columns.kill(removed)
        for ids, vecs, cols in _stream(conn, dim, where, rowids=changed):
            cache.put(ids, vecs, cols)
        cache.seq = seq
        return len(removed) + len(changed)
    finally:
        conn.execute("COMMIT")


# --------------------------------------------------------------------------- snapshots
def _write_durably(target: Path, write: Any) -> tuple[int, int]:
    """Write `target` through `write(fh) -> crc32` into a temporary file, fsync it and
    rename it into place; returns (size, crc32). A kill leaves only a temporary file."""
    tmp = target.with_name(f"{TMP_PREFIX}{secrets.token_hex(4)}-{target.name}")
    try:
        with open(tmp, "wb") as fh:
            crc = write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        size = tmp.stat().st_size
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return size, crc


def _write_faiss(index: Any, fh: Any) -> int:
    crc = 0

    def sink(chunk: bytes) -> None:
        nonlocal crc
        fh.write(chunk)
        crc = zlib.crc32(chunk, crc)

    faiss.write_index(index, faiss.PyCallbackIOWriter(sink))
    return crc


def _write_bytes(data: bytes) -> Any:
    def write(fh: Any) -> int:
        fh.write(data)
        return zlib.crc32(data)

    return write


def write_snapshot(folder: Path, cache: _Cache, info: dict[str, Any]) -> dict[str, Any]:
    """Save `cache` (faiss index + filter columns) as the folder's snapshot.

    The data files get fresh names; `snapshot.json`, which names them with their
    sizes and CRC32s, is renamed into place last (the commit point), then files of
    older snapshots are deleted.
    """
    stem = f"snapshot-{cache.seq}-{secrets.token_hex(4)}"
    faiss_name, columns_name = stem + ".faiss", stem + ".columns.npz"
    faiss_size, faiss_crc = _write_durably(
        folder / faiss_name, lambda fh: _write_faiss(cache.index, fh)
    )
    columns_size, columns_crc = _write_durably(
        folder / columns_name, _write_bytes(cache.columns.to_bytes())
    )
    files = {
        "faiss": {"name": faiss_name, "size": faiss_size, "crc32": faiss_crc},
        "columns": {"name": columns_name, "size": columns_size, "crc32": columns_crc},
    }
    if cache.codes is not None:
        codes_name = stem + ".codes.npz"
        codes_size, codes_crc = _write_durably(
            folder / codes_name, _write_bytes(cache.codes.to_bytes(cache.columns.capacity))
        )
        files["codes"] = {"name": codes_name, "size": codes_size, "crc32": codes_crc}
    meta = {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        **info,
        "seq": cache.seq,
        "ntotal": int(cache.index.ntotal),
        "kind": cache.kind,
        "nlist": cache.nlist,
        "nprobe": cache.nprobe,
        "filter_boost": cache.filter_boost,
        "trained_size": cache.trained_size,
        "build": cache.build,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": files,
    }
    _write_durably(folder / SNAPSHOT_FILE, _write_bytes(json.dumps(meta, indent=1).encode()))
    fsync_dir(folder)
    for old in folder.glob("snapshot-*"):
        if old.name not in {f["name"] for f in files.values()}:
            old.unlink(missing_ok=True)
    return meta


class _SnapshotUnusable(Exception):
    """The snapshot is missing, torn, foreign or stale (the message says which)."""


def _read_checked(path: Path, info: Any, verify: bool, read: Any) -> Any:
    """Call `read(source)` where source(n) returns the file's next n bytes; checks the
    recorded size and (with `verify`) CRC32 of what was read."""
    if not isinstance(info, dict) or not isinstance(info.get("name"), str):
        raise _SnapshotUnusable("snapshot.json lists no data file")
    file = path / info["name"]
    if Path(info["name"]).name != info["name"] or not file.is_file():
        raise _SnapshotUnusable(f"{info['name']} is missing")
    if file.stat().st_size != info.get("size"):
        raise _SnapshotUnusable(f"{file.name} has the wrong size (torn or replaced)")
    crc = 0
    with open(file, "rb") as fh:

        def source(n: int) -> bytes:
            nonlocal crc
            chunk = fh.read(n)
            if verify:
                crc = zlib.crc32(chunk, crc)
            return chunk

        try:
            out = read(source)
        except Exception as exc:  # faiss raises RuntimeError, numpy ValueError/KeyError...
            raise _SnapshotUnusable(f"{file.name} cannot be read ({type(exc).__name__})") from exc
        if verify:
            crc = zlib.crc32(fh.read(), crc)  # anything the reader left
            if crc != info.get("crc32"):
                raise _SnapshotUnusable(f"{file.name} fails its checksum")
    return out


def read_snapshot(folder: Path, *, db_uuid: str, dim: int, verify: bool = True) -> _Cache:
    """Load the folder's snapshot; raises _SnapshotUnusable saying why it cannot be used."""
    meta_file = folder / SNAPSHOT_FILE
    if not meta_file.is_file():
        raise _SnapshotUnusable("there is no snapshot")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _SnapshotUnusable("snapshot.json is not valid JSON") from exc
    if not isinstance(meta, dict) or meta.get("format") != SNAPSHOT_FORMAT:
        raise _SnapshotUnusable("snapshot.json is not an aduan index snapshot")
    if meta.get("version") != SNAPSHOT_VERSION:
        raise _SnapshotUnusable(f"snapshot version {meta.get('version')!r} is not supported")
    if meta.get("db_uuid") != db_uuid:
        raise _SnapshotUnusable("the snapshot belongs to another index database")
    files = meta.get("files") or {}

    def read_index(source: Any) -> Any:
        return faiss.read_index(faiss.PyCallbackIOReader(source))

    index = _read_checked(folder, files.get("faiss"), verify, read_index)
    columns = _read_checked(
        folder, files.get("columns"), verify, lambda source: _Columns.from_bytes(source(-1))
    )
    if index.d != dim or _kind(index) != meta.get("kind"):
        raise _SnapshotUnusable("the snapshot's faiss index does not match snapshot.json")
    if index.ntotal != meta.get("ntotal") or columns.count != index.ntotal:
        raise _SnapshotUnusable("the snapshot's faiss index and columns disagree in size")
    if not isinstance(meta.get("seq"), int):
        raise _SnapshotUnusable("snapshot.json has no change sequence")
    cache = _Cache(index, columns, meta["seq"], build=dict(meta.get("build") or {}))
    if cache.kind == "ivf":
        cache.nprobe = int(meta.get("nprobe") or index.nprobe)
        cache.filter_boost = float(meta.get("filter_boost") or 1.0)
        cache.trained_size = int(meta.get("trained_size") or index.ntotal)
        index.nprobe = cache.nprobe
        if index.direct_map.type != faiss.DirectMap.Hashtable:
            raise _SnapshotUnusable("the snapshot's IVF index has no hash-table direct map")
        cache.codes = _read_checked(
            folder, files.get("codes"), verify, lambda source: _RowCodes.from_bytes(source(-1), dim)
        )
        live = np.flatnonzero(columns.live)
        if len(live) and live[-1] >= len(cache.codes.codes):
            raise _SnapshotUnusable("the snapshot's row codes do not cover its rows")
    return cache


# --------------------------------------------------------------------------- the index
class FaissSqliteIndex:
    """The embedded duplicate index: SQLite (source of truth) + faiss (search cache).

    Open it with `open_index`; use it as a context manager or call `close()`,
    which also saves the faiss snapshot. All methods are thread-safe.
    """

    def __init__(
        self, path: Path, *, dim: int, embedding_id: str, create: bool, options: IndexOptions
    ) -> None:
        self.path = path
        self.dim = dim
        self.embedding_id = embedding_id
        self.options = options
        self._lock = threading.RLock()
        self._snapshot_lock = threading.Lock()  # one snapshot writer at a time
        self._closed = False
        self._lock_file: Any = None
        self._conn: sqlite3.Connection | None = None
        self._db_uuid = ""
        self._seq = 0
        self._next_rowid = 1
        self._count = 0
        self._disk_snapshot_seq: int | None = None  # seq of the snapshot on disk
        self._loaded_from = "new"
        self._replayed = 0
        self._open_seconds = 0.0
        self._build_thread: threading.Thread | None = None
        self._build_seq: int | None = None  # start seq of the running background build
        self._build_cancel = threading.Event()
        self._build_failed_at = 0  # size at which the last background build failed
        self._build_error = ""
        started = time.perf_counter()
        try:
            self._take_lock_file()
            self._open_db(create)
            self._cache = self._load_cache()
        except BaseException:
            self._release()
            raise
        self._open_seconds = time.perf_counter() - started
        self._maybe_rebuild()

    # ------------------------------------------------------------------ opening
    def _take_lock_file(self) -> None:
        self._lock_file = open(self.path / LOCK_FILE, "a+b")  # held (and locked) while open
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ComplaintIndexError(
                f"{self.path}: the index is already open (in another process, or twice in "
                "this one); close it first, or share one open index between threads"
            ) from None

    def _open_db(self, create: bool) -> None:
        db = self.path / DB_FILE
        existed = db.is_file()
        if not existed and not create:
            raise ComplaintIndexError(f"{self.path}: no complaint index here ({DB_FILE} missing)")
        try:
            conn = sqlite3.connect(
                str(db), isolation_level=None, check_same_thread=False, timeout=30
            )
        except sqlite3.Error as exc:
            raise ComplaintIndexError(f"{self.path}: cannot open {DB_FILE} ({exc})") from exc
        self._conn = conn
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise ComplaintIndexError(f"{self.path}: SQLite refused WAL mode ({mode})")
            conn.execute(f"PRAGMA synchronous={self.options.synchronous.upper()}")
            conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache
            # Checkpoint (copy the WAL into the database, with an fsync) every ~64 MiB
            # rather than every 4 MiB: a checkpoint per add() batch made commits ~80 ms.
            conn.execute("PRAGMA wal_autocheckpoint=16384")
            conn.execute("PRAGMA journal_size_limit=67108864")  # WAL back to 64 MiB after use
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.DatabaseError as exc:
            raise ComplaintIndexError(
                f"{self.path}: {DB_FILE} is damaged or not an SQLite database ({exc})"
            ) from exc
        if "meta" not in tables:
            if tables - {"sqlite_sequence"}:
                raise ComplaintIndexError(
                    f"{self.path}: {DB_FILE} is not an aduan complaint index (other tables)"
                )
            if not create:
                raise ComplaintIndexError(f"{self.path}: {DB_FILE} holds no complaint index")
            self._create_schema()
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        self._check_meta(meta)
        self._db_uuid = meta["db_uuid"]
        self._seq = int(meta["seq"])
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'complaints'").fetchone()
        self._next_rowid = (int(row[0]) if row else 0) + 1
        self._count = int(conn.execute("SELECT count(*) FROM complaints").fetchone()[0])

    def _create_schema(self) -> None:
        assert self._conn is not None
        meta = {
            "format": FORMAT,
            "schema_version": str(SCHEMA_VERSION),
            "dim": str(self.dim),
            "embedding_id": self.embedding_id,
            "db_uuid": secrets.token_hex(16),
            "seq": "0",
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with self._write():
            for statement in _SCHEMA:
                self._conn.execute(statement)
            self._conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())

    def _check_meta(self, meta: dict[str, str]) -> None:
        if meta.get("format") != FORMAT:
            raise ComplaintIndexError(f"{self.path}: {DB_FILE} is not an aduan complaint index")
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise ComplaintIndexError(
                f"{self.path}: index schema version {meta.get('schema_version')!r} is not "
                f"supported by this aduan (it reads version {SCHEMA_VERSION})"
            )
        stored_dim, stored_id = meta.get("dim"), meta.get("embedding_id")
        if stored_dim != str(self.dim) or stored_id != self.embedding_id:
            raise ComplaintIndexError(
                f"{self.path}: this index holds {stored_dim}-dimensional vectors of embedding "
                f"{stored_id!r}, not {self.dim}-dimensional vectors of {self.embedding_id!r}; "
                "re-embed its stored texts (iter_complaints) into a new index"
            )
        if not meta.get("db_uuid") or not str(meta.get("seq", "")).isdigit():
            raise ComplaintIndexError(f"{self.path}: {DB_FILE} has damaged index metadata")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the main connection (caller holds the lock)."""
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _db(self) -> sqlite3.Connection:
        if self._closed or self._conn is None:
            raise ComplaintIndexError(f"{self.path}: the index is closed")
        return self._conn

    def _load_cache(self) -> _Cache:
        """The snapshot brought up to date, or (when unusable) a rebuild from SQLite."""
        conn = self._db()
        self._cleanup_temporary_files()
        if self.options.snapshot:
            try:
                cache = read_snapshot(
                    self.path,
                    db_uuid=self._db_uuid,
                    dim=self.dim,
                    verify=self.options.verify_snapshot,
                )
                if cache.seq > self._seq:
                    raise _SnapshotUnusable("the snapshot is newer than the database")
                snapshot_seq = cache.seq
                self._replayed = _catch_up(cache, conn, self.dim, self.path)
                if cache.index.ntotal != self._count or cache.columns.count != self._count:
                    raise _SnapshotUnusable("the snapshot does not match the database")
                self._disk_snapshot_seq = snapshot_seq
                self._loaded_from = "snapshot"
                return cache
            except _SnapshotUnusable as exc:
                if (self.path / SNAPSHOT_FILE).exists():
                    log.warning("%s: ignoring the faiss snapshot: %s; rebuilding", self.path, exc)
        big = self._count >= self.options.ivf_threshold
        kind = "ivf" if big and not self.options.background else "flat"
        self._loaded_from = "rebuild" if self._count else "new"
        return _build(conn, self.dim, kind, self.options, self.path)

    def _cleanup_temporary_files(self) -> None:
        """Delete what a killed snapshot writer left (temporary and unreferenced files)."""
        keep: set[str] = set()
        with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
            meta = json.loads((self.path / SNAPSHOT_FILE).read_text(encoding="utf-8"))
            keep = {f["name"] for f in meta["files"].values()}
        for p in self.path.iterdir():
            stale = p.name.startswith(TMP_PREFIX) or (
                p.name.startswith("snapshot-") and p.name not in keep
            )
            if stale and p.is_file():
                p.unlink(missing_ok=True)

    # ------------------------------------------------------------- IVF (re)builds
    def _rebuild_due(self) -> bool:
        cache = self._cache
        n = self._count
        if self._build_failed_at and n < 2 * self._build_failed_at:
            return False
        if cache.kind == "flat":
            return n >= self.options.ivf_threshold
        return n >= cache.trained_size * self.options.retrain_growth

    def _maybe_rebuild(self) -> None:
        """Start an IVF (re)build when the size calls for one (caller may hold the lock)."""
        with self._lock:
            if self._closed or self._build_seq is not None or not self._rebuild_due():
                return
            if not self.options.background:
                cache = _build(self._db(), self.dim, "ivf", self.options, self.path)
                self._install(cache)
                if self.options.snapshot:  # as a background build does: the next open
                    self._save_snapshot(cache)  # loads it instead of building again
                return
            self._build_seq = self._seq
            self._build_cancel.clear()
            self._build_thread = threading.Thread(
                target=self._background_build, name="aduan-index-build", daemon=True
            )
            self._build_thread.start()

    def _background_build(self) -> None:
        """Build IVF on a separate read connection while the old index serves, save it as
        the snapshot, replay the changes made meanwhile, then swap it in."""
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                f"file:{self.path / DB_FILE}?mode=ro", uri=True, isolation_level=None, timeout=30
            )
            cache = _build(conn, self.dim, "ivf", self.options, self.path, self._build_cancel)
            if self.options.snapshot and not self._build_cancel.is_set():
                self._save_snapshot(cache)
            _catch_up(cache, conn, self.dim, self.path)  # most of the backlog, unlocked
            with self._lock:
                if self._closed or self._build_cancel.is_set():
                    return
                _catch_up(cache, self._db(), self.dim, self.path)
                self._install(cache)
                self._build_seq = None
                self._prune_tombstones()
            log.info("%s: IVF index built (%s)", self.path, cache.build)
        except _Cancelled:
            pass
        except Exception as exc:  # keep serving with the old index; say why once
            self._build_failed_at = max(self._count, 1)
            self._build_error = f"{type(exc).__name__}: {exc}"
            log.error("%s: background IVF build failed: %s", self.path, self._build_error)
        finally:
            with self._lock:
                self._build_seq = None
            if conn is not None:
                conn.close()

    def _install(self, cache: _Cache) -> None:
        if cache.index.ntotal != self._count or cache.seq != self._seq:
            raise ComplaintIndexError(f"{self.path}: a rebuilt index does not match the database")
        self._cache = cache
        self._build_failed_at = 0
        self._build_error = ""

    # ----------------------------------------------------------------- snapshots
    def _save_snapshot(self, cache: _Cache) -> None:
        info = {"db_uuid": self._db_uuid, "dim": self.dim, "embedding_id": self.embedding_id}
        with self._snapshot_lock:
            write_snapshot(self.path, cache, info)
            self._disk_snapshot_seq = cache.seq

    def _prune_tombstones(self) -> None:
        """Tombstones are needed only to replay changes after the snapshot on disk (and
        after the start of a running background build); older ones are deleted."""
        bound = self._disk_snapshot_seq
        if bound is None:
            return
        if self._build_seq is not None:
            bound = min(bound, self._build_seq)
        with self._write() as conn:
            conn.execute("DELETE FROM tombstones WHERE seq <= ?", (bound,))

    def checkpoint(self) -> bool:
        """Save the faiss snapshot now if it is behind the database (True if written),
        so the next open replays less. Blocks other calls while it writes (~1-2 s per
        GB of vectors); `close()` does it too."""
        with self._lock:
            self._db()
            if not self.options.snapshot or self._disk_snapshot_seq == self._seq:
                return False
            self._save_snapshot(self._cache)
            self._prune_tombstones()
            return True

    # ------------------------------------------------------------------ writing
    def _check_vectors(self, vectors: Any, n: int | None, what: str) -> np.ndarray:
        try:
            arr = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError):
            raise ComplaintIndexError(f"{self.path}: {what} are not a numeric array") from None
        if n is None and arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            got = arr.shape[-1] if arr.ndim else 0
            raise ComplaintIndexError(
                f"{self.path}: {what} have {got} dimensions (shape {tuple(arr.shape)}); this "
                f"index holds {self.dim}-dimensional vectors of {self.embedding_id!r}"
            )
        if n is not None and arr.shape[0] != n:
            raise ComplaintIndexError(
                f"{self.path}: {arr.shape[0]} vectors for {n} complaints; give one row each"
            )
        if not np.isfinite(arr).all():
            raise ComplaintIndexError(f"{self.path}: {what} contain NaN or infinite values")
        return np.ascontiguousarray(arr)

    def _row(self, c: Any) -> tuple[tuple[Any, ...], _ColumnRow]:
        """The stored record of a complaint and its filter columns (validated)."""
        if not isinstance(c, IndexedComplaint):
            raise ComplaintIndexError(f"{self.path}: add() takes IndexedComplaint records")
        if not isinstance(c.id, str) or not c.id:
            raise ComplaintIndexError(f"{self.path}: a complaint id must be a non-empty string")
        record = tuple(getattr(c, name) for name in _RECORD)
        for name, value in zip(_RECORD, record, strict=True):
            required = name in ("text", "text_hash", "snippet")
            if not (isinstance(value, str) or (value is None and not required)):
                raise ComplaintIndexError(
                    f"{self.path}: complaint {c.id!r}: field {name!r} must be a string"
                    + ("" if required else " or None")
                )
        created_us = None
        if c.created_at is not None and c.created_at.strip():
            try:
                created_us = epoch_us(c.created_at)
            except ValueError:
                raise ComplaintIndexError(
                    f"{self.path}: complaint {c.id!r}: created_at is not ISO 8601: {c.created_at!r}"
                ) from None
        columns = (
            created_us,
            region_key(c.region_code),
            place_key(c.city),
            place_key(c.kecamatan),
            place_key(c.kelurahan),
        )
        return record, columns

    def add(self, complaints: Sequence[IndexedComplaint], vectors: np.ndarray) -> list[bool]:
        """Add or replace complaints by id (see `ComplaintIndex.add`); one transaction.

        Returns, per complaint, True where the row was added or changed and False
        where an identical row (same metadata, same vector bytes) was already there.
        """
        items = list(complaints)
        vecs = self._check_vectors(vectors, len(items), "vectors")
        rows = [self._row(c) for c in items]
        ids = [c.id for c in items]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ComplaintIndexError(f"{self.path}: id {dup!r} appears twice in one add()")
        if not items:
            return []
        with self._lock:
            conn = self._db()
            existing = self._existing(conn, ids)
            result: list[bool] = []
            new: list[int] = []
            changed: list[tuple[int, int]] = []  # (position, rowid)
            for i, c in enumerate(items):
                old = existing.get(c.id)
                if old is None:
                    new.append(i)
                elif old[1] != rows[i][0] or old[2] != vecs[i].tobytes():
                    changed.append((i, old[0]))
                else:
                    result.append(False)
                    continue
                result.append(True)
            if not new and not changed:
                return result
            seq = self._seq + 1
            new_rowids = list(range(self._next_rowid, self._next_rowid + len(new)))
            with self._write():
                conn.executemany(
                    _UPDATE,
                    [(seq, *rows[i][1], *rows[i][0], rowid) for i, rowid in changed],
                )
                conn.executemany(
                    "UPDATE vectors SET vector = ? WHERE row_id = ?",
                    [(vecs[i].tobytes(), rowid) for i, rowid in changed],
                )
                conn.executemany(
                    _INSERT,
                    [
                        (rowid, ids[i], seq, *rows[i][1], *rows[i][0])
                        for i, rowid in zip(new, new_rowids, strict=True)
                    ],
                )
                conn.executemany(
                    "INSERT INTO vectors (row_id, vector) VALUES (?, ?)",
                    [(rowid, vecs[i].tobytes()) for i, rowid in zip(new, new_rowids, strict=True)],
                )
                conn.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (str(seq),))
            # Committed: now the caches (a failure below would only make them stale, and
            # the next open rebuilds them from SQLite).
            self._seq = seq
            self._next_rowid += len(new)
            self._count += len(new)
            order = [i for i, _ in changed] + new
            rowids = np.array([r for _, r in changed] + new_rowids, dtype=np.int64)
            _remove_ids(self._cache.index, rowids[: len(changed)])
            self._cache.put(rowids, vecs[order], [rows[i][1] for i in order])
            self._cache.seq = seq
        self._maybe_rebuild()
        return result

    def _existing(
        self, conn: sqlite3.Connection, ids: Sequence[str]
    ) -> dict[str, tuple[int, tuple[Any, ...], bytes]]:
        """id -> (rowid, stored record, vector bytes) for the ids already stored."""
        out = {}
        cols = ", ".join(f"c.{name}" for name in _RECORD)
        for part in _chunks(ids):
            sql = (
                f"SELECT c.row_id, c.id, {cols}, v.vector FROM complaints c "
                f"JOIN vectors v ON v.row_id = c.row_id WHERE c.id IN ({_marks(len(part))})"
            )
            for row in conn.execute(sql, part):
                out[row[1]] = (row[0], tuple(row[2:-1]), bytes(row[-1]))
        return out

    def remove(self, ids: Sequence[str]) -> int:
        """Remove complaints by id from SQLite and from faiss; returns how many were removed."""
        wanted = list(dict.fromkeys(ids))
        with self._lock:
            conn = self._db()
            rowids = self._rowids(conn, wanted)
            if not len(rowids):
                return 0
            seq = self._seq + 1
            params = [(int(r),) for r in rowids]
            with self._write():
                conn.executemany("DELETE FROM complaints WHERE row_id = ?", params)
                conn.executemany("DELETE FROM vectors WHERE row_id = ?", params)
                conn.executemany(
                    "INSERT INTO tombstones (row_id, seq) VALUES (?, ?)",
                    [(int(r), seq) for r in rowids],
                )
                conn.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (str(seq),))
            self._seq = seq
            self._count -= len(rowids)
            _remove_ids(self._cache.index, rowids)
            self._cache.columns.kill(rowids)
            self._cache.seq = seq
            return len(rowids)

    def _rowids(self, conn: sqlite3.Connection, ids: Sequence[str]) -> np.ndarray:
        """Rowids of the stored ones among `ids` (any order)."""
        out: list[int] = []
        for part in _chunks(list(ids)):
            sql = f"SELECT row_id FROM complaints WHERE id IN ({_marks(len(part))})"
            out.extend(r[0] for r in conn.execute(sql, part))
        return np.array(out, dtype=np.int64)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        with self._lock:
            return self._count

    def get(self, ids: Sequence[str]) -> dict[str, IndexedComplaint]:
        """The stored complaints among `ids`, by id, in the order asked (unknown ids are
        left out)."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, IndexedComplaint] = {}
        with self._lock:
            conn = self._db()
            for part in _chunks(wanted):
                sql = f"{_SELECT} WHERE id IN ({_marks(len(part))})"
                for row in conn.execute(sql, part):
                    found[row[1]] = _complaint(row)
        return {i: found[i] for i in wanted if i in found}

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored vectors, rows in the order given; KeyError(id) for the first unknown id."""
        ids = list(ids)
        found: dict[str, bytes] = {}
        with self._lock:
            conn = self._db()
            for part in _chunks(list(dict.fromkeys(ids))):
                sql = (
                    "SELECT c.id, v.vector FROM complaints c JOIN vectors v "
                    f"ON v.row_id = c.row_id WHERE c.id IN ({_marks(len(part))})"
                )
                found.update(conn.execute(sql, part).fetchall())
        for i in ids:
            if i not in found:
                raise KeyError(i)
        return _decode([found[i] for i in ids], self.dim, self.path).copy()

    def _by_rowid(self, conn: sqlite3.Connection, rowids: set[int]) -> dict[int, IndexedComplaint]:
        out: dict[int, IndexedComplaint] = {}
        for part in _chunks(sorted(rowids)):
            sql = f"{_SELECT} WHERE row_id IN ({_marks(len(part))})"
            for row in conn.execute(sql, part):
                out[row[0]] = _complaint(row)
        return out

    def search(
        self, vectors: np.ndarray, k: int, flt: SearchFilter | None = None
    ) -> list[list[Hit]]:
        """The k stored complaints most similar to each query row that pass `flt`, best first.

        A 1-D vector is one query. Filters are exact: no hit fails them, and k hits
        come back whenever k stored complaints pass them. Without a filter, IVF
        search is approximate (recall@10 ~ `target_recall`); with a filter that few
        rows pass (<= brute_force_max), those rows are scored exactly.
        """
        queries = self._check_vectors(vectors, None, "query vectors")
        try:
            k = operator.index(k)  # ints, numpy ints
        except TypeError:
            k = -1
        if k < 0:
            raise ComplaintIndexError(f"{self.path}: k must be a non-negative integer")
        f = _parse_filter(flt, self.path)
        if not len(queries):
            return []
        with self._lock:
            conn = self._db()
            if k == 0 or self._count == 0:
                return [[] for _ in queries]
            excluded = self._rowids(conn, list(f.exclude_ids)) if f.exclude_ids else None
            if f.has_columns or (excluded is not None and len(excluded) > 64):
                mask = self._cache.columns.mask(f)
                if excluded is not None:
                    mask[excluded[excluded < len(mask)]] = False
                allowed = int(np.count_nonzero(mask))
                if allowed == 0:
                    return [[] for _ in queries]
                opts = self.options
                if allowed <= min(opts.brute_force_max, opts.brute_force_share * self._count):
                    scores, rowids = self._exact(queries, k, np.flatnonzero(mask))
                else:
                    scores, rowids = self._faiss_search(queries, k, mask, allowed)
            else:
                n_excluded = 0 if excluded is None else len(excluded)
                scores, rowids = self._faiss_search(queries, k + n_excluded, None, self._count)
                if excluded is not None and len(excluded):
                    rowids = np.where(np.isin(rowids, excluded), -1, rowids)
            wanted = {int(r) for r in rowids.ravel() if r >= 0}
            complaints = self._by_rowid(conn, wanted)
        out: list[list[Hit]] = []
        for row_scores, row_ids in zip(scores, rowids, strict=True):
            hits = [
                Hit(complaints[int(r)], float(s))
                for s, r in zip(row_scores, row_ids, strict=True)
                if r >= 0 and int(r) in complaints
            ]
            out.append(hits[:k])
        return out

    _RERANK_MIN = 40  # rows re-scored in full precision per query (at least 4k)

    def _exact(
        self, queries: np.ndarray, k: int, rowids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the given rowids.

        A flat cache reconstructs the rows' vectors from faiss. An IVF cache first
        picks each query's best max(4k, _RERANK_MIN) rows by their 8-bit codes
        (`_RowCodes`; each dimension in steps of 1/255 of its range), then scores
        those in full precision: the top k is the exact one unless the codes' error
        pushed one of them below 4k others (bench/index.py's filtered recall@10
        checks it). Scored by faiss's brute-force kernel, not numpy: a multi-threaded
        BLAS call for one query took 12 ms instead of 0.1 ms on a busy 2-core machine.
        """
        index, codes = self._cache.index, self._cache.codes
        if codes is not None and len(rowids) > k:
            rowids = codes.candidates(queries, rowids, max(4 * k, self._RERANK_MIN))
            scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
            out = np.full((len(queries), k), -1, dtype=np.int64)
            for i, cand in enumerate(rowids):
                cand = cand[cand >= 0]
                s, pos = faiss.knn(
                    queries[i : i + 1],
                    index.reconstruct_batch(cand),
                    min(k, len(cand)),
                    metric=faiss.METRIC_INNER_PRODUCT,
                )
                scores[i, : s.shape[1]] = s[0]
                out[i, : s.shape[1]] = cand[pos[0]]
            return scores, out
        vecs = index.reconstruct_batch(rowids)
        scores, pos = faiss.knn(
            queries, vecs, min(k, len(rowids)), metric=faiss.METRIC_INNER_PRODUCT
        )
        return scores, np.where(pos >= 0, rowids[np.maximum(pos, 0)], -1)

    def _faiss_search(
        self, queries: np.ndarray, k: int, mask: np.ndarray | None, allowed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """faiss search, restricted to `mask` when given; IVF widens nprobe for the rows
        that found fewer than min(k, allowed) hits until every list was scanned."""
        index = self._cache.index
        k = min(k, self._count)
        bits = None if mask is None else np.packbits(mask, bitorder="little")
        sel = None if bits is None else faiss.IDSelectorBitmap(bits)
        if self._cache.kind == "flat":
            params = None if sel is None else faiss.SearchParameters(sel=sel)
            return index.search(queries, k, params=params)
        nlist = self._cache.nlist
        nprobe = self._cache.nprobe
        if mask is not None:
            # A filter passing a share p of the rows thins every list: the k-th passing
            # neighbour sits around rank k/p overall, so probe boost/p times more lists
            # (boost measured at build time). The bitmap check per vector is cheap.
            boost = self._cache.filter_boost
            nprobe = math.ceil(nprobe * boost * max(self._count, 1) / allowed)
        need = min(k, allowed)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        rowids = np.full((len(queries), k), -1, dtype=np.int64)
        todo = np.arange(len(queries))
        while len(todo):
            nprobe = min(nprobe, nlist)
            params = (
                faiss.SearchParametersIVF(nprobe=nprobe)
                if sel is None
                else faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
            )
            s, r = index.search(queries[todo], k, params=params)
            scores[todo], rowids[todo] = s, r
            if nprobe >= nlist:
                break
            todo = todo[(r >= 0).sum(axis=1) < need]
            nprobe *= 2
        return scores, rowids

    def find_text_hash(
        self, text_hashes: Sequence[str], flt: SearchFilter | None = None
    ) -> list[list[IndexedComplaint]]:
        """Per hash, the stored complaints with that text hash passing `flt`, oldest first
        (by created_at; those without one last, then in insertion order)."""
        hashes = list(text_hashes)
        f = _parse_filter(flt, self.path)
        found: dict[str, list[tuple[tuple[int, int], int, IndexedComplaint]]] = {
            h: [] for h in hashes
        }
        with self._lock:
            conn = self._db()
            rows: list[Any] = []
            for part in _chunks([h for h in found if h]):
                sql = (
                    f"SELECT row_id, id, {', '.join(_RECORD)}, created_us FROM complaints "
                    f"WHERE text_hash IN ({_marks(len(part))})"
                )
                rows.extend(conn.execute(sql, part))
            if f.has_columns and rows:
                keep = self._cache.columns.mask(f, np.array([r[0] for r in rows], dtype=np.int64))
                rows = [r for r, ok in zip(rows, keep, strict=True) if ok]
        for r in rows:
            c = _complaint(r[:-1])
            if c.id not in f.exclude_ids:
                when = (0, r[-1]) if r[-1] is not None else (1, 0)  # unknown time: last
                found[c.text_hash].append((when, r[0], c))
        return [[c for _, _, c in sorted(found[h], key=lambda t: t[:2])] for h in hashes]

    def iter_complaints(self, batch: int = 1000) -> Iterator[list[IndexedComplaint]]:
        """Every stored complaint, in insertion order, `batch` at a time. Each batch is
        read under the lock; writes between batches may or may not be seen."""
        if batch < 1:
            raise ComplaintIndexError(f"{self.path}: batch must be at least 1")
        last = 0
        while True:
            with self._lock:
                sql = f"{_SELECT} WHERE row_id > ? ORDER BY row_id LIMIT ?"
                rows = self._db().execute(sql, (last, batch)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [_complaint(r) for r in rows]

    def stats(self) -> dict[str, Any]:
        """Size, kind, path, embedding and the backend's details (no complaint data)."""
        with self._lock:
            cache = self._cache
            ntotal = int(cache.index.ntotal)
            vector_bytes = ntotal * (self.dim * 4 + 8)  # codes + ids
            if cache.kind == "ivf":
                vector_bytes += cache.nlist * self.dim * 4 + ntotal * 16  # centroids, map
            else:
                vector_bytes += ntotal * 16  # IndexIDMap2's reverse map
            files = {
                p.name: p.stat().st_size
                for p in self.path.iterdir()
                if p.is_file() and not p.name.startswith(TMP_PREFIX)
            }
            return {
                "backend": "faiss+sqlite",
                "path": str(self.path),
                "size": self._count,
                "kind": cache.kind,
                "dim": self.dim,
                "embedding_id": self.embedding_id,
                "nlist": cache.nlist,
                "nprobe": cache.nprobe,
                "filter_boost": cache.filter_boost,
                "trained_size": cache.trained_size,
                "ivf_threshold": self.options.ivf_threshold,
                "brute_force_max": self.options.brute_force_max,
                "brute_force_share": self.options.brute_force_share,
                "synchronous": self.options.synchronous.upper(),
                "seq": self._seq,
                "snapshot_seq": self._disk_snapshot_seq,
                "loaded_from": self._loaded_from,
                "replayed_on_open": self._replayed,
                "open_seconds": round(self._open_seconds, 3),
                "building": self._build_seq is not None,
                "build_error": self._build_error or None,
                "last_build": cache.build,
                "faiss_bytes_estimate": vector_bytes,
                "columns_bytes": cache.columns.nbytes(),
                "codes_bytes": 0 if cache.codes is None else cache.codes.nbytes(),
                "db_bytes": sum(v for k, v in files.items() if k.startswith(DB_FILE)),
                "snapshot_bytes": sum(v for k, v in files.items() if k.startswith("snapshot")),
                "closed": self._closed,
            }

    def wait_for_build(self, timeout: float | None = None) -> bool:
        """Wait for a running background IVF build; True when none is running anymore."""
        thread = self._build_thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Stop a background build, save the snapshot if it is behind, close the database.
        Safe to call twice."""
        self._build_cancel.set()
        self.wait_for_build()  # without the lock: the build takes it to finish
        with self._lock:
            if self._closed:
                return
            try:
                if self.options.snapshot and self._disk_snapshot_seq != self._seq:
                    try:
                        self._save_snapshot(self._cache)
                        self._prune_tombstones()
                    except OSError as exc:  # the snapshot is only a cache
                        log.warning("%s: could not save the faiss snapshot: %s", self.path, exc)
            finally:
                self._release()

    def _release(self) -> None:
        self._closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    def __enter__(self) -> FaissSqliteIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaissSqliteIndex({str(self.path)!r}, dim={self.dim}, {self.embedding_id!r})"


def read_index_identity(path: str | Path) -> tuple[str, int] | None:
    """(embedding_id, dim) of an existing index folder, without opening (or locking) it.

    None when the folder holds no index or its metadata cannot be read; opening
    it with `open_index` then reports what is wrong.
    """
    db = Path(path) / DB_FILE
    if not db.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        finally:
            conn.close()
        return str(meta["embedding_id"]), int(meta["dim"])
    except (sqlite3.Error, KeyError, ValueError):
        return None


def open_index(
    path: str | Path, *, dim: int, embedding_id: str, create: bool = True, **options: Any
) -> FaissSqliteIndex:
    """Open (or, with `create`, create) the index folder at `path`.

    Opening an index made with another `embedding_id` or `dim` raises
    ComplaintIndexError saying so (re-embed the stored texts, `iter_complaints`,
    into a new index). `options` are the fields of `IndexOptions`.
    """
    folder = Path(path).expanduser()
    if not isinstance(dim, int) or dim < 1:
        raise ComplaintIndexError(f"{folder}: dim must be a positive integer, not {dim!r}")
    if not isinstance(embedding_id, str) or not embedding_id:
        raise ComplaintIndexError(f"{folder}: embedding_id must be a non-empty string")
    try:
        opts = IndexOptions(**options)
    except TypeError:
        known = ", ".join(f.name for f in fields(IndexOptions))
        unknown = ", ".join(sorted(set(options) - {f.name for f in fields(IndexOptions)}))
        raise ComplaintIndexError(
            f"{folder}: unknown index option(s) {unknown or '?'}; known: {known}"
        ) from None
    except ValueError as exc:
        raise ComplaintIndexError(f"{folder}: {exc}") from None
    if folder.exists() and not folder.is_dir():
        raise ComplaintIndexError(f"{folder}: is a file; an index is a folder")
    if not (folder / DB_FILE).exists():
        if not create:
            raise ComplaintIndexError(f"{folder}: no complaint index here ({DB_FILE} missing)")
        if folder.exists() and any(p.name != LOCK_FILE for p in folder.iterdir()):
            raise ComplaintIndexError(
                f"{folder}: not an aduan complaint index, and not empty; use a new folder"
            )
        folder.mkdir(parents=True, exist_ok=True)
    return FaissSqliteIndex(folder, dim=dim, embedding_id=embedding_id, create=create, options=opts)
