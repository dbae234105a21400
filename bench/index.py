"""Duplicate-index figures: build rate, memory, recall@10 vs exact search, latency, reopen time.

    python bench/index.py --sizes 100000,1000000 [--queries 1000] [--threads 1]

The vectors are synthetic but shaped like real ones. The base is the real
multilingual-e5-small embeddings ("passage: " prompt) of up to 2,000 real
complaint texts (the shared Surabaya set, or the invented samples in
data/samples when the shared data is absent), cached as .npy under
$ADUAN_HOME/cache/. Each synthetic vector is normalise(base[i] + noise) for a
random i, with the noise level chosen so that the similarities of a vector's
nearest neighbours and of unrelated pairs look like the real ones (the script
prints both distributions side by side). The metadata (dates in 2022, Surabaya
region codes, made-up kecamatan names) is synthetic; no complaint text is
stored or printed.

For each size: build through the public `add()` API (complaints/s), RSS and
faiss-side memory, the index kind, recall@10 against an exact IndexFlatIP over
the same vectors on held-out queries, single-query latency p50/p99 with and
without filters, and the reopen time. Prints a table and writes JSON to
$ADUAN_HOME/bench/index.json. The index folders go under $ADUAN_HOME/bench and
are deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.paths import aduan_home  # noqa: E402

BASE_LIMIT = 2000
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "complaints.jsonl"


def rss_mb() -> float:
    """Current resident set size of this process, in MB (Linux /proc)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def load_texts(limit: int) -> tuple[str, list[str]]:
    """Real complaint texts (shared Surabaya set), else the invented samples."""
    from data.load import load_complaints
    from data.registry import shared_data_available

    if shared_data_available("surabaya-2022"):
        return "surabaya-2022", load_complaints("surabaya-2022", limit=limit).texts()
    return "samples", load_complaints(SAMPLES, limit=limit).texts()


def base_embeddings(limit: int = BASE_LIMIT) -> tuple[str, np.ndarray]:
    """Real e5 embeddings of real complaint texts, cached under $ADUAN_HOME/cache."""
    from model.encoder import ensure_encoder

    enc_dir = ensure_encoder()
    source, texts = load_texts(limit)
    key = hashlib.sha256(
        ("\n".join(texts) + "\0" + str(enc_dir) + "\0passage: \0128").encode()
    ).hexdigest()[:16]
    cache = aduan_home() / "cache" / f"index-bench-base-{source}-{len(texts)}-{key}.npy"
    if cache.is_file():
        return source, np.load(cache)
    import torch

    from model.network import TextEncoder

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    enc = TextEncoder.load(enc_dir, prompt="passage: ", max_length=128)
    t0 = time.perf_counter()
    emb = normalise(enc.embed(texts, batch_size=32))
    print(f"embedded {len(texts)} {source} texts in {time.perf_counter() - t0:.0f} s")
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, emb)
    os.replace(tmp, cache)
    return source, emb


# --------------------------------------------------------------------------- synthetic data
def _quantiles(a: np.ndarray) -> list[float]:
    return [round(float(v), 3) for v in np.percentile(a, [5, 25, 50, 75, 95])]


def similarity_profile(x: np.ndarray) -> dict[str, list[float]]:
    """Quantiles (5/25/50/75/95%) of each row's nearest-neighbour similarity and of
    the similarity of all pairs (unrelated complaints, mostly)."""
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    pairs = s[np.triu_indices(len(x), 1)]
    return {"nearest": _quantiles(s.max(axis=1)), "pairs": _quantiles(pairs)}


class Generator:
    """Noisy copies of the base: x = normalise(mu + (c + sigma * noise) / sqrt(1 + sigma^2)),
    where c = base[i] - mu is a random base vector's deviation from the base mean mu and
    the noise is drawn with the base's own covariance (it stays in the directions real
    complaints differ in). The rescaling keeps the deviation's size, so unrelated
    complaints stay as similar as real ones (e5 puts everything in a narrow cone) while
    sigma sets how close copies of one complaint are."""

    def __init__(self, base: np.ndarray, sigma: float, seed: int) -> None:
        self.mean = base.mean(axis=0)
        self.centred = (base - self.mean).astype(np.float32)
        self.sigma = sigma
        self.rng = np.random.default_rng(seed)
        w, u = np.linalg.eigh(self.centred.T @ self.centred / len(base))
        self.factor = (u * np.sqrt(np.maximum(w, 0.0))).T.astype(np.float32)

    def sample(self, n: int) -> np.ndarray:
        dim = self.centred.shape[1]
        out = np.empty((n, dim), dtype=np.float32)
        scale = 1.0 / np.sqrt(1.0 + self.sigma**2)
        for start in range(0, n, 50_000):
            m = min(50_000, n - start)
            pick = self.rng.integers(0, len(self.centred), m)
            z = self.rng.standard_normal((m, dim), dtype=np.float32) @ self.factor
            dev = (self.centred[pick] + self.sigma * z) * scale
            out[start : start + m] = normalise(self.mean + dev)
        return out


