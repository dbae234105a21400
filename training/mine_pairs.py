"""Mine candidate duplicate-complaint pairs for labelling, ids only.

Duplicate detection needs labelled pairs, and no public set has them. This
module finds the pairs worth reading: every complaint is embedded with the
pretrained e5 encoder (prompt "passage: "), and for each complaint its nearest
neighbours by cosine similarity among the complaints filed within
`window_days` days of it (in the same city) become candidates. A deterministic
sample is then drawn across similarity bands: most of it from the high bands,
preferring hard pairs (same topic or same kecamatan), the rest from lower
bands so a threshold can be judged over the whole range. Exact re-submissions
(identical normalised text) are capped at `max_exact_share` of the sample:
they are easy and would otherwise crowd out the hard cases.

Usage::

    python -m training.mine_pairs --data surabaya-2022 --out /tmp/pairs.jsonl \\
        --window-days 45 --per-band 0.97:75,0.95:60,0.93:60,0.91:45,0.89:35,0.87:15,0:10 --seed 0

`--period calibration` keeps pairs whose later complaint is filed before
`--split-date`, `--period test` pairs whose complaints are both filed on or
after it (pairs across the date are dropped in both), so a held-out set can
be mined separately. `--exclude` takes earlier outputs or label CSVs (any
file with id_a/id_b) whose pairs are not drawn again.

Output: JSON Lines, one candidate pair per line, earlier complaint first::

    {"id_a", "id_b", "similarity", "days_apart", "same_kecamatan",
     "same_kelurahan", "same_topic", "exact", "band"}

Only ids and numbers: the complaint text stays in the shared data folder.

Embeddings are cached in `$ADUAN_HOME/cache/<data>-e5-passage.npz` (see
`embed_cached`), keyed by a hash of the ids, the texts and the encoder
settings, so changed data is re-embedded rather than reusing stale vectors.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from data.load import Complaints, load_complaints
from model.paths import aduan_home

log = logging.getLogger("aduan.training.mine_pairs")

PROMPT = "passage: "
MAX_LENGTH = 256
#: Default per-band quotas: (lower similarity bound, number of pairs), highest band first.
DEFAULT_BANDS: tuple[tuple[float, int], ...] = (
    (0.97, 75),
    (0.95, 60),
    (0.93, 60),
    (0.91, 45),
    (0.89, 35),
    (0.87, 15),
    (0.0, 10),
)
SPLIT_DATE = "2022-10-01"
_WORD_RE = re.compile(r"[^\w]+")


# --------------------------------------------------------------------------- embeddings


def text_key(ids: Sequence[str], texts: Sequence[str], *, prompt: str, max_length: int) -> str:
    """A hash of what the embeddings depend on: ids, texts (in order) and encoder settings."""
    from model.encoder import CONVERSION_VERSION, ENCODER_NAME

    digest = hashlib.sha256()
    header = [ENCODER_NAME, CONVERSION_VERSION, prompt, max_length]
    digest.update(json.dumps(header).encode("utf-8") + b"\n")
    for id_, text in zip(ids, texts, strict=True):
        digest.update(json.dumps([id_, text], ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


def cache_path(name: str, home: str | Path | None = None) -> Path:
    """Where the embeddings of data set `name` are cached."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem if "/" in name else name)
    base = Path(home) if home else aduan_home()
    return base / "cache" / f"{safe}-e5-passage.npz"


