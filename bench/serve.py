"""Serving latency and throughput: aduan's API next to a naive per-request server.

    python bench/serve.py [--model DIR] [--index-size 100000] [--duration 10]
                          [--concurrency 1,4,16,64] [--threads 2] [--embed-limit 1500]
                          [--rebuild-index] [--skip-naive] [--runtimes onnx-int8,onnx]
                          [--repeat 1]

1. Loads real complaint texts: `surabaya-2022` from the shared data (skipped with
   a message when absent; then the invented `data/samples` complaints). Sorted by
   date, the earlier 85% seed the index and the latest 15% are the queries,
   sent with their own filing time (`created_at`), so the duplicate search
   looks at the index's complaints of the weeks before, as it would live.
2. Pre-fills a duplicate index with `--index-size` complaints under
   `$ADUAN_HOME/bench/`. Embedding 100k real texts on two cores would take hours,
   so at most `--embed-limit` real texts are embedded once with the bundle's
   duplicate embedding (cached as .npy next to the index), and the index is
   filled with copies of them whose vectors get a small random perturbation
   (noise of norm 0.15, cosine ~0.99 to the original) and whose filing dates are
   spread over the year; each copy's text gets a marker so it is not an exact
   re-submission of the others. Search cost depends on the vector count, the
   time window and the faiss layout, which this reproduces; what it does not
   reproduce is the true neighbour structure of 100k distinct complaints.
   The index is reused across runs (same size and embedding) unless
   `--rebuild-index`.
3. Times one request step by step in process (tokenise, encoder forward,
   heads, second encoder pass if the bundle needs one, index search + pair
   scoring, the whole `predict`; with a lexical companion also its n-gram
   features, next to sklearn's `transform` of the same text), medians over
   100 query texts after 10 warm-up ones, for each ONNX runtime.
4. Starts `aduan serve` (subprocess) once per `--runtimes` entry
   (`ADUAN_RUNTIME`: onnx-int8, onnx, torch; torch-bf16 is torch with
   `ADUAN_BF16=true`; onnx-int8-h11 is onnx-int8 on uvicorn's pure-Python
   asyncio loop and h11 parser instead of uvloop and httptools), each on its
   own copy of the index, and drives
   `POST /v1/route` with `wrk` and a Lua script that cycles through the query
   texts, at each concurrency level, after a short warm-up; with `--repeat N`
   each level runs N times on every server, interleaved, and the table gives
   the median of the N runs of each figure (each run's p50 is kept in the
   JSON report): on a shared machine one run can land on a busy moment. Reads the mean
   micro-batch size from /metrics, and the server's RSS from /proc. The int8
   runtime embeds into its own vector space (its embedding id differs), so
   it gets an index built from its own embeddings of the same texts.
5. Does the same against a naive server in the same run: a minimal FastAPI app
   that calls a transformers "feature-extraction" pipeline on the bundle's
   encoder folder (local files only) per request, mean-pools, and applies the
   bundle's linear heads; no batching, no duplicate search (so it does less
   work per request than aduan). bench/fastpath.py measures what each runtime
   does to accuracy.

All servers run with OMP_WAIT_POLICY=PASSIVE (what `aduan serve` sets by
default): with OpenMP's default spin-waiting, a 2-thread torch pool on this
shared 2-core machine took over 1 s per request instead of ~45 ms.

Prints one table, writes `$ADUAN_HOME/bench/serve.json`. Prints no complaint text.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

BIN = Path(sys.executable).parent
#: --runtimes: the environment each aduan server runs with.
RUNTIMES = {
    "onnx-int8": {"ADUAN_RUNTIME": "onnx-int8"},
    "onnx": {"ADUAN_RUNTIME": "onnx"},
    "torch": {"ADUAN_RUNTIME": "torch", "ADUAN_BF16": "false"},
    "torch-bf16": {"ADUAN_RUNTIME": "torch", "ADUAN_BF16": "true"},
    # The default runtime on uvicorn's pure-Python stack (asyncio loop, h11 parser),
    # to compare with the uvloop + httptools that `aduan serve` runs on.
    "onnx-int8-h11": {"ADUAN_RUNTIME": "onnx-int8"},
}
#: Runtimes served through `PLAIN_STACK` instead of the `aduan` command.
PLAIN_STACK_RUNTIMES = {"onnx-int8-h11"}
PLAIN_STACK = """
import functools, sys
import uvicorn
uvicorn.run = functools.partial(uvicorn.run, loop="asyncio", http="h11")
from cli.main import main
sys.argv[0] = "aduan"
main()
"""
WRK = "wrk"

LUA = r"""
local bodies = {}
for line in io.lines(os.getenv("ADUAN_BENCH_BODIES")) do bodies[#bodies + 1] = line end
local i = math.random(#bodies)
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/v1/route", {["Content-Type"] = "application/json"}, bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "status_errors": %d, "connect_errors": %d, ' ..
    '"timeouts": %d, "read_errors": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, ' ..
    '"mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.timeout, summary.errors.read, latency:percentile(50),
    latency:percentile(95), latency:percentile(99), latency.mean))