def choose_sigma(base: np.ndarray, seed: int) -> tuple[float, dict[str, Any]]:
    """The noise level whose similarity profile (same number of vectors as the real
    base) is closest to the real one: sum of |quantile differences|."""
    real = similarity_profile(base)
    best: tuple[float, float, dict[str, list[float]]] | None = None
    for sigma in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5):
        prof = similarity_profile(Generator(base, sigma, seed).sample(len(base)))
        err = sum(abs(a - b) for key in real for a, b in zip(real[key], prof[key], strict=True))
        if best is None or err < best[0]:
            best = (err, sigma, prof)
    assert best is not None
    return best[1], {"real": real, "synthetic": best[2], "sigma": best[1]}


REGIONS = [f"35.78.{k:02d}" for k in range(1, 32)]  # the 31 kecamatan of Kota Surabaya


def synthetic_meta(n: int, seed: int, offset: int = 0) -> dict[str, np.ndarray]:
    """Made-up metadata: a time in 2022, a kecamatan and one of 5 kelurahan in it."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2022-01-01T00:00:00")
    return {
        "t": start + rng.integers(0, 365 * 86_400, n).astype("timedelta64[s]"),
        "kec": rng.integers(0, len(REGIONS), n),
        "kel": rng.integers(1001, 1006, n),
        "offset": np.array([offset]),
    }


def complaints(meta: dict[str, np.ndarray], lo: int, hi: int) -> list[Any]:
    """IndexedComplaint records for rows lo..hi: synthetic text of a realistic length."""
    from model.index import IndexedComplaint

    out = []
    off = int(meta["offset"][0])
    for i in range(lo, hi):
        kec = REGIONS[meta["kec"][i]]
        text = f"keluhan sintetis nomor {i + off} " + "jalan rusak lampu mati " * 16
        out.append(
            IndexedComplaint(
                id=f"s{i + off}",
                text=text,
                created_at=str(meta["t"][i]),
                region_code=f"{kec}.{meta['kel'][i]}",
                city="Kota Surabaya",
                kecamatan=f"Kecamatan {kec[-2:]}",
                kelurahan=f"Kelurahan {kec[-2:]}-{meta['kel'][i]}",
                text_hash=hashlib.sha1(text.encode()).hexdigest(),
                snippet=text[:120],
            )
        )
    return out


# --------------------------------------------------------------------------- measuring
def ms_percentiles(seconds: list[float]) -> tuple[float, float]:
    a = np.array(seconds) * 1000
    return round(float(np.percentile(a, 50)), 3), round(float(np.percentile(a, 99)), 3)


def exact_top(queries: np.ndarray, xb: np.ndarray, k: int, rows: np.ndarray | None = None) -> Any:
    """Exact top-k row numbers by inner product (what IndexFlatIP.search computes:
    faiss.knn is its brute-force kernel, used here to avoid a second copy of xb)."""
    import faiss

    if rows is None:
        return faiss.knn(queries, xb, k, metric=faiss.METRIC_INNER_PRODUCT)[1]
    found = faiss.knn(queries, np.ascontiguousarray(xb[rows]), k, metric=faiss.METRIC_INNER_PRODUCT)
    return np.where(found[1] >= 0, rows[np.maximum(found[1], 0)], -1)


def recall_at(found: list[list[int]], exact: np.ndarray, k: int) -> float:
    total = 0.0
    for got, ex in zip(found, exact, strict=True):
        ex = [e for e in ex[:k] if e >= 0]
        total += len(set(got[:k]) & set(ex)) / max(len(ex), 1)
    return round(total / max(len(found), 1), 4)


def filters(meta: dict[str, np.ndarray]) -> dict[str, tuple[Any, np.ndarray]]:
    """Named filters with the rows (of the synthetic set) that pass each, exactly."""
    from model.index import SearchFilter

    t = meta["t"]
    june = (t >= np.datetime64("2022-06-01")) & (t < np.datetime64("2022-07-01"))
    kec05 = meta["kec"] == REGIONS.index("35.78.05")
    kel = kec05 & (meta["kel"] == 1003)
    return {
        "june": (SearchFilter(since="2022-06-01", until="2022-06-30"), june),
        "kecamatan": (SearchFilter(kecamatan="  kecamatan 05 "), kec05),
        "kelurahan code": (SearchFilter(region_code="35.78.05.1003"), kel),
        "june+kecamatan": (
            SearchFilter(since="2022-06-01", until="2022-06-30", region_code="35.78.05"),
            june & kec05,
        ),
    }


def crossover(folder: Path, dim: int, xq: np.ndarray, args: argparse.Namespace) -> list[Any]:
    """Where exact scoring of a filter's rows stops beating faiss with a bitmap: one
    kecamatan from June 1 to the 28th of each later month (2,400-18,000 rows at 1M), each
    searched with `brute_force_max` 0 (faiss) and 10^9 (exact; `brute_force_share` 1),
    the two alternating."""
    from model.index import SearchFilter, open_index

    windows = {
        month: SearchFilter(
            since="2022-06-01", until=f"2022-{month:02d}-28", region_code="35.78.05"
        )
        for month in range(6, 13)
    }
    times: dict[tuple[int, str], list[float]] = {}
    passing: dict[int, int] = {}
    for _ in range(2):
        for path, bfm in (("faiss", 0), ("exact", 10**9)):
            opts = {**args.options, "brute_force_max": bfm, "brute_force_share": 1.0}
            with open_index(folder, dim=dim, embedding_id="bench:e5-small", **opts) as idx:
                for month, flt in windows.items():
                    for i in range(min(len(xq), args.filter_queries)):
                        t0 = time.perf_counter()
                        idx.search(xq[i : i + 1], 10, flt)
                        times.setdefault((month, path), []).append(time.perf_counter() - t0)
                    passing[month] = len(idx.search(xq[:1], 10**7, flt)[0])
    return [
        {
            "until": f"2022-{month:02d}-28",
            "passing": passing[month],
            "faiss_ms": ms_percentiles(times[(month, "faiss")]),
            "exact_ms": ms_percentiles(times[(month, "exact")]),
        }
        for month in windows
    ]


def flat_vs_ivf_sweep(gen: Generator, sizes: list[int], n_queries: int) -> list[dict[str, Any]]:
    """Raw faiss, 1 thread: exact flat single-query latency against IVF (auto nlist,
    the smallest power-of-two nprobe with recall@10 >= 0.99) at small sizes: where
    the flat -> IVF threshold should sit."""
    import faiss

    from model.index import auto_nlist

    rows = []
    for n in sizes:
        xb, xq = gen.sample(n), gen.sample(n_queries)
        exact = exact_top(xq, xb, 10)
        flat = faiss.IndexFlatIP(xb.shape[1])
        flat.add(xb)
        flat_t = []
        for i in range(n_queries):
            t0 = time.perf_counter()
            flat.search(xq[i : i + 1], 10)
            flat_t.append(time.perf_counter() - t0)
        nlist = auto_nlist(n)
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(xb.shape[1]), xb.shape[1], nlist, 0)
        ivf.cp.spherical = True
        ivf.train(xb[np.random.default_rng(0).permutation(n)[: nlist * 40]])
        ivf.add(xb)
        nprobe, rec = 1, 0.0
        while True:
            ivf.nprobe = nprobe
            found = ivf.search(xq, 10)[1]
            rec = recall_at([list(r) for r in found], exact, 10)
            if rec >= 0.99 or nprobe >= nlist:
                break
            nprobe *= 2
        ivf_t = []
        for i in range(n_queries):
            t0 = time.perf_counter()
            ivf.search(xq[i : i + 1], 10)
            ivf_t.append(time.perf_counter() - t0)
        row = {
            "n": n,
            "flat_ms": ms_percentiles(flat_t),
            "ivf_nlist": nlist,
            "ivf_nprobe": nprobe,
            "ivf_recall": rec,
            "ivf_ms": ms_percentiles(ivf_t),
        }
        print(f"  sweep {row}", flush=True)
        rows.append(row)
    return rows


def bench_size(n: int, gen: Generator, args: argparse.Namespace) -> dict[str, Any]:
    """Build an index of n synthetic complaints through add(), then measure it."""
    import faiss

    from model.index import open_index

    k = 10
    xb = gen.sample(n)
    xq = gen.sample(args.queries)
    meta = synthetic_meta(n, seed=n)
    faiss.omp_set_num_threads(2)  # ground truth only: not a measured figure
    exact = exact_top(xq, xb, k)
    nn = np.sort(np.einsum("qkd,qd->qk", xb[exact], xq), axis=1)  # similarities of the top 10
    faiss.omp_set_num_threads(args.threads)
    folder = aduan_home() / "bench" / f"index-{n}"
    if folder.exists():
        shutil.rmtree(folder)
    res: dict[str, Any] = {"n": n, "threads": args.threads}
    res["query_similarity"] = {
        "top1": _quantiles(nn[:, -1]),
        "top10": _quantiles(nn[:, 0]),
    }
    rss0 = rss_mb()
    idx = open_index(folder, dim=xb.shape[1], embedding_id="bench:e5-small", **args.options)
    add_s = 0.0
    t_start = time.perf_counter()
    for lo in range(0, n, args.batch):
        batch = complaints(meta, lo, min(n, lo + args.batch))
        t0 = time.perf_counter()
        idx.add(batch, xb[lo : lo + len(batch)])
        add_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    idx.wait_for_build()
    res["add_per_s"] = round(n / add_s)
    res["add_s"] = round(add_s, 1)
    res["ivf_wait_s"] = round(time.perf_counter() - t0, 1)
    res["build_wall_s"] = round(time.perf_counter() - t_start, 1)
    st = idx.stats()
    res.update(
        kind=st["kind"],
        nlist=st["nlist"],
        nprobe=st["nprobe"],
        calibration=st["last_build"].get("calibration"),
        last_build_s=st["last_build"].get("seconds"),
        train_s=st["last_build"].get("train_s"),
        faiss_mb=round(st["faiss_bytes_estimate"] / 2**20),
        columns_mb=round(st["columns_bytes"] / 2**20, 1),
        db_mb=round(st["db_bytes"] / 2**20),
        rss_growth_mb=round(rss_mb() - rss0),
    )
    # unfiltered single queries
    times, found = [], []
    for i in range(len(xq)):
        t0 = time.perf_counter()
        hits = idx.search(xq[i : i + 1], k)[0]
        times.append(time.perf_counter() - t0)
        found.append([int(h.complaint.id[1:]) for h in hits])
    res["recall@10"] = recall_at(found, exact, k)
    res["query_ms"] = ms_percentiles(times)
    # filtered single queries (exactness checked on every hit)
    res["filters"] = {}
    nf = min(len(xq), args.filter_queries)
    for name, (flt, mask) in filters(meta).items():
        rows = np.flatnonzero(mask)
        faiss.omp_set_num_threads(2)
        exact_f = exact_top(xq[:nf], xb, k, rows)
        faiss.omp_set_num_threads(args.threads)
        times, found, violations = [], [], 0
        for i in range(nf):
            t0 = time.perf_counter()
            hits = idx.search(xq[i : i + 1], k, flt)[0]
            times.append(time.perf_counter() - t0)
            got = [int(h.complaint.id[1:]) for h in hits]
            violations += sum(not mask[g] for g in got) + (len(got) < min(k, len(rows)))
            found.append(got)
        res["filters"][name] = {
            "passing": len(rows),
            "recall@10": recall_at(found, exact_f, k),
            "ms": ms_percentiles(times),
            "violations": violations,
        }
    t0 = time.perf_counter()
    idx.close()
    res["close_s"] = round(time.perf_counter() - t0, 2)  # writes the snapshot
    t0 = time.perf_counter()
    idx = open_index(folder, dim=xb.shape[1], embedding_id="bench:e5-small", **args.options)
    res["open_s"] = round(time.perf_counter() - t0, 2)
    res["open_from"] = idx.stats()["loaded_from"]
    assert len(idx) == n and idx.search(xq[:1], k)[0]
    idx.close()
    if args.crossover:
        res["crossover"] = crossover(folder, xb.shape[1], xq, args)
    # what a kill before any snapshot costs: rebuild the (flat) cache from SQLite
    (folder / "snapshot.json").unlink()
    t0 = time.perf_counter()
    with open_index(
        folder, dim=xb.shape[1], embedding_id="bench:e5-small", ivf_threshold=10**12, snapshot=False
    ) as idx:
        res["open_rebuild_s"] = round(time.perf_counter() - t0, 2)
    res["peak_rss_mb"] = round(peak_rss_mb())
    if not args.keep:
        shutil.rmtree(folder)
    return res


def table(results: list[dict[str, Any]]) -> str:
    lines = []
    head = (
        f"{'n':>9} {'kind':>4} {'nlist':>5} {'nprobe':>6} {'add/s':>7} {'build s':>8} "
        f"{'faiss MB':>8} {'RSS+ MB':>7} {'recall@10':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'close s':>7} {'open s':>6} {'rebuild s':>9}"
    )
    lines.append(head)
    for r in results:
        lines.append(
            f"{r['n']:>9} {r['kind']:>4} {r['nlist']:>5} {r['nprobe']:>6} {r['add_per_s']:>7} "
            f"{r['build_wall_s']:>8} {r['faiss_mb']:>8} {r['rss_growth_mb']:>7} "
            f"{r['recall@10']:>9} {r['query_ms'][0]:>7} {r['query_ms'][1]:>7} "
            f"{r['close_s']:>7} {r['open_s']:>6} {r['open_rebuild_s']:>9}"
        )
    lines.append(
        "add/s: complaints per second inside add() (batches of --batch); build s: wall time "
        "of all adds plus the wait for the last IVF build; close s: writing the snapshot; "
        "open s: reopening from it; rebuild s: reopening without it (exact cache from SQLite)"
    )
    lines.append("")
    lines.append(
        f"{'n':>9} {'filter':<15} {'passing':>8} {'recall@10':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'violations':>10}"
    )
    for r in results:
        for name, f in r["filters"].items():
            lines.append(
                f"{r['n']:>9} {name:<15} {f['passing']:>8} {f['recall@10']:>9} "
                f"{f['ms'][0]:>7} {f['ms'][1]:>7} {f['violations']:>10}"
            )
    crossed = [(r["n"], c) for r in results for c in r.get("crossover", [])]
    if crossed:
        lines.append("")
        lines.append(
            f"{'n':>9} {'kecamatan from June 1 to':<24} {'passing':>8} "
            f"{'faiss p50/p99 ms':>17} {'exact p50/p99 ms':>17}"
        )
        for n, c in crossed:
            lines.append(
                f"{n:>9} {c['until']:<24} {c['passing']:>8} "
                f"{c['faiss_ms'][0]:>8}/{c['faiss_ms'][1]:<8} "
                f"{c['exact_ms'][0]:>8}/{c['exact_ms'][1]:<8}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated index sizes")
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries")
    parser.add_argument("--filter-queries", type=int, default=300, help="queries per filter")
    parser.add_argument("--threads", type=int, default=1, help="faiss threads for queries")
    parser.add_argument("--batch", type=int, default=1000, help="complaints per add() call")
    parser.add_argument("--sweep", default="", help="sizes for the raw flat-vs-IVF sweep")
    parser.add_argument("--option", action="append", default=[], help="index option k=v")
    parser.add_argument("--keep", action="store_true", help="keep the index folders")
    parser.add_argument(
        "--crossover",
        action="store_true",
        help="also time exact scoring against faiss for filters of 2,400-18,000 rows",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.options = {}
    for item in args.option:  # e.g. --option ivf_threshold=20000 --option background=false
        key, _, value = item.partition("=")
        try:
            args.options[key] = json.loads(value)
        except json.JSONDecodeError:
            args.options[key] = value

    import faiss

    faiss.omp_set_num_threads(args.threads)
    source, base = base_embeddings()
    sigma, profile = choose_sigma(base, args.seed)
    print(f"base: {len(base)} real e5 embeddings ({source}); noise sigma {sigma}")
    print("similarity quantiles (5/25/50/75/95%), same count as the base:")
    for key in ("nearest", "pairs"):
        print(f"  {key:8} real {profile['real'][key]}  synthetic {profile['synthetic'][key]}")
    gen = Generator(base, sigma, args.seed)
    out: dict[str, Any] = {
        "source": source,
        "profile": profile,
        "faiss": faiss.__version__,
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "options": args.options,
    }
    if args.sweep:
        out["sweep"] = flat_vs_ivf_sweep(gen, [int(s) for s in args.sweep.split(",")], 300)
    results = []
    for n in [int(s) for s in args.sizes.split(",") if s]:
        print(f"size {n}: building ...", flush=True)
        res = bench_size(n, gen, args)
        print(f"  {json.dumps(res)}", flush=True)
        results.append(res)
    out["results"] = results
    print()
    print(table(results))
    for r in results:
        print(
            f"n={r['n']}: similarity of the queries' top-1 {r['query_similarity']['top1']}, "
            f"10th {r['query_similarity']['top10']}; calibration {r['calibration']}"
        )
    target = aduan_home() / "bench" / "index.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(f"written {target}")


if __name__ == "__main__":
    main()
