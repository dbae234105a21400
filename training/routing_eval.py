"""Routing metrics for `aduan evaluate`: exact office, type and region, by office level.

Gold labels are office names; the directory gives each its type, level and
region. "Local" offices are those of a kelurahan/desa or a kecamatan — the
ones a flat classifier over office names cannot learn — and are reported
apart from the rest, for aduan and for the flat peer alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from data.directory import Directory
from model.predict import HeadResult
from model.regions import is_within

LOCAL_LEVELS = ("kelurahan", "kecamatan")
#: Offices kept per complaint when scoring a routed head as a classifier over offices.
ROUTED_TOP = 10


def office_probabilities(
    results: Sequence[HeadResult], offices: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """[n, offices] scores of the routed head's top offices (0 elsewhere), and abstain flags."""
    pos = {name: i for i, name in enumerate(offices)}
    probs = np.zeros((len(results), len(offices)), dtype=np.float64)
    for i, r in enumerate(results):
        for s in r.top:
            probs[i, pos[s.label]] = s.score
    return probs, np.array([r.abstain for r in results], dtype=bool)


def _share(hits: Sequence[bool]) -> float | None:
    return float(np.mean(hits)) if len(hits) else None


def routing_metrics(
    predicted: Sequence[str | None],
    gold: Sequence[str],
    directory: Directory,
    *,
    predicted_types: Sequence[str | None] | None = None,
    regions: Sequence[str | None] | None = None,
    region_sources: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Exact-office and type accuracy overall and for local vs other offices, plus regions.

    Args:
        predicted: the top office name per row (None: no answer).
        gold: the gold office name per row.
        directory: gives types, levels and regions of gold (and predicted) offices.
        predicted_types: the type per row; by default the predicted office's type (the
            type the answer routes to).
        regions: the resolved region code per row (aduan only).
        region_sources: which evidence decided each region (aduan only).
    """

    def type_of(name: str | None) -> str | None:
        office = directory.lookup(name) if name else None
        return office.type if office else None

    gold_offices = [directory.lookup(g) for g in gold]
    pred_types = (
        list(predicted_types) if predicted_types is not None else [type_of(p) for p in predicted]
    )
    exact = [
        p is not None and g is not None and directory.lookup(p) == g
        for p, g in zip(predicted, gold_offices, strict=True)
    ]
    typed = [
        (t is not None and g is not None and t == g.type) if g is not None else None
        for t, g in zip(pred_types, gold_offices, strict=True)
    ]
    local = [g is not None and g.level in LOCAL_LEVELS for g in gold_offices]

    def slice_(mask: Sequence[bool]) -> dict[str, Any]:
        rows = [i for i, m in enumerate(mask) if m]
        return {
            "n": len(rows),
            "exact_office_accuracy": _share([exact[i] for i in rows]),
            "type_accuracy": _share([bool(typed[i]) for i in rows if typed[i] is not None]),
        }

    out: dict[str, Any] = {
        "n": len(gold),
        "gold_not_in_directory": sum(g is None for g in gold_offices),
        **{k: v for k, v in slice_([True] * len(gold)).items() if k != "n"},
        "local_offices": slice_(local),
        "other_offices": slice_([not m for m in local]),
    }
    if regions is not None:
        with_region = [
            (r, g.region_code)
            for r, g in zip(regions, gold_offices, strict=True)
            if g is not None and g.region_code
        ]
        out["region"] = {
            "resolved": _share([r is not None for r in regions]),
            "n_gold_with_region": len(with_region),
            "correct": _share([r is not None and is_within(r, g) for r, g in with_region]),
            "sources": dict(Counter(region_sources or [])),
        }
    return out
