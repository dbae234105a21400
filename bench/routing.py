"""Routing benchmark: concrete offices from type × region, against a flat classifier.

    python bench/routing.py [--sets surabaya,lapor,out-of-region] [--frozen-encoder]
                            [--epochs N] [--config FILE]
                            [--surabaya-bundle DIR] [--lapor-bundle DIR]

- directories: built with `python -m training.build_directory` from the
  labels and the official region tables (Surabaya: home Kota Surabaya, every
  kelurahan and kecamatan office added; LAPOR! 2017: national).
- surabaya: time split as in bench/accuracy.py (the latest 15% is the test
  slice). `aduan train --directory ... --scope 35.78` learns office types and
  routes with the complaints' location fields; `aduan evaluate --baseline
  tfidf` scores it against the flat TF-IDF + LinearSVC classifier over office
  names, trained on the same rows, on exact office accuracy for kelurahan /
  kecamatan offices and for the rest.
- lapor: LAPOR! 2017 (national; no location fields, the region only in the
  text), a seeded random 15% test slice; same commands with a national scope.
- out-of-region: the Surabaya bundle, routed over the LAPOR! directory with
  the national region table, on the LAPOR! complaints outside Surabaya whose
  office type the Surabaya model knows; the flat peer trained on Surabaya
  office names is scored on the type of the office it names.

Everything (split files hold real text) is written under
$ADUAN_HOME/bench/routing, never in the repo. Prints tables; no complaint
text is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accuracy import aduan, write_jsonl  # noqa: E402

SURABAYA = "35.78"


def build_directories(work: Path) -> dict[str, Path]:
    out = {"surabaya": work / "surabaya-directory.csv", "lapor": work / "lapor-directory.csv"}
    commands = {
        "surabaya": ["--data", "surabaya-2022", "--home", SURABAYA,
                     "--complete", "kelurahan,kecamatan"],
        "lapor": ["--data", "lapor-2017"],
    }  # fmt: skip
    for name, args in commands.items():
        import subprocess

        proc = subprocess.run(
            [sys.executable, "-m", "training.build_directory", *args, "--out", str(out[name])],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            sys.exit(f"build_directory {name} failed:\n{proc.stderr[-2000:]}")
        print(f"directory {name}: {proc.stderr.strip().splitlines()[0]}", flush=True)
    return out


def routing_rows(name: str, metrics: dict) -> list[tuple]:
    routing = metrics["heads"]["agency"]["routing"]
    ours, flat = routing["aduan"], routing["baseline"]
    rows = []
    for part, label in (("local_offices", "kelurahan/kecamatan offices"),
                        ("other_offices", "other offices"), ("", "all")):  # fmt: skip
        a = ours[part] if part else ours
        b = flat[part] if part else flat
        n = a["n"] if part else ours["n"]
        for key in ("exact_office_accuracy", "type_accuracy"):
            rows.append((f"{name} {label} (n={n})", key, a[key], b[key]))
    region = ours.get("region") or {}
    rows.append((f"{name}", "region resolved", region.get("resolved"), None))
    rows.append((f"{name}", "region correct (gold office has one)", region.get("correct"), None))
    print(f"{name}: region evidence {region.get('sources')}", flush=True)
    return rows


def evaluate(name: str, work: Path, bundle: Path, test: Path) -> list[tuple]:
    """Score a routed bundle and its flat peer on the test file; the table's rows."""
    evaluated = aduan(
        "evaluate", "--model", str(bundle), "--data", str(test),
        "--out", str(work / f"{name}-eval"), "--baseline", "tfidf",
    )  # fmt: skip
    print(f"{name}: evaluate {evaluated['_seconds'] / 60:.1f} min", flush=True)
    metrics = json.loads((work / f"{name}-eval" / "metrics.json").read_text("utf-8"))
    return routing_rows(name, metrics)


def train_and_evaluate(
    name: str,
    work: Path,
    pool: Path,
    test: Path,
    directory: Path,
    train_args: list[str],
    bundle: Path | None = None,
) -> tuple[Path, list[tuple]]:
    """Train a routed bundle on the pool (unless `bundle` is given), then evaluate it."""
    if bundle is None:
        bundle = work / f"{name}-bundle"
        trained = aduan(
            "train", "--data", str(pool), "--out", str(bundle), "--overwrite",
            "--directory", str(directory), *train_args,
        )  # fmt: skip
        print(f"{name}: train {trained['_seconds'] / 60:.1f} min", flush=True)
    return bundle, evaluate(name, work, bundle, test)


