"""Deterministic train/dev splits of loaded complaints.

Two ways to hold out a dev set, both returning `(train, dev)` as `Complaints`:

- `time_split`: the latest complaints are the dev set. This is the honest
  estimate for a router that will be trained on the past and run on new
  complaints (topics drift, agencies are renamed), so it is the default
  where `created_at` is known.
- `random_split`: a seeded shuffle, optionally stratified by a label so rare
  agencies appear in dev in proportion. For sets without dates (LAPOR 2017,
  IndoNLU).

Both depend only on the data and the seed: numpy's `Generator` (not Python's
`hash` or `random`), labels processed in sorted order, and rows returned in
their original order within each part, so a split can be reproduced from a
model bundle's record of (source, fingerprint, seed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from data.load import Complaints
from data.schema import CREATED_AT, DataError


def _dev_size(n: int, dev_fraction: float, source: str) -> int:
    """round(n * dev_fraction), with at least one row on each side."""
    if not 0.0 < dev_fraction < 1.0:
        raise DataError(f"dev_fraction must be between 0 and 1 (exclusive), got {dev_fraction}")
    if n < 2:
        raise DataError(f"{source}: {n} row(s) cannot be split into train and dev; need at least 2")
    return min(max(math.floor(n * dev_fraction + 0.5), 1), n - 1)


def time_split(c: Complaints, dev_fraction: float = 0.15) -> tuple[Complaints, Complaints]:
    """Train on the earliest complaints, evaluate on the latest `dev_fraction` of them.

    Rows are ordered by `created_at`, ties broken by id so equal timestamps
    split the same way every time; both parts come back in that time order.
    Every row needs a `created_at`: a DataError names how many lack one and
    points at `random_split` (`--split random`) for undated sources.
    """
    n_dev = _dev_size(len(c), dev_fraction, c.source)
    stamps = c.created_at()
    missing = [i for i, s in enumerate(stamps) if s is None]
    if missing:
        ids = c.ids()
        first = ", ".join(ids[i] for i in missing[:5])
        raise DataError(
            f"{c.source}: {len(missing)} of {len(c)} rows have no {CREATED_AT} "
            f"(first ids: {first}), so they cannot be split by time; "
            f"use the random split instead (random_split, --split random)"
        )
    parsed = [datetime.fromisoformat(s) for s in stamps if s is not None]
    aware = {p.tzinfo is not None for p in parsed}
    if len(aware) > 1:
        raise DataError(
            f"{c.source}: {CREATED_AT} mixes times with and without a UTC offset, "
            f"so they cannot be ordered; give all of them an offset or none"
        )
    ids = c.ids()
    order = sorted(range(len(c)), key=lambda i: (parsed[i], ids[i]))
    n_train = len(c) - n_dev
    return c.select(order[:n_train]), c.select(order[n_train:])


def random_split(
    c: Complaints,
    dev_fraction: float = 0.15,
    seed: int = 0,
    stratify_by: str | None = None,
) -> tuple[Complaints, Complaints]:
    """A seeded random split; stratified by a label column when `stratify_by` is given.

    Unstratified: `round(n * dev_fraction)` rows, chosen by a seeded
    permutation, go to dev. Stratified: each label's rows are shuffled and
    split on their own, so label proportions in dev follow the whole set.
    Dev gets `round(n_eligible * dev_fraction)` rows shared among labels by
    largest remainder (ties broken by the seeded generator), where
    `n_eligible` counts rows of labels with two or more examples. A label
    with a single example always goes to train (a dev example of a label the
    model never saw only measures that it was never seen), and every label
    keeps at least one example in train. Rows without the label (None) form
    a stratum of their own. Both parts keep the original row order.
    """
    n_dev = _dev_size(len(c), dev_fraction, c.source)
    rng = np.random.default_rng(seed)
    if stratify_by is None:
        dev = sorted(int(i) for i in rng.permutation(len(c))[:n_dev])
    else:
        dev = _stratified_dev(c.labels(stratify_by), dev_fraction, rng)
    dev_set = set(dev)
    train = [i for i in range(len(c)) if i not in dev_set]
    if not train or not dev:
        raise DataError(
            f"{c.source}: stratifying by '{stratify_by}' leaves "
            f"{'train' if not train else 'dev'} empty (too few examples per label); "
            f"use an unstratified split or more data"
        )
    return c.select(train), c.select(dev)


def _stratified_dev(
    labels: Sequence[str | None], dev_fraction: float, rng: np.random.Generator
) -> list[int]:
    """Indices of dev rows, allocated per label by largest remainder."""
    groups: dict[str | None, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    # sorted, so the result never depends on first-seen order or hash seeds
    keys = sorted(groups, key=lambda k: (k is None, k or ""))
    eligible = [k for k in keys if len(groups[k]) >= 2]
    quotas = np.array([len(groups[k]) * dev_fraction for k in eligible], dtype=float)
    caps = np.array([len(groups[k]) - 1 for k in eligible], dtype=int)
    alloc = np.minimum(np.floor(quotas).astype(int), caps)
    target = math.floor(sum(len(groups[k]) for k in eligible) * dev_fraction + 0.5)
    remaining = target - int(alloc.sum())
    if remaining > 0:
        tiebreak = rng.random(len(eligible))
        # largest remainder first; the seeded tiebreak orders equal remainders
        for j in np.lexsort((tiebreak, -(quotas - np.floor(quotas)))):
            if remaining == 0:
                break
            if alloc[j] < caps[j]:
                alloc[j] += 1
                remaining -= 1
    dev: list[int] = []
    for k, n_k in zip(eligible, alloc, strict=True):
        members = groups[k]
        chosen = rng.permutation(len(members))[: int(n_k)]
        dev.extend(members[int(j)] for j in chosen)
    return sorted(dev)