end
"""

NAIVE_APP = r'''
"""A naive peer: one transformers pipeline call per request, no batching."""
import os

import numpy as np
import torch
from fastapi import FastAPI
from pydantic import BaseModel
from safetensors.numpy import load_file
from transformers import pipeline

torch.set_num_threads(int(os.environ["NAIVE_THREADS"]))
ENCODER = os.environ["NAIVE_ENCODER"]
MAX_LENGTH = int(os.environ["NAIVE_MAX_LENGTH"])
pipe = pipeline("feature-extraction", model=ENCODER, tokenizer=ENCODER, device=-1)
state = load_file(os.environ["NAIVE_HEADS"])
heads = {k[: -len(".weight")]: (v, state[k[: -len(".weight")] + ".bias"])
         for k, v in state.items() if k.endswith(".weight")}
labels = {h: [str(i) for i in range(w.shape[0])] for h, (w, _) in heads.items()}
app = FastAPI()


class Req(BaseModel):
    text: str


@app.get("/readyz")
def readyz() -> dict:
    return {"status": "ready"}


@app.post("/v1/route")
def route(req: Req) -> dict:
    out = pipe("query: " + req.text, return_tensors=True,
               tokenize_kwargs={"truncation": True, "max_length": MAX_LENGTH})
    v = out[0].float().numpy().mean(axis=0)
    v = v / np.linalg.norm(v)
    result = {}
    for name, (w, b) in heads.items():
        z = w @ v + b
        p = np.exp(z - z.max())
        p /= p.sum()
        top = np.argsort(-p)[:3]
        result[name] = [{"label": labels[name][i], "score": float(p[i])} for i in top]
    return {"heads": result}
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> dict[str, float]:
    """Current and peak resident set size of a process, in MB (from /proc)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = int(value.split()[0]) / 1024
    return out


# ---------------------------------------------------------------------------- data
def load_texts() -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """(source, index seed records, query bodies): real Surabaya texts when present."""
    from data.load import load_complaints
    from data.registry import shared_data_available

    if shared_data_available("surabaya-2022"):
        source = "surabaya-2022"
    else:
        print("shared data set surabaya-2022 not found (set $ADUAN_SHARED_DATA); "
              "using the invented sample complaints in data/samples instead")  # fmt: skip
        source = str(Path(__file__).resolve().parents[1] / "data" / "samples" / "complaints.jsonl")
    c = load_complaints(source)
    rows = c.dataset.with_format(None).to_list()
    rows.sort(key=lambda r: r.get("created_at") or "")
    cut = int(len(rows) * 0.85)
    queries = [{"text": r["text"][:20000], "created_at": r.get("created_at")} for r in rows[cut:]]
    return source, rows[:cut], [{k: v for k, v in q.items() if v} for q in queries]


