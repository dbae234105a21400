"""Calibrating a bundle's duplicate scorer on labelled pairs.

`calibrate_dedup` embeds both sides of every pair with the bundle's duplicate
embedding, computes the pair features and fits the logistic combiner and its
threshold (`model.dedup.fit_scorer`); the result goes into `Bundle.dedup`.

`pairs_from_duplicate_of` turns a complaint set whose rows carry
`duplicate_of` (the project's sample data does) into labelled pairs: every
pair inside a duplicate group is positive, and each complaint's nearest
neighbours within the time window that are not in its group are negatives.
The demo bundle is calibrated this way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from data.load import Complaints
from data.pairs import Pair, PairSide, pair_sides
from model.bundle import Bundle, DedupSpec
from model.dedup import (
    DuplicateFinder,
    connected_groups,
    days_apart,
    fit_scorer,
    fit_word_rarity,
    make_complaint,
    pair_metrics,
    score_features,
)
from model.index import IndexedComplaint


def side_complaint(side: PairSide) -> IndexedComplaint:
    return make_complaint(**asdict(side))


def embed_pairs(
    finder: DuplicateFinder, pairs: Sequence[Pair], *, batch_size: int = 32
) -> tuple[list[IndexedComplaint], list[IndexedComplaint], np.ndarray, np.ndarray]:
    """Both sides as index records and their duplicate embeddings (each distinct text once)."""
    a = [side_complaint(p.a) for p in pairs]
    b = [side_complaint(p.b) for p in pairs]
    texts = list(dict.fromkeys(c.text for c in a + b))
    vectors = finder.embed(texts, batch_size=batch_size)
    row = {t: i for i, t in enumerate(texts)}
    return a, b, vectors[[row[c.text] for c in a]], vectors[[row[c.text] for c in b]]


def pair_feature_matrix(
    finder: DuplicateFinder, pairs: Sequence[Pair], *, batch_size: int = 32
) -> np.ndarray:
    a, b, va, vb = embed_pairs(finder, pairs, batch_size=batch_size)
    cosines = np.einsum("ij,ij->i", va, vb)
    return finder.features(a, b, cosines)


def calibrate_dedup(
    bundle: Bundle,
    pairs: Sequence[Pair],
    *,
    documents: Iterable[str] | None = None,
    batch_size: int = 32,
    seed: int = 0,
) -> DedupSpec:
    """Fit the bundle's duplicate scorer on labelled pairs and store it in `bundle.dedup`.

    The word-rarity table (`bundle.dedup_words`) is counted over `documents`, the
    complaint texts the pairs come from, or else over the pairs' distinct texts.
    """
    labels = np.array([p.label for p in pairs], dtype=object)
    if any(v is None for v in labels):
        raise ValueError("every calibration pair needs a label")
    if documents is None:
        documents = dict.fromkeys(side.text for p in pairs for side in (p.a, p.b))
    words = bundle.dedup_words = fit_word_rarity(documents)
    finder = DuplicateFinder(bundle)
    x = pair_feature_matrix(finder, pairs, batch_size=batch_size)
    spec = fit_scorer(x, labels.astype(int), base=bundle.dedup, seed=seed)
    spec.metrics["pairs"] = len(pairs)
    spec.metrics["word_rarity"] = {"documents": words.documents, "words": len(words.counts)}
    bundle.dedup = spec
    return spec


def evaluate_dedup(
    bundle: Bundle, pairs: Sequence[Pair], *, batch_size: int = 32
) -> dict[str, Any]:
    """Precision, recall and F1 of the bundle's stored scorer and threshold on labelled pairs."""
    finder = DuplicateFinder(bundle)
    x = pair_feature_matrix(finder, pairs, batch_size=batch_size)
    labels = np.array([bool(p.label) for p in pairs])
    scores = score_features(bundle.dedup, x)
    return pair_metrics(scores, labels, bundle.dedup.threshold).to_dict()


def pairs_from_duplicate_of(
    complaints: Complaints,
    vectors: np.ndarray,
    *,
    window_days: int = 45,
    negatives_per_complaint: int = 3,
) -> list[Pair]:
    """Labelled pairs from a `duplicate_of` column (see the module docstring)."""
    ids = complaints.ids()
    row = {id_: i for i, id_ in enumerate(ids)}
    links = [
        (i, row[orig])
        for i, orig in enumerate(complaints.labels("duplicate_of"))
        if orig and orig in row
    ]
    left = np.array([i for i, _ in links], dtype=int)
    right = np.array([j for _, j in links], dtype=int)
    group = np.zeros(len(ids), dtype=int)
    pairs: dict[tuple[int, int], bool] = {}
    for g, rows in enumerate(connected_groups(len(ids), left, right)):
        group[rows] = g
        for x, i in enumerate(rows):
            for j in rows[x + 1 :]:
                pairs[(i, j)] = True
    sides = pair_sides(complaints)
    created = complaints.created_at()
    sims = vectors @ vectors.T
    for i in range(len(ids)):
        taken = 0
        for j in np.argsort(-sims[i], kind="stable"):
            j = int(j)
            if taken >= negatives_per_complaint:
                break
            if group[i] == group[j]:  # itself, or the same duplicate group
                continue
            days = days_apart(created[i], created[j])
            if days is not None and days > window_days:
                continue
            pairs.setdefault((min(i, j), max(i, j)), False)
            taken += 1
    return [
        Pair(f"{ids[i]}|{ids[j]}", sides[ids[i]], sides[ids[j]], label)
        for (i, j), label in sorted(pairs.items())
    ]
