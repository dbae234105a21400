"""Accuracy benchmark: aduan's fine-tuned classifier against the TF-IDF + LinearSVC peer.

    python bench/accuracy.py [--sets surabaya,smsa,emot] [--epochs 3] [--max-steps N]
                             [--config FILE]

- surabaya: the Surabaya 2022 complaints, split by time: the latest 15% is the
  test slice, never seen in training; `aduan train --split time` trains on the
  rest (its own latest 15% is dev, for epoch selection and calibration), then
  `aduan evaluate --baseline tfidf` scores both systems on the test slice.
- smsa / emot: IndoNLU sentiment and emotion; trained on train (dev = valid),
  tested on the labelled test split, macro-F1 printed next to the published
  IndoBERT-base figures.

It runs the same CLI a data scientist runs, writing everything (including the
temporary split files, which hold real text) under $ADUAN_HOME/bench, never in
the repo. Prints the table; complaint text is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Published IndoNLU test macro-F1 (NusaBERT README, via ../shared/data/README.md).
PUBLISHED = {"smsa": {"IndoBERT-base-p1": 87.73}, "emot": {"IndoBERT-base-p1": 75.48}}
INDONLU = {"smsa": "indonlu-smsa", "emot": "indonlu-emot"}


def aduan(*args: str) -> dict:
    """Run one `aduan` command; return its JSON output (the last JSON object printed)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"aduan {args[0]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    out = proc.stdout
    start = out.find("\n{")
    payload = json.loads(out[start + 1 :] if start >= 0 else out[out.find("{") :])
    payload["_seconds"] = time.perf_counter() - started
    # Peak RSS of the largest child so far (train runs first, so after it, train's own).
    payload["_max_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return payload


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def surabaya(work: Path, train_args: list[str]) -> list[tuple]:
    from data.load import load_complaints
    from data.splits import time_split

    data = load_complaints("surabaya-2022", label_columns=["agency", "topic"])
    pool, test = time_split(data, dev_fraction=0.15)
    pool_file = write_jsonl(pool.dataset.to_list(), work / "surabaya-pool.jsonl")
    test_file = write_jsonl(test.dataset.to_list(), work / "surabaya-test.jsonl")
    bundle = work / "surabaya-bundle"
    trained = aduan(
        "train", "--data", str(pool_file), "--out", str(bundle), "--overwrite",
        "--label", "agency", "--label", "topic", "--split", "time", *train_args,
    )  # fmt: skip
    report = aduan(
        "evaluate", "--model", str(bundle), "--data", str(test_file),
        "--out", str(work / "surabaya-eval"), "--baseline", "tfidf",
    )  # fmt: skip
    metrics = json.loads((work / "surabaya-eval" / "metrics.json").read_text("utf-8"))
    rows = []
    for head in ("agency", "topic"):
        h = metrics["heads"][head]
        for key in ("accuracy", "top3_accuracy", "macro_f1_frequent", "ece",
                    "precision_at_80_coverage", "coverage_at_95_precision"):  # fmt: skip
            rows.append((f"surabaya {head}", key, h["aduan"].get(key), h["baseline"].get(key)))
        rows.append((f"surabaya {head}", "abstain_rate", h["aduan"].get("abstain_rate"), None))
        rows.append(
            (f"surabaya {head}", "precision_when_answering",
             h["aduan"].get("precision_when_answering"), None)
        )  # fmt: skip
    print(
        f"surabaya: train {trained['_seconds'] / 60:.1f} min (peak RSS "
        f"{trained['_max_rss_mb']:.0f} MB), evaluate {report['_seconds'] / 60:.1f} min; "
        f"test rows {len(test)}",
        flush=True,
    )
    return rows


def indonlu(name: str, work: Path, train_args: list[str]) -> list[tuple]:
    registered = INDONLU[name]
    bundle = work / f"{name}-bundle"
    trained = aduan(
        "train", "--data", registered, "--data-split", "train", "--dev-data", registered,
        "--dev-split", "valid", "--out", str(bundle), "--overwrite", "--label", "label",
        *train_args,
    )  # fmt: skip
    out = work / f"{name}-eval"
    aduan("evaluate", "--model", str(bundle), "--data", registered, "--split", "test",
          "--out", str(out), "--baseline", "tfidf")  # fmt: skip
    h = json.loads((out / "metrics.json").read_text("utf-8"))["heads"]["label"]
    print(
        f"{name}: train {trained['_seconds'] / 60:.1f} min "
        f"(peak RSS so far {trained['_max_rss_mb']:.0f} MB)",
        flush=True,
    )
    rows = [(f"indonlu {name}", "macro_f1 x100", 100 * h["aduan"]["macro_f1"],
             100 * h["baseline"]["macro_f1"])]  # fmt: skip
    for model, f1 in PUBLISHED[name].items():
        rows.append((f"indonlu {name}", f"published {model}", f1, None))
    rows.append((f"indonlu {name}", "accuracy", h["aduan"]["accuracy"], h["baseline"]["accuracy"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="surabaya,smsa,emot")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--config", type=Path, default=None, help="A JSON TrainConfig for `aduan train`."
    )
    args = parser.parse_args()
    train_args: list[str] = []
    for flag, value in (("--epochs", args.epochs), ("--max-steps", args.max_steps),
                        ("--threads", args.threads), ("--config", args.config)):  # fmt: skip
        if value is not None:
            train_args += [flag, str(value)]
    from model.paths import aduan_home

    work = aduan_home() / "bench" / "accuracy"
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rows: list[tuple] = []
    for name in args.sets.split(","):
        if name == "surabaya":
            rows += surabaya(work, train_args)
        elif name in INDONLU:
            rows += indonlu(name, work, train_args)
        else:
            sys.exit(f"unknown set {name!r}: choose from surabaya, smsa, emot")
    print(f"\n{'set':<18} {'metric':<28} {'aduan':>8} {'tfidf+svc':>10}")
    for set_name, metric, ours, peer in rows:
        fmt = lambda v: "–" if v is None else f"{v:.4f}" if v < 2 else f"{v:.2f}"  # noqa: E731
        print(f"{set_name:<18} {metric:<28} {fmt(ours):>8} {fmt(peer):>10}")


if __name__ == "__main__":
    main()
