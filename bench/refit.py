"""Does the final fit gain from the dev rows? Checked inside the training pool.

    python bench/refit.py [--threads N]

`aduan train` (`TrainConfig.refit_with_dev`, on by default; `training.refit`)
fits the lexical companion again on train + dev once dev has chosen the mixes
and thresholds, and adds the dev rows to a routed head's exemplars. Whether
that helps the *next* period must not be judged on the test slice of
`bench/routing.py`, or the choice would be tuned to it. So this bench stays
inside that bench's training pool, the Surabaya 2022 complaints before its
test slice:

- "next": the pool's latest 15% (1,108 complaints), only scored here;
- "rest": the earlier rows, trained on as `aduan train --split time` does
  (its own latest 15% is dev).

One fine-tuning, two bundles: `aduan train --directory ...` with
`{"refit_with_dev": false}`, and a copy of it brought to the default by `aduan
bundle lexical` (which fits the lexical model and mixes again from the same rows,
then refits with dev as `aduan train` does by default). `aduan evaluate
--baseline tfidf` scores both on "next"; the TF-IDF peer is fitted with or
without the dev rows likewise. Everything (the split files hold real text) is
written under $ADUAN_HOME/bench/refit. Prints a table; no complaint text.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accuracy import aduan  # noqa: E402
from bench.inpool import pool_split, score  # noqa: E402
from bench.routing import SURABAYA  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    from model.paths import aduan_home

    work = aduan_home() / "bench" / "refit"
    directory, rest_file, next_file = pool_split(work)
    threads = ["--threads", str(args.threads)] if args.threads else []

    config = work / "no-refit.json"
    config.write_text(json.dumps({"refit_with_dev": False}), encoding="utf-8")
    before, after = work / "without-dev", work / "with-dev"
    trained = aduan(
        "train", "--data", str(rest_file), "--out", str(before), "--overwrite",
        "--label", "agency", "--label", "topic", "--split", "time",
        "--directory", str(directory), "--scope", SURABAYA, "--config", str(config), *threads,
    )  # fmt: skip
    print(f"train: {trained['_seconds'] / 60:.1f} min", flush=True)
    shutil.rmtree(after, ignore_errors=True)
    shutil.copytree(before, after)
    refit = aduan("bundle", "lexical", "--model", str(after), *threads)
    print(f"bundle lexical (refit with dev): {refit['_seconds']:.0f} s", flush=True)

    figures = {}
    for name, bundle in (("without dev", before), ("with dev", after)):
        figures[name] = score(bundle, next_file, work / f"eval-{bundle.name}", threads)
    print()
    print("| metric (next 15% of the pool) | aduan | aduan, dev in the final fit "
          "| peer | peer, dev in the final fit |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for key in figures["without dev"]["aduan"]:
        cells = [figures[v][s][key] for s in ("aduan", "baseline") for v in figures]
        print(f"| {key} | " + " | ".join(f"{c:.4f}" for c in cells) + " |")
    (work / "refit.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