# --------------------------------------------------------------------------- index
def build_index(
    path: Path, finder: Any, seeds: list[dict[str, Any]], n: int, embed_limit: int, seed: int
) -> dict[str, Any]:
    """Fill a fresh index with n perturbed copies of up to embed_limit real complaints."""
    from model.dedup import make_complaint
    from model.index import open_index

    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(seeds), min(embed_limit, len(seeds), n), replace=False))
    base = [seeds[i] for i in pick]
    cache = path.with_name(path.name + f"-embeddings-{len(base)}.npy")
    info: dict[str, Any] = {"real_texts_embedded": len(base)}
    if cache.is_file():
        vecs = np.load(cache)
        info["embed_s"] = "cached"
    else:
        t0 = time.perf_counter()
        vecs = finder.embed([r["text"] for r in base], batch_size=32)
        info["embed_s"] = round(time.perf_counter() - t0, 1)
        info["embed_texts_per_s"] = round(len(base) / (time.perf_counter() - t0), 1)
        np.save(cache, vecs)
    if path.exists():
        shutil.rmtree(path)
    t0 = time.perf_counter()
    # IVF (re)builds inline, so the saved index is final: a build left due would run in
    # the background of every server opening a copy, during the measurements.
    index = open_index(path, dim=finder.dim, embedding_id=finder.embedding_id, background=False)
    start = np.datetime64("2022-01-01T00:00:00")
    chunk = 5000
    for lo in range(0, n, chunk):
        ids = range(lo, min(n, lo + chunk))
        complaints, rows = [], []
        for i in ids:
            j = i % len(base)
            r = base[j]
            when = start + np.timedelta64(int(rng.integers(0, 365 * 86400)), "s")
            complaints.append(
                make_complaint(
                    f"{r['text']} [salinan {i}]",
                    id=f"bench-{i}",
                    created_at=str(when),
                    region_code=r.get("region_code"),
                    city=r.get("city"),
                    kecamatan=r.get("kecamatan"),
                    kelurahan=r.get("kelurahan"),
                    address=r.get("address"),
                )
            )
            rows.append(j)
        noise = rng.normal(0, 0.15 / np.sqrt(finder.dim), (len(rows), finder.dim))
        v = vecs[rows] + noise.astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        index.add(complaints, v.astype(np.float32))
    info["fill_s"] = round(time.perf_counter() - t0, 1)
    info["stats"] = {k: v for k, v in index.stats().items() if isinstance(v, int | float | str)}
    index.close()
    return info


def open_or_build_index(
    args: argparse.Namespace, finder: Any, seeds: list[dict[str, Any]]
) -> tuple[Path, dict[str, Any]]:
    import hashlib

    from model.index import open_index
    from model.paths import aduan_home

    tag = hashlib.sha256(finder.embedding_id.encode()).hexdigest()[:8]
    path = aduan_home() / "bench" / f"serve-index-{args.index_size}-{tag}"
    if path.exists() and not args.rebuild_index:
        # background=False: an IVF rebuild still due (indexes this script saved before
        # it built inline) happens here, once, and is saved, not in every server.
        index = open_index(
            path, dim=finder.dim, embedding_id=finder.embedding_id, create=False, background=False
        )
        try:
            if len(index) == args.index_size:
                return path, {"reused": True}
        finally:
            index.close()
    print(f"building a {args.index_size}-complaint index at {path} ...", flush=True)
    return path, build_index(path, finder, seeds, args.index_size, args.embed_limit, args.seed)


# ----------------------------------------------------------------------- breakdown
def breakdown(
    bundle: Any, finder: Any, index_path: Path, queries: list[dict[str, Any]]
) -> dict[str, float]:
    """Median milliseconds of each step of one single-complaint request, in process
    (the first 10 queries only warm up: first calls pay for allocations and caches)."""
    import torch

    from model.dedup import make_complaint
    from model.index import open_index
    from model.predict import head_probabilities, predict, preprocess
    from serving.engine import torch_threads

    index = open_index(index_path, dim=finder.dim, embedding_id=finder.embedding_id)
    threads = torch.get_num_threads()
    torch.set_num_threads(torch_threads(bundle, threads))  # as the server's model worker
    keys = ["tokenise", "encode", "heads", "dedup_embed", "index", "predict_total"]
    lexical = bundle.lexical
    if lexical is not None:  # its n-gram features, and sklearn's transform as the peer
        keys += ["lexical_features", "lexical_features_sklearn"]
    steps: dict[str, list[float]] = {k: [] for k in keys}
    try:
        for n, query in enumerate(queries):
            text = query["text"]
            clean = preprocess(bundle, [text])
            t0 = time.perf_counter()
            batch = bundle.encoder.tokenize(clean)
            t1 = time.perf_counter()
            with torch.inference_mode():
                emb = bundle.encoder(batch["input_ids"], batch["attention_mask"])
            t2 = time.perf_counter()
            head_probabilities(bundle, emb)
            t3 = time.perf_counter()
            complaint = make_complaint(text, created_at=query.get("created_at"))
            vec = finder.embed([complaint.text], classifier_embeddings=emb.numpy())
            t4 = time.perf_counter()
            finder.find(index, [complaint], vec, k=5)
            t5 = time.perf_counter()
            predict(bundle, [text], top_k=3)
            t6 = time.perf_counter()
            times = [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5]
            if lexical is not None:
                lexical.features(clean)
                t7 = time.perf_counter()
                lexical.word.transform(clean), lexical.char.transform(clean)
                times += [t7 - t6, time.perf_counter() - t7]
            if n < 10:
                continue
            for key, dt in zip(steps, times, strict=True):
                steps[key].append(dt * 1000)
    finally:
        torch.set_num_threads(threads)
        index.close()
    return {k: round(statistics.median(v), 2) for k, v in steps.items()}