def embed_cached(
    complaints: Complaints,
    name: str,
    *,
    home: str | Path | None = None,
    batch_size: int = 32,
    threads: int = 2,
) -> np.ndarray:
    """L2-normalised e5 "passage: " embeddings of the complaints, in row order.

    The cache file is an `.npz` with `ids` (unicode array, row order),
    `vectors` (float32, rows x 384, L2-normalised) and `key` (the `text_key`
    hex digest). It is reused only when its key matches the data; otherwise
    the texts are embedded again and the file is replaced (atomically).
    """
    ids, texts = complaints.ids(), complaints.texts()
    key = text_key(ids, texts, prompt=PROMPT, max_length=MAX_LENGTH)
    path = cache_path(name, home)
    if path.is_file():
        with np.load(path, allow_pickle=False) as cached:
            if str(cached["key"]) == key and list(cached["ids"]) == ids:
                log.info("reusing cached embeddings %s", path)
                return np.asarray(cached["vectors"], dtype=np.float32)
        log.info("cached embeddings %s are for other data: re-embedding", path)

    import torch

    from model.encoder import ensure_encoder
    from model.network import TextEncoder

    torch.set_num_threads(threads)
    enc = TextEncoder.load(ensure_encoder(home), prompt=PROMPT, max_length=MAX_LENGTH)
    started = time.perf_counter()
    vectors = enc.embed(texts, batch_size=batch_size)
    log.info("embedded %d texts in %.0f s", len(texts), time.perf_counter() - started)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, ids=np.array(ids), vectors=vectors, key=np.array(key))
    tmp.replace(path)
    return vectors


# --------------------------------------------------------------------------- mining


@dataclass(frozen=True)
class Pair:
    """One candidate pair; `id_a` is the earlier complaint.

    `similarity` is the cosine of the two e5 embeddings, `days_apart` the gap
    between filing times, `exact` whether the texts are equal after
    `exact_form`, `band` the lower bound of the similarity band it was drawn
    from (set by `sample_pairs`).
    """

    id_a: str
    id_b: str
    similarity: float
    days_apart: float
    same_kecamatan: bool
    same_kelurahan: bool
    same_topic: bool
    exact: bool
    band: float = 0.0

    @property
    def hardness(self) -> int:
        """0-3: same kecamatan counts 2, same topic 1.

        Similar text at the same place on the same topic is where both the
        duplicates and the hardest non-duplicates are.
        """
        return 2 * self.same_kecamatan + self.same_topic

    @property
    def hard(self) -> bool:
        """Same topic or same kecamatan: the pairs a duplicate detector finds hardest."""
        return self.hardness > 0


def exact_form(text: str) -> str:
    """The text lower-cased, runs of punctuation and spaces made one space.

    Two complaints with equal forms are exact re-submissions.
    """
    return _WORD_RE.sub(" ", text.lower()).strip()


def _timestamps(created_at: Sequence[str | None]) -> np.ndarray:
    """Days since the epoch (float); NaN where unknown."""
    out = np.full(len(created_at), np.nan)
    for i, value in enumerate(created_at):
        if value:
            out[i] = datetime.fromisoformat(value).timestamp() / 86400.0
    return out


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().lower() == b.strip().lower()


def candidate_pairs(
    complaints: Complaints,
    vectors: np.ndarray,
    *,
    window_days: float = 45.0,
    k: int = 10,
    chunk: int = 512,
) -> list[Pair]:
    """Each complaint's `k` nearest neighbours within +-`window_days` in the same city.

    Unordered pairs are deduplicated; complaints without a filing time are
    skipped. Returned sorted by (id_a, id_b).
    """
    ds = complaints.dataset.with_format(None)
    ids: list[str] = ds["id"][:]
    days = _timestamps(ds["created_at"][:])
    city = [(c or "").strip().lower() for c in ds["city"][:]]
    kec: list[str | None] = ds["kecamatan"][:]
    kel: list[str | None] = ds["kelurahan"][:]
    topic: list[str | None] = ds["topic"][:] if "topic" in ds.column_names else [None] * len(ids)
    forms = [exact_form(t) for t in ds["text"][:]]
    n = len(ids)
    known = ~np.isnan(days)
    city_codes = np.unique(np.array(city), return_inverse=True)[1]
    seen: set[tuple[int, int]] = set()
    pairs: list[Pair] = []
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk))
        sims = vectors[rows] @ vectors.T
        near = np.abs(days[rows][:, None] - days[None, :]) <= window_days
        ok = near & known[None, :] & known[rows][:, None]
        ok &= city_codes[rows][:, None] == city_codes[None, :]
        ok[np.arange(len(rows)), rows] = False
        sims = np.where(ok, sims, -np.inf)
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        for r, i in enumerate(rows):
            for j in top[r]:
                if not np.isfinite(sims[r, j]):
                    break
                a, b = (
                    (int(i), int(j)) if (days[i], ids[i]) <= (days[j], ids[j]) else (int(j), int(i))
                )
                if (a, b) in seen:
                    continue
                seen.add((a, b))
                pairs.append(
                    Pair(
                        id_a=ids[a],
                        id_b=ids[b],
                        similarity=round(float(sims[r, j]), 4),
                        days_apart=round(float(abs(days[b] - days[a])), 2),
                        same_kecamatan=_same(kec[a], kec[b]),
                        same_kelurahan=_same(kec[a], kec[b]) and _same(kel[a], kel[b]),
                        same_topic=_same(topic[a], topic[b]),
                        exact=bool(forms[a]) and forms[a] == forms[b],
                    )
                )
    pairs.sort(key=lambda p: (p.id_a, p.id_b))
    return pairs


