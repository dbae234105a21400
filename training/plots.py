"""PNG plots for `aduan evaluate`: reliability, precision-coverage, confusion matrix."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from data.text import redact  # noqa: E402

N_BINS = 10
TOP_LABELS = 15


def reliability_plot(curves: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """Accuracy per confidence bin against the diagonal, one line per system."""
    fig, ax = plt.subplots(figsize=(5, 5))
    edges = np.linspace(0, 1, N_BINS + 1)
    for name, c in curves.items():
        conf, correct = c["conf"], c["correct"].astype(float)
        bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, N_BINS - 1)
        xs, ys = [], []
        for b in range(N_BINS):
            sel = bins == b
            if sel.sum() >= 5:  # too few rows make a bin's accuracy noise
                xs.append(conf[sel].mean())
                ys.append(correct[sel].mean())
        ax.plot(xs, ys, marker="o", label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="confidence (top probability)", ylabel="accuracy", title=title)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def coverage_plot(curves: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """Precision of the most confident rows as coverage grows, one line per system."""
    from training.evaluate import coverage_curve

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, c in curves.items():
        cov, prec = coverage_curve(c["conf"], c["correct"])
        ax.plot(cov, prec, label=name)
    ax.axhline(0.95, color="grey", linestyle="--", linewidth=1)
    ax.axvline(0.80, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="coverage (share answered)", ylabel="precision", title=title)
    ax.set_ylim(0, 1.01)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion_plot(curve: dict[str, Any], path: Path, title: str) -> None:
    """Row-normalised confusion among the most frequent gold labels (others pooled)."""
    gold, pred = curve["gold"], curve["pred"]
    top = [label for label, _ in Counter(gold).most_common(TOP_LABELS)]
    names = top + ["(other)"]
    index = {label: i for i, label in enumerate(top)}
    m = np.zeros((len(names), len(names)))
    for g, p in zip(gold, pred, strict=True):
        m[index.get(g, len(top)), index.get(p, len(top))] += 1
    m = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(9, 8))
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    short = [n if len(n) <= 32 else n[:30] + "…" for n in map(redact, names)]
    ax.set_xticks(range(len(names)), short, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), short, fontsize=7)
    ax.set(xlabel="predicted", ylabel="gold", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