# -------------------------------------------------------------------------- driving
def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float) -> float:
    import httpx

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode} before ready")
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return time.perf_counter() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server was not ready within {timeout:.0f} s")


def batch_stats(url: str) -> tuple[float, float]:
    """(sum, count) of aduan_model_batch_size from /metrics."""
    import httpx

    total = count = 0.0
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith("aduan_model_batch_size_sum"):
            total = float(line.split()[-1])
        elif line.startswith("aduan_model_batch_size_count"):
            count = float(line.split()[-1])
    return total, count


def wrk(url: str, script: Path, bodies: Path, concurrency: int, seconds: float) -> dict[str, Any]:
    cmd = [WRK, "-t", str(min(concurrency, 2)), "-c", str(concurrency), "-d", f"{seconds:g}s",
           "--timeout", "120s", "-s", str(script), url]  # fmt: skip
    env = {**os.environ, "ADUAN_BENCH_BODIES": str(bodies)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 300)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no result (status {out.returncode}): {out.stderr[-500:]}")
    r = json.loads(line[len("BENCH ") :])
    ok = r["requests"] - r["status_errors"]
    return {
        "concurrency": concurrency,
        "requests": r["requests"],
        "errors": r["status_errors"] + r["connect_errors"] + r["timeouts"] + r["read_errors"],
        "req_per_s": round(ok / (r["duration_us"] / 1e6), 2),
        "p50_ms": round(r["p50_us"] / 1000, 1),
        "p95_ms": round(r["p95_us"] / 1000, 1),
        "p99_ms": round(r["p99_us"] / 1000, 1),
    }


