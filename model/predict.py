"""The one prediction path: the CLI, the evaluator and the API all call `predict`.

Texts are normalised as the bundle says, embedded once by the encoder, and
every head reads that embedding. Scores are calibrated probabilities (softmax
with the head's fitted temperature); a head abstains when its top probability
is under its threshold, and always when it was never trained.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from data.text import normalize_text
from model.bundle import Bundle
from model.lexical import mix


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float
    # For a routed head's offices: id, type, level, region_code, region, type_score, why.
    details: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": round(self.score, 6), **(self.details or {})}


@dataclass(frozen=True)
class HeadResult:
    top: list[LabelScore]
    abstain: bool
    margin: float  # top-1 minus top-2 probability: small means the head hesitates
    # Routed heads only: the predicted office types and the region the offices are for.
    types: list[LabelScore] | None = None
    region: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "top": [s.to_dict() for s in self.top],
            "abstain": self.abstain,
            "margin": round(self.margin, 6),
        }
        if self.types is not None:
            out["types"] = [s.to_dict() for s in self.types]
            out["region"] = self.region
        return out


@dataclass(frozen=True)
class Prediction:
    heads: dict[str, HeadResult]
    embedding: np.ndarray | None = None  # L2-normalised, when asked for

    def to_dict(self) -> dict[str, Any]:
        return {"heads": {name: r.to_dict() for name, r in self.heads.items()}}


def preprocess(bundle: Bundle, texts: Sequence[str]) -> list[str]:
    """The bundle's text preprocessing, shared by training and prediction."""
    if bundle.preprocessing.normalize_text:
        return [normalize_text(t) for t in texts]
    return list(texts)