def surabaya(work: Path, directory: Path, train_args: list[str], bundle: Path | None) -> Path:
    from data.load import load_complaints
    from data.splits import time_split

    data = load_complaints("surabaya-2022", label_columns=["agency", "topic"])
    pool, test = time_split(data, dev_fraction=0.15)
    pool_file = write_jsonl(pool.dataset.to_list(), work / "surabaya-pool.jsonl")
    test_file = write_jsonl(test.dataset.to_list(), work / "surabaya-test.jsonl")
    args = ["--label", "agency", "--label", "topic", "--split", "time", "--scope", SURABAYA,
            *train_args]  # fmt: skip
    out, rows = train_and_evaluate("surabaya", work, pool_file, test_file, directory, args, bundle)
    ROWS.extend(rows)
    return out


def lapor(work: Path, directory: Path, train_args: list[str], bundle: Path | None) -> None:
    from data.load import load_complaints
    from data.splits import random_split

    data = load_complaints("lapor-2017", label_columns=["agency"])
    pool, test = random_split(data, dev_fraction=0.15, seed=0)
    pool_file = write_jsonl(pool.dataset.to_list(), work / "lapor-pool.jsonl")
    test_file = write_jsonl(test.dataset.to_list(), work / "lapor-test.jsonl")
    args = ["--split", "random", "--label", "agency", *train_args]
    _, rows = train_and_evaluate("lapor", work, pool_file, test_file, directory, args, bundle)
    ROWS.extend(rows)


