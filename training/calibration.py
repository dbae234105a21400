"""Turning head scores into trustworthy decisions: temperature and abstain threshold.

Both are fitted on dev data (never on training data, where the model is
overconfident) and stored per head in the bundle, so `predict` applies them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from model.bundle import Bundle, HeadSpec
from model.predict import calibrated
from training.metrics import head_metrics


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> float:
    """The softmax temperature minimising dev negative log-likelihood (Guo et al., 2017).

    Args:
        logits: [n, k] raw head outputs on dev rows.
        labels: [n] gold label indices.
    Returns:
        T > 0; probabilities are softmax(logits / T). 1.0 when there is no dev data.
    """
    if len(labels) == 0:
        return 1.0
    z = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    # Bounded so one odd dev set cannot make a head absurdly sharp or flat.
    return float(np.clip(log_t.exp().item(), 0.05, 20.0))


def abstain_threshold(
    top_prob: np.ndarray, correct: np.ndarray, target_precision: float
) -> float | None:
    """The lowest confidence cut whose accepted dev rows reach `target_precision`.

    Rows with top probability >= the cut are answered, the rest go to a human.
    Returns None when there is no dev data; 1.0 (+epsilon, i.e. always abstain)
    when no cut reaches the target.
    """
    if len(top_prob) == 0:
        return None
    order = np.argsort(-top_prob, kind="stable")
    probs = top_prob[order]
    hits = np.cumsum(correct[order].astype(np.float64))
    precision = hits / np.arange(1, len(probs) + 1)
    # Accept the largest prefix (by confidence) whose precision meets the target,
    # cutting only between distinct probabilities so equal scores get one decision.
    ok = np.flatnonzero(precision >= target_precision)
    for i in ok[::-1]:
        if i + 1 == len(probs) or probs[i + 1] < probs[i]:
            return float(probs[i])
    return float(np.nextafter(1.0, 2.0))


def calibrate_heads(
    bundle: Bundle,
    logits: dict[str, np.ndarray],
    gold: dict[str, np.ndarray],
    labelled: dict[str, np.ndarray],
    target_precision: float,
) -> dict[str, dict[str, Any]]:
    """Fit each head's temperature and abstain threshold on dev; return its dev metrics.

    Args:
        logits: per head, [n, k] dev logits.
        gold: per head, [n] label index, -1 where the row's label is not one the head knows.
        labelled: per head, [n] True where the row has a label at all.
    Temperature is fitted on rows with a known label; the threshold and the
    metrics count every labelled row, so a label the head never learned counts
    as an error, as it will in production.
    """
    metrics = {}
    for h, spec in bundle.head_specs.items():
        y, z = gold[h], logits[h]
        known = y >= 0
        spec.temperature = fit_temperature(z[known], y[known])
        p = calibrated(z, spec.temperature)
        set_decisions(spec, p[labelled[h]], y[labelled[h]], target_precision)
        spec.trained = True
        metrics[h] = spec.metrics
    return metrics


#: At most this share of probability goes to labels a head does not know: a dev set
#: where more rows than that have unknown labels says the head is the wrong one.
MAX_UNLISTED = 0.5


def set_decisions(spec: HeadSpec, probs: np.ndarray, gold: np.ndarray, target: float) -> None:
    """A head's unlisted share, abstain threshold and dev metrics from its dev
    probabilities [n, k] on the labelled rows (`gold`: label index, -1 for a label it
    does not know), before the unlisted scaling (which is applied here, as `predict`
    applies it last).

    The unlisted share is the maximum-likelihood probability of an extra "none of
    these labels" class: the dev share of rows with an unknown label. Without it,
    probabilities fitted on the known rows are overconfident by about that share
    on all rows, which is what production sees.
    """
    spec.unlisted = round(min(float(np.mean(gold < 0)) if len(gold) else 0.0, MAX_UNLISTED), 6)
    probs = probs * (1.0 - spec.unlisted)
    spec.abstain_threshold = abstain_threshold(
        probs.max(axis=1), probs.argmax(axis=1) == gold, target
    )
    spec.metrics = head_metrics(probs, gold)
