"""Duplicate-detection benchmark: which embedding, and the calibrated scorer against its peers.

    python bench/dedup.py [--finetuned BUNDLE] [--threads 2]
                          [--calibration IDS.csv] [--test IDS.csv]

On the labelled Surabaya 2022 pairs in `data/labels/` (the calibration set
`surabaya-2022-dup-pairs.csv` and the held-out `...-test.csv`, later in time,
which nothing here is fitted on), for each embedding variant:

- the pretrained e5 encoder with the `passage: ` prompt (a separate pass),
- the pretrained e5 encoder with the `query: ` prompt (what a frozen-encoder
  bundle's classifier already computes: one pass),
- with `--finetuned BUNDLE`: that bundle's fine-tuned encoder with its own
  prompt (the classifier's embedding: one pass) and with `passage: `,

it reports the ranking quality of the plain cosine (ROC AUC) and, on the
held-out pairs, precision / recall / F1 of three systems calibrated on the
calibration pairs in the same run:

- `cosine cut`: one similarity threshold (the best-F1 cut on calibration),
- `aduan scorer`: the bundle's combiner (text, location and time evidence,
  `model.dedup`), threshold from cross-validation on calibration,
- `word overlap`: a lexical peer, the same best-F1 cut on word Jaccard,
- `no rare words`: the aduan scorer fitted without its `shared_rare_words`
  feature (the column held at 0), to show what that feature adds.

`--calibration` / `--test` take other `id_a,id_b,label` files of the same
data set (ids only). The held-out pairs of the second labelling batch alone,
which nobody had seen while session 10's features were chosen:

    git show 327d27a:data/labels/surabaya-2022-dup-pairs-test.csv > first.csv
    python - <<'PY'
    import csv
    first = {(r["id_a"], r["id_b"]) for r in csv.DictReader(open("first.csv"))}
    rows = list(csv.DictReader(open("data/labels/surabaya-2022-dup-pairs-test.csv")))
    with open("second.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["id_a", "id_b", "label"], lineterminator="\n")
        w.writeheader()
        w.writerows(r for r in rows if (r["id_a"], r["id_b"]) not in first)
    PY
    python bench/dedup.py --test second.csv

Texts are read from ../shared/data and never printed. Results are also written
to $ADUAN_HOME/bench/dedup.json. Index figures: `bench/index.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LABELS = ROOT / "data" / "labels"
CALIBRATION = LABELS / "surabaya-2022-dup-pairs.csv"
TEST = LABELS / "surabaya-2022-dup-pairs-test.csv"


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def _without(x: np.ndarray, column: int) -> np.ndarray:
    """`x` with one feature held at 0 (a constant column: the combiner cannot use it)."""
    out = x.copy()
    out[:, column] = 0.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--finetuned", type=Path, help="a fine-tuned bundle to compare")
    parser.add_argument("--data", default="surabaya-2022")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--calibration", type=Path, default=CALIBRATION, help="ids CSV to fit on")
    parser.add_argument("--test", type=Path, default=TEST, help="ids CSV to score (held out)")
    args = parser.parse_args()

    import torch

    from data.load import load_complaints
    from data.pairs import pairs_from_ids
    from data.registry import shared_data_available
    from model.bundle import Bundle
    from model.dedup import (
        FEATURES,
        DuplicateFinder,
        best_threshold,
        fit_scorer,
        fit_word_rarity,
        pair_metrics,
        score_features,
    )
    from model.encoder import ensure_encoder
    from model.paths import aduan_home
    from training.dedup import pair_feature_matrix

    if args.threads:
        torch.set_num_threads(args.threads)
    if not shared_data_available(args.data):
        sys.exit(f"shared data set {args.data!r} not found: this benchmark needs ../shared/data")
    complaints = load_complaints(args.data)
    cal = pairs_from_ids(args.calibration, complaints)
    test = pairs_from_ids(args.test, complaints)
    y_cal = np.array([p.label for p in cal], dtype=int)
    y_test = np.array([p.label for p in test], dtype=int)
    print(
        f"pairs: calibration {len(cal)} ({y_cal.sum()} duplicates), "
        f"held-out test {len(test)} ({y_test.sum()} duplicates)"
    )

    base = Bundle.new(ensure_encoder(), {"_": ["a", "b"]}, name="pretrained")
    variants: list[tuple[str, Bundle, str]] = [
        ("pretrained e5, passage: (separate pass)", base, "passage: "),
        ("pretrained e5, query: (frozen classifier's pass)", base, "query: "),
    ]
    if args.finetuned:
        tuned = Bundle.load(args.finetuned)
        variants += [
            (
                f"fine-tuned {tuned.version}, {tuned.encoder.prompt} (classifier's pass)",
                tuned,
                tuned.encoder.prompt,
            ),
            (f"fine-tuned {tuned.version}, passage:", tuned, "passage: "),
        ]

    # How rare each word is, counted over the complaints the pairs come from (as
    # `aduan dedup calibrate --data` does); the same table for every variant.
    rarity = fit_word_rarity(complaints.texts())
    cos = FEATURES.index("cosine")
    words = FEATURES.index("word_overlap")
    rare = FEATURES.index("shared_rare_words")
    rows = []
    for name, bundle, prompt in variants:
        bundle.dedup.prompt = prompt
        bundle.dedup_words = rarity
        finder = DuplicateFinder(bundle)
        started = time.perf_counter()
        x_cal = pair_feature_matrix(finder, cal)
        x_test = pair_feature_matrix(finder, test)
        seconds = time.perf_counter() - started
        spec = fit_scorer(x_cal, y_cal)
        without = fit_scorer(_without(x_cal, rare), y_cal)
        systems = {
            "cosine cut": (x_test[:, cos], best_threshold(x_cal[:, cos], y_cal)),
            "aduan scorer": (score_features(spec, x_test), spec.threshold),
            "word overlap": (x_test[:, words], best_threshold(x_cal[:, words], y_cal)),
            "no rare words": (score_features(without, _without(x_test, rare)), without.threshold),
        }
        row = {
            "embedding": name,
            "auc_cosine_calibration": auc(x_cal[:, cos], y_cal),
            "auc_cosine_test": auc(x_test[:, cos], y_test),
            "cosine_quartiles_test": {
                str(label): np.percentile(x_test[y_test == label, cos], [25, 50, 75])
                .round(4)
                .tolist()
                for label in (0, 1)
            },
            "embed_seconds": round(seconds, 1),
            "scorer": {
                "cv": spec.metrics["cross_validated"],
                "cv_no_rare_words": without.metrics["cross_validated"],
                "weights": dict(zip(FEATURES, np.round(spec.weights, 3).tolist(), strict=True)),
            },
            "test": {k: pair_metrics(s, y_test, t).to_dict() for k, (s, t) in systems.items()},
        }
        rows.append(row)
        print(f"\n== {name}  (embedding {seconds:.0f} s)")
        print(
            f"cosine ROC AUC: calibration {row['auc_cosine_calibration']:.4f}, "
            f"test {row['auc_cosine_test']:.4f}; test cosine quartiles "
            f"dup {row['cosine_quartiles_test']['1']} vs not {row['cosine_quartiles_test']['0']}"
        )
        print(f"{'held-out test':<16}{'threshold':>10}{'precision':>11}{'recall':>8}{'F1':>8}")
        for k, m in row["test"].items():
            print(
                f"{k:<16}{m['threshold']:>10.4f}{m['precision']:>11.3f}"
                f"{m['recall']:>8.3f}{m['f1']:>8.3f}"
            )
        cv = spec.metrics["cross_validated"]["f1"]
        cv_without = without.metrics["cross_validated"]["f1"]
        print(
            f"(cross-validated on calibration: aduan scorer F1 {cv:.3f}, "
            f"no rare words {cv_without:.3f})"
        )

    out = aduan_home() / "bench" / "dedup.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"variants": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