def out_of_region(work: Path, bundle_dir: Path, directory: Path) -> None:
    """The Surabaya model on LAPOR! complaints from elsewhere, over the LAPOR! directory."""
    from collections import Counter

    import numpy as np

    from data.directory import Directory
    from data.load import load_complaints
    from model.bundle import Bundle
    from model.predict import predict
    from model.regions import Gazetteer, is_within
    from model.routing import Router
    from training.baseline import TfidfBaseline
    from training.evaluate import training_split
    from training.routing import read_regions

    bundle = Bundle.load(bundle_dir)
    assert bundle.router is not None
    home_directory = bundle.router.directory
    known_types = set(bundle.head_specs["agency"].labels)
    table = read_regions(None)
    lapor_directory = Directory.read(directory, regions=table)
    data = load_complaints("lapor-2017", label_columns=["agency"])
    rows = []
    for i, label in enumerate(data.labels("agency")):
        office = lapor_directory.lookup(label) if label else None
        if office is None or office.type not in known_types:
            continue
        if office.region_code and is_within(office.region_code, SURABAYA):
            continue
        rows.append(i)
    subset = data.select(rows)
    gold = [lapor_directory.lookup(g) for g in subset.labels("agency")]  # type: ignore[arg-type]
    train, dev = training_split(bundle)  # with the bundle's own (Surabaya) directory
    peer = TfidfBaseline().fit(
        train.texts(), {"agency": train.labels("agency")}, dev.texts(),
        {"agency": dev.labels("agency")},
    )  # fmt: skip
    peer_probs = peer.predict_proba(subset.texts())["agency"]
    peer_labels = peer.labels("agency")
    peer_type = []
    for j in peer_probs.argmax(axis=1):
        office = home_directory.lookup(peer_labels[j])
        peer_type.append(office.type if office else None)

    started = time.perf_counter()
    bundle.router = Router(lapor_directory, Gazetteer(table))
    preds = predict(bundle, subset.texts(), top_k=1)
    seconds = time.perf_counter() - started
    top_type = [p.heads["agency"].types[0].label for p in preds]  # type: ignore[index]
    office_type = [
        (p.heads["agency"].top[0].details or {}).get("type") if p.heads["agency"].top else None
        for p in preds
    ]
    ours_office = [p.heads["agency"].top[0].label if p.heads["agency"].top else None for p in preds]

    def share(hits: list[bool]) -> float:
        return float(np.mean(hits)) if hits else float("nan")

    # every row's gold office is in the LAPOR! directory (rows were chosen that way)
    types_ok = [t == g.type for t, g in zip(top_type, gold, strict=True)]  # type: ignore[union-attr]
    routed_ok = [t == g.type for t, g in zip(office_type, gold, strict=True)]  # type: ignore[union-attr]
    peer_ok = [t == g.type for t, g in zip(peer_type, gold, strict=True)]  # type: ignore[union-attr]
    exact = [
        o is not None and lapor_directory.lookup(o) == g
        for o, g in zip(ours_office, gold, strict=True)
    ]
    exact_given_type = [e for e, t in zip(exact, types_ok, strict=True) if t]
    name = f"out-of-region (n={len(rows)})"
    ROWS.append((name, "type_accuracy (the head's top type)", share(types_ok), share(peer_ok)))
    ROWS.append((name, "type of the office routed to", share(routed_ok), share(peer_ok)))
    ROWS.append((name, "exact_office_accuracy", share(exact), None))
    ROWS.append((name, "exact office when the type is right", share(exact_given_type), None))
    common = Counter(g.type for g in gold if g).most_common(8)  # type: ignore[union-attr]
    print("out-of-region gold types: " + ", ".join(f"{t} {n}" for t, n in common), flush=True)
    # Where the type goes wrong: per gold type (the most common), and the commonest
    # confusions; type names only (they are label names, not complaint text).
    gold_types = [g.type for g in gold]  # type: ignore[union-attr]
    right = Counter(g for g, ok in zip(gold_types, types_ok, strict=True) if ok)
    peer_right = Counter(g for g, ok in zip(gold_types, peer_ok, strict=True) if ok)
    print("out-of-region type accuracy by gold type (aduan / flat peer):")
    for t, n in Counter(gold_types).most_common(12):
        print(f"  {t:<58} {n:>4}  {right[t] / n:.3f} / {peer_right[t] / n:.3f}")
    wrong = Counter((g, t) for g, t in zip(gold_types, top_type, strict=True) if g != t)
    print("out-of-region commonest type confusions (gold -> aduan's top type):")
    for (g, t), n in wrong.most_common(10):
        print(f"  {n:>4}  {g} -> {t}")
    print(
        f"out-of-region: {len(rows)} LAPOR! complaints of {len(known_types)} Surabaya types, "
        f"outside Surabaya; routed in {seconds:.0f} s",
        flush=True,
    )


ROWS: list[tuple] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="surabaya,lapor,out-of-region")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--frozen-encoder", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--config", type=Path, default=None, help="A JSON TrainConfig for `aduan train`."
    )
    parser.add_argument(
        "--surabaya-bundle", type=Path, default=None,
        help="Evaluate this routed Surabaya bundle instead of training one.",
    )  # fmt: skip
    parser.add_argument(
        "--lapor-bundle", type=Path, default=None,
        help="Evaluate this routed LAPOR! bundle instead of training one.",
    )  # fmt: skip
    args = parser.parse_args()
    train_args: list[str] = []
    for flag, value in (
        ("--epochs", args.epochs), ("--threads", args.threads), ("--config", args.config)
    ):  # fmt: skip
        if value is not None:
            train_args += [flag, str(value)]
    if args.frozen_encoder:
        train_args.append("--frozen-encoder")
    from model.paths import aduan_home

    work = aduan_home() / "bench" / "routing"
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sets = args.sets.split(",")
    directories = build_directories(work)
    bundle = args.surabaya_bundle
    if "surabaya" in sets:
        bundle = surabaya(work, directories["surabaya"], train_args, bundle)
    if "lapor" in sets:
        lapor(work, directories["lapor"], train_args, args.lapor_bundle)
    if "out-of-region" in sets:
        bundle = bundle or work / "surabaya-bundle"
        out_of_region(work, bundle, directories["lapor"])
    print()
    print("| set | metric | aduan (type × region) | flat TF-IDF + LinearSVC |")
    print("|---|---|---:|---:|")
    for name, key, ours, peer in ROWS:
        cells = [f"{v:.4f}" if isinstance(v, float) else "–" for v in (ours, peer)]
        print(f"| {name} | {key} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
