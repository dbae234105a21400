"""Classification metrics shared by training (dev metrics) and evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import f1_score


def head_metrics(probs: np.ndarray, gold: np.ndarray, *, n_bins: int = 15) -> dict[str, Any]:
    """Accuracy, top-3 accuracy, macro/weighted F1 and ECE for one head.

    Args:
        probs: [n, k] calibrated probabilities.
        gold: [n] gold indices; -1 marks a label the head does not know (counted wrong).
    """
    n = len(gold)
    if n == 0:
        return {"n": 0}
    pred = probs.argmax(axis=1)
    top3 = np.argsort(-probs, axis=1)[:, :3]
    known = gold >= 0
    return {
        "n": int(n),
        "accuracy": float((pred == gold).mean()),
        "top3_accuracy": float((top3 == gold[:, None]).any(axis=1).mean()),
        "macro_f1": float(f1_score(gold, pred, average="macro", labels=np.unique(gold[known]))),
        "weighted_f1": float(
            f1_score(gold, pred, average="weighted", labels=np.unique(gold[known]))
        ),
        "ece": expected_calibration_error(probs.max(axis=1), pred == gold, n_bins=n_bins),
    }


def expected_calibration_error(conf: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """ECE with equal-width confidence bins (weighted mean |accuracy - confidence|)."""
    if len(conf) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)