class Server:
    """A server subprocess; stderr goes to a file (a full pipe would stall it)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, log: Path):
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._fh = log.open("wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=self._fh)
        self.ready_s = 0.0
        self.levels: list[dict[str, Any]] = []

    def stop(self) -> dict[str, Any]:
        memory = rss_mb(self.proc.pid) if self.proc.poll() is None else {}
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._fh.close()
        text = self.log.read_text(encoding="utf-8", errors="replace")
        errors = sum(1 for line in text.splitlines() if " ERROR " in line)
        return {"ready_s": round(self.ready_s, 1), "levels": self.levels, **memory,
                "log_errors": errors}  # fmt: skip


def drive(
    servers: list[Server], args: argparse.Namespace, script: Path, bodies: Path
) -> dict[str, Any]:
    """All servers up at once; each level runs on one after the other, so all see the
    same background load (the machine is shared), `args.repeat` times in turn."""
    try:
        for srv in servers:
            srv.ready_s = wait_ready(srv.proc, srv.url, args.ready_timeout)
            print(f"{srv.name}: ready in {srv.ready_s:.1f} s; warming up", flush=True)
            wrk(srv.url, script, bodies, 2, min(5.0, args.duration))
        for c in args.concurrency:
            runs: dict[str, list[dict[str, Any]]] = {srv.name: [] for srv in servers}
            for _ in range(args.repeat):
                for srv in servers:
                    aduan = srv.name.startswith("aduan")
                    before = batch_stats(srv.url) if aduan else (0.0, 0.0)
                    row = wrk(srv.url, script, bodies, c, args.duration)
                    if aduan:
                        after = batch_stats(srv.url)
                        calls = after[1] - before[1]
                        row["mean_batch"] = (
                            round((after[0] - before[0]) / calls, 2) if calls else None
                        )
                    row["load_average"] = round(os.getloadavg()[0], 1)
                    runs[srv.name].append(row)
                    print(f"{srv.name}: {row}", flush=True)
            for srv in servers:
                srv.levels.append(median_row(runs[srv.name]))
    finally:
        results = {srv.name: srv.stop() for srv in servers}
    return results


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One level's figures over repeated runs: the median of each; every run's p50 kept."""
    if len(runs) == 1:
        return runs[0]
    row: dict[str, Any] = {"concurrency": runs[0]["concurrency"], "runs": len(runs)}
    for key in ("requests", "errors"):
        row[key] = sum(r[key] for r in runs)
    for key in ("req_per_s", "p50_ms", "p95_ms", "p99_ms", "mean_batch", "load_average"):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            row[key] = round(statistics.median(values), 2)
    row["runs_p50_ms"] = [r["p50_ms"] for r in runs]
    row["runs_req_per_s"] = [r["req_per_s"] for r in runs]
    return row


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the demo bundle")
    parser.add_argument("--index-size", type=int, default=100_000)
    parser.add_argument("--embed-limit", type=int, default=1500)
    parser.add_argument("--rebuild-index", action="store_true")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per level")
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per server")
    parser.add_argument("--ready-timeout", type=float, default=1200.0)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument(
        "--runtimes",
        default="onnx-int8,onnx",
        help=f"aduan servers to drive, by ADUAN_RUNTIME: {', '.join(RUNTIMES)}",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per level and server; the table gives medians"
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.runtimes = [r for r in args.runtimes.split(",") if r]
    if not args.runtimes or set(args.runtimes) - set(RUNTIMES):
        parser.error(f"--runtimes takes a list of {', '.join(RUNTIMES)}")
    if shutil.which(WRK) is None:  # checked first: the index takes minutes to build
        parser.error(f"{WRK} (the HTTP load generator) is not installed: apt-get install wrk")

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads, as the servers
    import torch

    torch.set_num_threads(args.threads)
    from model.bundle import Bundle
    from model.dedup import DuplicateFinder
    from model.onnx import enable_onnx
    from model.paths import aduan_home

    model = args.model or aduan_home() / "bundles" / "demo"
    if not (model / "bundle.json").is_file():
        raise SystemExit(f"{model}: no bundle; build the demo bundle with `aduan bundle demo`")
    bundle = Bundle.load(model)
    source, seeds, queries = load_texts()
    print(f"model {bundle.version} ({bundle.name}); data {source}: {len(seeds)} index seeds, "
          f"{len(queries)} query texts; torch threads {args.threads}", flush=True)  # fmt: skip
    indexes: dict[str, Path] = {}
    index_info: dict[str, Any] = {}
    steps: dict[str, dict[str, float]] = {}
    for runtime in args.runtimes:
        served = copy.copy(bundle)
        kind = RUNTIMES[runtime]["ADUAN_RUNTIME"]
        if kind.startswith("onnx"):  # the server reuses this export from $ADUAN_HOME/onnx
            served.encoder = copy.deepcopy(bundle.encoder)
            enable_onnx(served, threads=args.threads, int8=kind == "onnx-int8")
        finder = DuplicateFinder(served)
        indexes[runtime], info = open_or_build_index(args, finder, seeds)
        index_info.setdefault(finder.embedding_id, info)
        print(f"{runtime} index: {info}", flush=True)
        if kind.startswith("onnx") and runtime not in PLAIN_STACK_RUNTIMES:
            steps[runtime] = breakdown(served, finder, indexes[runtime], queries[:110])
            print(f"{runtime} single request, median ms: {steps[runtime]}", flush=True)
    max_length = bundle.encoder.max_length
    del bundle

    out_dir = aduan_home() / "bench"
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aduan-bench-serve-") as tmp:
        script = Path(tmp) / "route.lua"
        script.write_text(LUA, encoding="utf-8")
        bodies = Path(tmp) / "bodies.jsonl"
        with bodies.open("w", encoding="utf-8") as fh:
            for body in queries:
                fh.write(json.dumps(body, ensure_ascii=False) + "\n")
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("ADUAN_")}
        # All servers sleep (not spin) idle OpenMP workers, as `aduan serve` does by default.
        base_env.update(ADUAN_HOME=str(aduan_home()), HF_HUB_OFFLINE="1")
        base_env.update(OMP_WAIT_POLICY="PASSIVE")
        env = {**base_env, "ADUAN_LOG_LEVEL": "WARNING", "ADUAN_TORCH_THREADS": str(args.threads),
               "ADUAN_MAX_QUEUE": "4096", "ADUAN_REQUEST_TIMEOUT_S": "300",
               "ADUAN_FEEDBACK_DIR": str(Path(tmp) / "feedback")}  # fmt: skip
        servers = []
        for runtime in args.runtimes:  # one index copy each: an index has one opener
            copied = Path(tmp) / f"index-{runtime}"
            shutil.copytree(indexes[runtime], copied, ignore=shutil.ignore_patterns("index.lock"))
            port = free_port()
            launcher = [str(BIN / "aduan")]
            if runtime in PLAIN_STACK_RUNTIMES:
                (Path(tmp) / "plain_stack.py").write_text(PLAIN_STACK, encoding="utf-8")
                launcher = [sys.executable, str(Path(tmp) / "plain_stack.py")]
            cmd = [*launcher, "serve", "--model", str(model), "--index", str(copied),
                   "--port", str(port)]  # fmt: skip
            servers.append(Server(f"aduan-{runtime}", cmd, {**env, **RUNTIMES[runtime]}, port,
                                  Path(tmp) / f"{runtime}.log"))  # fmt: skip
        if not args.skip_naive:
            app = Path(tmp) / "naive_app.py"
            app.write_text(NAIVE_APP, encoding="utf-8")
            port = free_port()
            env = {**base_env, "PYTHONPATH": tmp, "NAIVE_THREADS": str(args.threads),
                   "NAIVE_ENCODER": str(model / "encoder"),
                   "NAIVE_HEADS": str(model / "heads.safetensors"),
                   "NAIVE_MAX_LENGTH": str(max_length)}  # fmt: skip
            cmd = [sys.executable, "-m", "uvicorn", "naive_app:app", "--port", str(port),
                   "--log-level", "warning", "--no-access-log"]  # fmt: skip
            servers.append(Server("naive", cmd, env, port, Path(tmp) / "naive.log"))
        results = drive(servers, args, script, bodies)

    print()
    runs = f", median of {args.repeat} runs each" if args.repeat > 1 else ""
    print(f"POST /v1/route, {len(queries)} real query texts cycled, {args.duration:g} s per level"
          f"{runs}, "
          f"index {args.index_size} complaints, torch threads {args.threads}, "
          f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f})")  # fmt: skip
    header = f"{'server':<20}{'conc.':>6}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
    print(header + f"{'errors':>8}{'batch':>7}")
    for name, res in results.items():
        for row in res["levels"]:
            batch = row.get("mean_batch")
            print(f"{name:<20}{row['concurrency']:>6}{row['req_per_s']:>9.1f}{row['p50_ms']:>9.1f}"
                  f"{row['p95_ms']:>9.1f}{row['p99_ms']:>9.1f}{row['errors']:>8}"
                  f"{'' if batch is None else batch:>7}")  # fmt: skip
    for name, res in results.items():
        for row in res["levels"]:
            if "runs_p50_ms" in row:
                print(f"{name} at concurrency {row['concurrency']}, each run: p50 ms "
                      f"{row['runs_p50_ms']}, req/s {row['runs_req_per_s']}")  # fmt: skip
    for name, res in results.items():
        print(f"{name} server RSS after the run: {res.get('rss_mb', 0):.0f} MB "
              f"(peak {res.get('peak_rss_mb', 0):.0f} MB)")  # fmt: skip
    print(f"single request (in process, median ms): {steps}")
    report = {
        "model": str(model),
        "data": source,
        "queries": len(queries),
        "index_size": args.index_size,
        "index": index_info,
        "runtimes": args.runtimes,
        "duration_s": args.duration,
        "repeat": args.repeat,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "single_request_ms": steps,
        "servers": results,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "serve.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out_dir / 'serve.json'}")


if __name__ == "__main__":
    main()
