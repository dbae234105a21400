"""Which rows a training run learns from and which it is tuned on (dev).

Shared by every trainer and by the evaluator, which must rebuild exactly the
same rows to train its peer on them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol

import numpy as np

from data.load import Complaints, load_complaints
from data.schema import DataError
from data.splits import random_split, time_split


class SplitSettings(Protocol):
    labels: list[str]
    split: str
    dev_fraction: float
    seed: int


def split_data(data: Complaints, config: SplitSettings) -> tuple[Complaints, Complaints]:
    """The train/dev split a training config asks for (stratified by its first label)."""
    if config.split == "time":
        return time_split(data, dev_fraction=config.dev_fraction)
    if config.split == "random":
        return random_split(
            data, dev_fraction=config.dev_fraction, seed=config.seed, stratify_by=config.labels[0]
        )
    raise ValueError(f"unknown split {config.split!r}: use 'random' or 'time'")


def load_training_data(load: dict[str, Any], config: Any) -> tuple[Complaints, Complaints]:
    """Train and dev rows as `aduan train` reads them.

    `load` holds the source (and split, text column) and optionally a separate
    dev source; without one, dev is split off the source as `config` says
    (its labels, split, dev_fraction and seed).
    """
    data = load_complaints(
        load["source"],
        split=load.get("split"),
        text_column=load.get("text_column"),
        label_columns=config.labels,
    )
    if load.get("dev_source"):
        dev = load_complaints(
            load["dev_source"],
            split=load.get("dev_split"),
            text_column=load.get("text_column"),
            label_columns=config.labels,
        )
        return data, dev
    return split_data(data, config)


def kept_labels(
    train: Complaints, heads: list[str], min_count: int
) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
    """Per head, the labels it learns (>= min_count training rows) and those set aside.

    Raises DataError (a user error) when a head would have fewer than two labels to learn.
    """
    kept, rare = {}, {}
    for head in heads:
        counts = Counter(v for v in train.labels(head) if v is not None)
        kept[head] = sorted(label for label, n in counts.items() if n >= min_count)
        rare[head] = {label: n for label, n in sorted(counts.items()) if n < min_count}
        if len(kept[head]) < 2:
            raise DataError(
                f"label {head!r} has {len(kept[head])} label(s) with at least {min_count} "
                "training rows; a classifier needs two or more"
            )
    return kept, rare


def label_indices(values: list[str | None], labels: list[str]) -> np.ndarray:
    """Index of each row's label in `labels`; -1 for unlabelled rows and unknown labels."""
    pos = {label: i for i, label in enumerate(labels)}
    return np.array([pos.get(v, -1) if v is not None else -1 for v in values], dtype=np.int64)