def in_period(
    pair: Pair, created: dict[str, str | None], period: str, split_date: str = SPLIT_DATE
) -> bool:
    """Whether a pair belongs to `period`: "all", "calibration" or "test".

    Calibration: the later complaint is filed before `split_date`. Test: both
    are filed on or after it. A pair across the date is in neither.
    """
    if period == "all":
        return True
    split = date.fromisoformat(split_date)
    t_a, t_b = created[pair.id_a], created[pair.id_b]
    if not t_a or not t_b:
        return False
    d_a = datetime.fromisoformat(t_a).date()
    d_b = datetime.fromisoformat(t_b).date()
    if period == "calibration":
        return max(d_a, d_b) < split
    if period == "test":
        return min(d_a, d_b) >= split
    raise ValueError(f"unknown period {period!r}: use all, calibration or test")


def _rank(seed: int, pair: Pair) -> str:
    """A seeded pseudo-random order that does not depend on the pool's order."""
    return hashlib.sha256(f"{seed}|{pair.id_a}|{pair.id_b}".encode()).hexdigest()


def sample_pairs(
    pairs: Iterable[Pair],
    bands: Sequence[tuple[float, int]] = DEFAULT_BANDS,
    *,
    seed: int = 0,
    hard_share: float = 0.8,
    max_exact_share: float = 0.1,
    exclude: Iterable[tuple[str, str]] = (),
) -> list[Pair]:
    """Draw a deterministic sample across similarity bands.

    `bands` are (lower bound, quota) pairs; a pair falls in the band of the
    highest lower bound it reaches. In each band up to `hard_share` of the
    quota is drawn from hard pairs (same topic or same kecamatan; the hardest
    first: same kecamatan and topic, then same kecamatan, then same topic) and
    the rest from the others, topping up from either side when one runs short. Exact
    re-submissions are capped at `max_exact_share` of the total quota; no
    complaint appears in more than two sampled pairs (so one big group of
    near-identical texts cannot fill a band). Pairs in `exclude` (either
    order) are never drawn. Returned sorted by band (highest first), then id.
    """
    bounds = sorted(bands, key=lambda b: -b[0])
    total = sum(q for _, q in bounds)
    max_exact = int(max_exact_share * total)
    excluded = {frozenset(p) for p in exclude}
    by_band: dict[float, list[Pair]] = {lo: [] for lo, _ in bounds}
    for p in pairs:
        if frozenset((p.id_a, p.id_b)) in excluded:
            continue
        for lo, _ in bounds:
            if p.similarity >= lo:
                by_band[lo].append(p)
                break
    chosen: list[Pair] = []
    uses: dict[str, int] = {}
    n_exact = 0

    def take(pool: list[Pair], want: int, lo: float) -> int:
        nonlocal n_exact
        got = 0
        for p in pool:
            if got >= want:
                break
            if p.exact and n_exact >= max_exact:
                continue
            if uses.get(p.id_a, 0) >= 2 or uses.get(p.id_b, 0) >= 2:
                continue
            if any(c.id_a == p.id_a and c.id_b == p.id_b for c in chosen):
                continue
            chosen.append(Pair(**{**asdict(p), "band": lo}))
            uses[p.id_a] = uses.get(p.id_a, 0) + 1
            uses[p.id_b] = uses.get(p.id_b, 0) + 1
            n_exact += p.exact
            got += 1
        return got

    for lo, quota in bounds:
        pool = sorted(by_band[lo], key=lambda p: _rank(seed, p))
        hard = sorted((p for p in pool if p.hard), key=lambda p: -p.hardness)  # stable
        easy = [p for p in pool if not p.hard]
        want_hard = round(quota * hard_share)
        got = take(hard, want_hard, lo)
        got += take(easy, quota - got, lo)
        if got < quota:
            got += take(hard, quota - got, lo)
        if got < quota:
            log.warning("band >= %.2f: only %d of %d pairs available", lo, got, quota)
    chosen.sort(key=lambda p: (-p.band, p.id_a, p.id_b))
    return chosen