def calibrated(logits: torch.Tensor | np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T): the one place scores become probabilities (serving and dev)."""
    z = torch.as_tensor(logits).float() / max(temperature, 1e-6)
    return torch.softmax(z, dim=-1).numpy()


def head_probabilities(bundle: Bundle, embeddings: torch.Tensor) -> dict[str, np.ndarray]:
    """Calibrated probabilities per head for a batch of embeddings."""
    with torch.inference_mode():
        logits = bundle.heads(embeddings)
    return {
        name: calibrated(logits[name], spec.temperature) for name, spec in bundle.head_specs.items()
    }


def with_lexical(
    bundle: Bundle, clean: Sequence[str], probs: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """`probs` with each head that has a lexical mix combined with the bundle's lexical
    model (`model.lexical`); `clean` are the normalised texts. Other heads unchanged."""
    lexical = bundle.lexical
    if lexical is None or not len(clean):
        return probs
    mixes = {
        h: spec.lexical_mix for h, spec in bundle.head_specs.items()
        if spec.lexical_mix is not None and h in lexical.heads
    }  # fmt: skip
    if not mixes:
        return probs
    x = lexical.features(clean)
    out = dict(probs)
    for h, weights in mixes.items():
        out[h] = mix(np.log(np.maximum(probs[h], 1e-30)), lexical.log_proba(h, x), weights)
    return out


def embedded_probabilities(
    bundle: Bundle, clean: Sequence[str], embeddings: np.ndarray
) -> dict[str, np.ndarray]:
    """Calibrated probabilities per head [n, k] of normalised texts `clean` whose
    L2-normalised embeddings [n, dim] are known: the encoder's heads, combined with
    the lexical model where the bundle has one, scaled by the share of answers the
    head can name (`HeadSpec.unlisted`)."""
    probs = with_lexical(bundle, clean, head_probabilities(bundle, torch.from_numpy(embeddings)))
    return {h: p * (1.0 - bundle.head_specs[h].unlisted) for h, p in probs.items()}


def predict_proba(
    bundle: Bundle, texts: Sequence[str], *, batch_size: int = 32
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """L2-normalised embeddings [n, dim] and calibrated probabilities per head [n, k]
    (`embedded_probabilities`)."""
    clean = preprocess(bundle, texts)
    embeddings = bundle.encoder.embed(clean, batch_size=batch_size)
    return embeddings, embedded_probabilities(bundle, clean, embeddings)


def abstains(bundle: Bundle, head: str, top_prob: np.ndarray) -> np.ndarray:
    """Whether the head abstains for each top probability (always, if never trained)."""
    spec = bundle.head_specs[head]
    if not spec.trained:
        return np.ones(len(top_prob), dtype=bool)
    if spec.abstain_threshold is None:
        return np.zeros(len(top_prob), dtype=bool)
    return top_prob < spec.abstain_threshold


def route_head(
    bundle: Bundle,
    p: np.ndarray,
    texts: Sequence[str],
    locations: Sequence[Mapping[str, str | None] | None],
    *,
    top_k: int,
    embeddings: np.ndarray | None = None,
) -> list[HeadResult]:
    """The routed head's answers: concrete offices for its type probabilities [n, types].

    `embeddings` (the texts' classifier embeddings) let the router's exemplars
    vote on the type and on offices the region cannot tell apart.
    """
    router, name = bundle.router, bundle.routing.head
    assert router is not None
    spec = bundle.head_specs[name]
    results = []
    for i, text in enumerate(texts):
        region = router.resolve(text, locations[i])
        embedding = None if embeddings is None else embeddings[i]
        scores = [(t, float(v)) for t, v in zip(spec.labels, p[i], strict=True)]
        voted = router.vote_types(scores, embedding)
        type_probs = sorted(voted, key=lambda tv: -tv[1])  # stable: ties keep label order
        offices = router.route(type_probs, region, top_k=max(top_k, 2), embedding=embedding)
        top = [LabelScore(o.office.name, o.score, o.details(router.table)) for o in offices[:top_k]]
        top1 = offices[0].score if offices else 0.0
        top2 = offices[1].score if len(offices) > 1 else 0.0
        results.append(
            HeadResult(
                top,
                bool(abstains(bundle, name, np.array([top1]))[0]),
                top1 - top2,
                types=[LabelScore(t, s) for t, s in type_probs[:top_k]],
                region=region.to_dict(),
            )
        )
    return results


def predict(
    bundle: Bundle,
    texts: Sequence[str],
    *,
    top_k: int = 3,
    batch_size: int = 32,
    with_embeddings: bool = False,
    locations: Sequence[Mapping[str, str | None] | None] | None = None,
) -> list[Prediction]:
    """Per-head top-k labels with calibrated probabilities, abstain flag and margin.

    Args:
        bundle: a loaded (or freshly built) model bundle.
        texts: raw complaint texts; normalised here as the bundle prescribes.
        top_k: labels to return per head (capped at the head's label count).
        batch_size: encoder batch size.
        with_embeddings: also return the L2-normalised embedding per text.
        locations: per text, the intake system's location fields (`region_code`,
            `city`, `kecamatan`, `kelurahan`, `address`; any may be missing). A
            routed head (`bundle.routing`) uses them, or place names in the
            text, to pick the concrete office.
    """
    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    if locations is not None and len(locations) != len(texts):
        raise ValueError("locations must have one entry per text")
    embeddings, probs = predict_proba(bundle, texts, batch_size=batch_size)
    results: list[dict[str, HeadResult]] = [{} for _ in texts]
    for name, p in probs.items():
        if name == bundle.routing.head and bundle.router is not None:
            where = locations or [None] * len(texts)
            routed = route_head(bundle, p, texts, where, top_k=top_k, embeddings=embeddings)
            for i, r in enumerate(routed):
                results[i][name] = r
            continue
        labels = bundle.head_specs[name].labels
        order = np.argsort(-p, axis=1, kind="stable")[:, : max(top_k, 2)]
        top1 = p[np.arange(len(p)), order[:, 0]]
        top2 = p[np.arange(len(p)), order[:, 1]] if p.shape[1] > 1 else np.zeros(len(p))
        abstain = abstains(bundle, name, top1)
        for i, row in enumerate(order):
            top = [LabelScore(labels[j], float(p[i, j])) for j in row[:top_k]]
            results[i][name] = HeadResult(top, bool(abstain[i]), float(top1[i] - top2[i]))
    return [
        Prediction(heads=r, embedding=embeddings[i] if with_embeddings else None)
        for i, r in enumerate(results)
    ]
