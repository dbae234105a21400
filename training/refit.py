"""Spend the dev rows on the final fit, once dev has made its choices.

`aduan train` holds out dev (with `--split time`, the latest rows) to pick the
epoch and fit what must be fitted on unseen rows: temperatures, the lexical
mix, abstain thresholds, whether exemplars vote on the type. After that, the
parts of a bundle that are cheap to fit again learn from the dev rows too:

- the lexical companion (`training.lexical.refit_lexical`) is fitted again on
  the training and dev rows, keeping the mixes and thresholds chosen on dev;
- a routed head's office counts and exemplars take in the dev rows
  (`training.routing.add_dev_rows`).

The encoder and its heads are not trained again (that would double the
training time). On Surabaya, inside the training rows (`bench/refit.py`,
docs/benchmarks.md), this raised the next period's accuracy, and its ECE a
little: the mixes were fitted for the lexical model before the refit. The
bundle's dev metrics stay those of the fit before, which dev could still
judge. `mix_folds` (`TrainConfig.refit_mix_folds`, off by default) fits the
mixes, thresholds and dev metrics again on cross-fitted dev probabilities;
inside the training rows that changed little (`bench/inpool.py`). `aduan
evaluate --baseline` gives the TF-IDF peer the same rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from data.load import Complaints
from model.bundle import Bundle
from training.lexical import refit_lexical
from training.routing import add_dev_rows


def refit_with_dev(
    bundle: Bundle,
    train: Complaints,
    dev: Complaints,
    *,
    office_dev: Complaints | None = None,
    dev_embeddings: np.ndarray | None = None,
    mix_folds: int = 0,
    target_precision: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Refit the bundle's cheap parts on `train` + `dev` (labels as the heads learned
    them); `office_dev` is `dev` with office labels, for a routed head. With
    `mix_folds` >= 2 the lexical mixes and abstain thresholds are fitted again on
    cross-fitted dev probabilities (`refit_lexical`). Records and returns what was
    done in `bundle.training["refit_with_dev"]`."""
    report: dict[str, Any] = {"dev_rows": len(dev)}
    if len(dev) and bundle.lexical is not None:
        report["lexical"] = refit_lexical(
            bundle, train, dev, mix_folds=mix_folds, target_precision=target_precision,
            dev_embeddings=dev_embeddings, seed=seed,
        )  # fmt: skip
    if len(dev) and bundle.router is not None and office_dev is not None:
        report["exemplars_added"] = add_dev_rows(bundle, office_dev, dev_embeddings=dev_embeddings)
    bundle.training["refit_with_dev"] = report
    return report