# --------------------------------------------------------------------------- CLI


def parse_bands(spec: str) -> list[tuple[float, int]]:
    """Parse "0.95:100,0.9:100,0:20" into [(0.95, 100), (0.9, 100), (0.0, 20)]."""
    bands: list[tuple[float, int]] = []
    for part in spec.split(","):
        lo, _, count = part.strip().partition(":")
        if not count:
            raise ValueError(f"band {part!r}: expected LOWER:COUNT, e.g. 0.9:100")
        bands.append((float(lo), int(count)))
    return bands


def read_pair_ids(path: str | Path) -> list[tuple[str, str]]:
    """The (id_a, id_b) pairs of a JSONL from this module or a CSV with id_a,id_b columns."""
    path = Path(path)
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            return [(r["id_a"], r["id_b"]) for r in csv.DictReader(f)]
    out: list[tuple[str, str]] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rec: dict[str, Any] = json.loads(line)
                out.append((rec["id_a"], rec["id_b"]))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.mine_pairs", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--data", default="surabaya-2022", help="registered set or file")
    parser.add_argument("--out", required=True, help="output JSONL (ids and numbers only)")
    parser.add_argument("--window-days", type=float, default=45.0)
    parser.add_argument("--k", type=int, default=10, help="neighbours per complaint")
    parser.add_argument(
        "--per-band",
        default=",".join(f"{lo:g}:{q}" for lo, q in DEFAULT_BANDS),
        help="LOWER:COUNT,... similarity bands and quotas (default %(default)s)",
    )
    parser.add_argument("--hard-share", type=float, default=0.8)
    parser.add_argument("--max-exact-share", type=float, default=0.1)
    parser.add_argument("--period", choices=("all", "calibration", "test"), default="all")
    parser.add_argument("--split-date", default=SPLIT_DATE)
    parser.add_argument("--exclude", action="append", default=[], help="pairs not to draw")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    complaints = load_complaints(args.data, label_columns=("agency", "topic"))
    vectors = embed_cached(complaints, args.data, threads=args.threads)
    pool = candidate_pairs(complaints, vectors, window_days=args.window_days, k=args.k)
    created = dict(zip(complaints.ids(), complaints.created_at(), strict=True))
    pool = [p for p in pool if in_period(p, created, args.period, args.split_date)]
    excluded = [pair for path in args.exclude for pair in read_pair_ids(path)]
    sample = sample_pairs(
        pool,
        parse_bands(args.per_band),
        seed=args.seed,
        hard_share=args.hard_share,
        max_exact_share=args.max_exact_share,
        exclude=excluded,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for p in sample:
            f.write(json.dumps(asdict(p)) + "\n")
    log.info(
        "%d candidate pairs in the pool, %d sampled (%d exact re-submissions) -> %s",
        len(pool),
        len(sample),
        sum(p.exact for p in sample),
        out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
