"""Compare training settings inside the training pool, without the test slice.

    python bench/inpool.py --candidate '{"max_length_cap": 256}' [--candidate JSON ...]
                           [--reuse] [--threads N]

A change to a default must not be chosen on the test slice of
`bench/routing.py` and `bench/accuracy.py`, or the figures those benches
report would be tuned to it. This bench stays inside their training pool, the
Surabaya 2022 complaints before the test slice:

- "next": the pool's latest 15% (1,108 complaints), only scored here;
- "rest": the earlier rows, trained on as `aduan train --split time` does
  (its own latest 15% is dev).

For the committed defaults and for each `--candidate` (a JSON object of
`TrainConfig` keys, passed to `aduan train --config`), it trains a routed
bundle on "rest" (`--directory`, `--scope` Kota Surabaya) and scores it on
"next" with `aduan evaluate --baseline tfidf`. A candidate that changes only
what `aduan bundle lexical` fits after fine-tuning (`AFTER_FINE_TUNING`: the
lexical companion, the refit with dev) is that command run on a copy of the
defaults' bundle, with the same result as training with it and no second
fine-tuning. It prints one table: each system's figures and the TF-IDF +
LinearSVC peer's (from the defaults' run), with training time and peak RSS (of
the largest command so far). Everything (the split files hold real text) is
written under $ADUAN_HOME/bench/inpool; no complaint text is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accuracy import aduan, write_jsonl  # noqa: E402
from bench.routing import SURABAYA, build_directories  # noqa: E402


def rows(metrics: dict, system: str) -> dict[str, float]:
    """The figures compared, for one system of one `aduan evaluate` run of a routed bundle."""
    agency, topic = metrics["heads"]["agency"], metrics["heads"]["topic"]
    routed = agency["routing"][system]
    out = {
        "exact office, all": routed["exact_office_accuracy"],
        "exact office, local offices": routed["local_offices"]["exact_office_accuracy"],
        "exact office, other offices": routed["other_offices"]["exact_office_accuracy"],
        "office type": routed["type_accuracy"],
        "agency top-3": agency[system]["top3_accuracy"],
        "agency macro-F1, >= 20 training rows": agency[system]["macro_f1_frequent"],
        "agency ECE": agency[system]["ece"],
        "topic accuracy": topic[system]["accuracy"],
        "topic top-3": topic[system]["top3_accuracy"],
        "topic ECE": topic[system]["ece"],
    }
    return {k: float(v) for k, v in out.items()}


def pool_split(work: Path) -> tuple[Path, Path, Path]:
    """The Surabaya directory and the pool's "rest" and "next" files, written under `work`."""
    from data.load import load_complaints
    from data.registry import shared_data_available
    from data.splits import time_split

    if not shared_data_available("surabaya-2022"):
        sys.exit("shared data set 'surabaya-2022' not found: this benchmark needs ../shared/data")
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    directory = build_directories(work)["surabaya"]
    data = load_complaints("surabaya-2022", label_columns=["agency", "topic"])
    pool, _test = time_split(data, dev_fraction=0.15)  # the test slice is not read further
    rest, following = time_split(pool, dev_fraction=0.15)
    rest_file = write_jsonl(rest.dataset.to_list(), work / "rest.jsonl")
    next_file = write_jsonl(following.dataset.to_list(), work / "next.jsonl")
    print(
        f"pool {len(pool)}: trained on the earlier {len(rest)}, "
        f"scored on the next {len(following)}",
        flush=True,
    )
    return directory, rest_file, next_file


def score(bundle: Path, next_file: Path, out: Path, threads: list[str]) -> dict[str, dict]:
    """`aduan evaluate --baseline tfidf` of a bundle on "next": the compared figures per system."""
    aduan("evaluate", "--model", str(bundle), "--data", str(next_file), "--out", str(out),
          "--baseline", "tfidf", *threads)  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text("utf-8"))
    return {s: rows(metrics, s) for s in ("aduan", "baseline")}


