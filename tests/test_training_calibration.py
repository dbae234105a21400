"""Temperature scaling, abstain thresholds and metrics on synthetic scores."""

from __future__ import annotations

import numpy as np
import pytest

from model.bundle import HeadSpec
from training.calibration import MAX_UNLISTED, abstain_threshold, fit_temperature, set_decisions
from training.metrics import expected_calibration_error, head_metrics


def _sample(n: int, k: int, true_t: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose labels are drawn from softmax(logits / true_t)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, k))
    p = np.exp(logits / true_t)
    p /= p.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(k, p=row) for row in p])
    return logits, labels


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_calibration_temperature_recovers_the_true_one(true_t: float) -> None:
    logits, labels = _sample(4000, 5, true_t)
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.12)


def test_calibration_temperature_lowers_ece_of_overconfident_scores() -> None:
    logits, labels = _sample(3000, 5, 3.0, seed=1)

    def ece(t: float) -> float:
        p = np.exp(logits / t)
        p /= p.sum(axis=1, keepdims=True)
        return expected_calibration_error(p.max(axis=1), p.argmax(axis=1) == labels)

    assert ece(fit_temperature(logits, labels)) < ece(1.0) / 2


def test_calibration_temperature_without_dev_data_is_identity() -> None:
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0


def test_calibration_threshold_reaches_target_precision() -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.2, 1.0, 5000)
    correct = rng.uniform(size=5000) < conf  # calibrated by construction
    t = abstain_threshold(conf, correct, 0.9)
    assert t is not None
    accepted = conf >= t
    assert correct[accepted].mean() >= 0.9
    # And it is the loosest such cut: lowering it a little breaks the target.
    assert correct[conf >= t - 0.05].mean() < 0.9


def test_calibration_unlisted_share_corrects_confidence_for_unknown_labels() -> None:
    """Dev rows whose label the head never learned are always wrong: probabilities
    fitted on the known rows alone overstate confidence by their share."""
    logits, labels = _sample(4000, 5, 1.0, seed=2)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)  # calibrated on the known labels, by construction
    gold = labels.copy()
    gold[::10] = -1  # a tenth of the rows: a label the head does not have
    spec = HeadSpec(labels=list("abcde"))
    set_decisions(spec, p, gold, 0.9)
    assert spec.unlisted == pytest.approx(0.1)
    naive = expected_calibration_error(p.max(axis=1), p.argmax(axis=1) == gold)
    assert spec.metrics["ece"] < naive / 2
    scaled = p.max(axis=1) * 0.9
    assert spec.metrics["ece"] == pytest.approx(
        expected_calibration_error(scaled, p.argmax(axis=1) == gold)
    )
    set_decisions(spec, p, np.full(len(gold), -1), 0.9)
    assert spec.unlisted == MAX_UNLISTED


def test_calibration_threshold_edge_cases() -> None:
    assert abstain_threshold(np.array([]), np.array([], dtype=bool), 0.95) is None
    assert abstain_threshold(np.array([0.9, 0.8]), np.array([False, False]), 0.95) > 1.0
    assert abstain_threshold(np.array([0.9, 0.8]), np.array([True, True]), 0.95) == 0.8
    # Ties get one decision: both 0.7 rows in or both out.
    t = abstain_threshold(np.array([0.9, 0.7, 0.7]), np.array([True, True, False]), 0.95)
    assert t == 0.9


def test_metrics_head_metrics_on_known_case() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.5, 0.3]])
    gold = np.array([0, 2, 1, -1])
    m = head_metrics(probs, gold)
    assert m["n"] == 4
    assert m["accuracy"] == 0.5
    assert m["top3_accuracy"] == 0.75  # the unknown label (-1) is never in the top 3
    assert 0 <= m["ece"] <= 1 and 0 <= m["macro_f1"] <= 1