def print_table(columns: dict[str, dict[str, float]], notes: dict[str, str] | None = None) -> None:
    """A markdown table: one row per figure, one column per system."""
    names = list(columns)
    print("\n| metric (next 15% of the pool) | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for key in columns[names[0]]:
        print(f"| {key} | " + " | ".join(f"{columns[n][key]:.4f}" for n in names) + " |")
    if notes:
        print("| training | " + " | ".join(notes.get(n, "") for n in names) + " |")


#: TrainConfig keys that act only after fine-tuning, as `aduan bundle lexical --config`
#: applies them: a candidate that changes only these is that command run on a copy of
#: the defaults' bundle (the same fine-tuning, a few minutes instead of a training).
#: (`class_weight_power` and `target_precision` also act on the heads' training.)
AFTER_FINE_TUNING = frozenset(
    {"lexical_word_features", "lexical_char_features", "lexical_c", "refit_with_dev",
     "refit_mix_folds"}
)  # fmt: skip


def candidate(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict) or not value:
        raise argparse.ArgumentTypeError("give a non-empty JSON object of TrainConfig keys")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--candidate", type=candidate, action="append", default=[],
        help="TrainConfig keys as a JSON object, e.g. '{\"max_length_cap\": 256}' (repeatable)",
    )  # fmt: skip
    parser.add_argument("--reuse", action="store_true",
                        help="score bundles an earlier run of this bench trained with the same "
                             "config again instead of training them")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    from model.paths import aduan_home

    work = aduan_home() / "bench" / "inpool"
    directory, rest_file, next_file = pool_split(work)
    threads = ["--threads", str(args.threads)] if args.threads else []
    systems: list[tuple[str, dict | None]] = [("defaults", None)]
    systems += [(json.dumps(c, sort_keys=True), c) for c in args.candidate]

    columns: dict[str, dict[str, float]] = {}
    notes: dict[str, str] = {}
    peer: dict[str, float] | None = None
    defaults = work / "bundle-defaults"
    for name, config in systems:
        slug = hashlib.sha1(name.encode()).hexdigest()[:10] if config else "defaults"
        bundle = work / f"bundle-{slug}"
        extra: list[str] = []
        if config is not None:
            config_file = work / f"config-{slug}.json"
            config_file.write_text(json.dumps(config), encoding="utf-8")
            extra = ["--config", str(config_file)]
        if args.reuse and (bundle / "bundle.json").exists():
            notes[name] = "trained by an earlier run"
        elif config is not None and set(config) <= AFTER_FINE_TUNING:
            shutil.rmtree(bundle, ignore_errors=True)
            shutil.copytree(defaults, bundle)
            refit = aduan("bundle", "lexical", "--model", str(bundle), *extra, *threads)
            notes[name] = f"defaults' fine-tuning + {refit['_seconds']:.0f} s (bundle lexical)"
        else:
            trained = aduan(
                "train", "--data", str(rest_file), "--out", str(bundle), "--overwrite",
                "--label", "agency", "--label", "topic", "--split", "time",
                "--directory", str(directory), "--scope", SURABAYA, *extra, *threads,
            )  # fmt: skip
            # (peak RSS is of the largest command so far: each training's own when it grew)
            notes[name] = f"{trained['_seconds'] / 60:.1f} min, {trained['_max_rss_mb']:,.0f} MB"
        print(f"{name}: {notes[name]}", flush=True)
        figures = score(bundle, next_file, work / f"eval-{slug}", threads)
        columns[name] = figures["aduan"]
        peer = peer or figures["baseline"]
    assert peer is not None
    columns["TF-IDF + LinearSVC peer"] = peer
    print_table(columns, notes)
    out = {"columns": columns, "training": notes}
    (work / "inpool.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten {work / 'inpool.json'}")


if __name__ == "__main__":
    main()
