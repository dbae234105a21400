"""The model side of the API: the loaded bundle and index, and what one micro-batch does.

`Engine.process` runs on the single model worker thread (see
`serving.batcher`). For one batch it calls `model.predict.predict` once for
all complaints to classify (the one prediction path), reuses those embeddings
for duplicates when the bundle shares them (`DuplicateFinder.embed`), searches
the index (`DuplicateFinder.find`), scores complaints registered earlier in the
same batch as candidates too (so two copies sent together are still caught),
and writes the registered ones to the index in one `add`.

The served model is one immutable `Served` value (bundle, finder, index,
path). A batch reads it once at its start, so a reload that swaps it never
changes a batch midway: requests in flight finish on the old bundle and the
next batch uses the new one.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.bundle import Bundle
from model.dedup import DuplicateFinder, DuplicateMatch, make_complaint
from model.index import JAKARTA, ComplaintIndex, IndexedComplaint
from model.predict import HeadResult, predict
from serving.batcher import Job
from serving.metrics import Metrics

log = logging.getLogger("aduan.serving")

#: The bundle heads mapped to the response's named fields.
NAMED_HEADS = {"topic": "categories", "agency": "agencies"}


@dataclass(frozen=True)
class Served:
    """What serves requests: swapped as a whole by a reload."""

    bundle: Bundle
    finder: DuplicateFinder
    index: ComplaintIndex
    path: Path
    loaded_at: str

    @property
    def version(self) -> str:
        return self.bundle.version or "unsaved"


@dataclass(frozen=True)
class Item:
    """One complaint in a job: to route (classify + duplicates), or only to register."""

    text: str
    id: str | None = None
    created_at: str | None = None
    location: dict[str, str | None] = field(default_factory=dict)
    top_k: int = 3
    register: bool = False
    route: bool = True


def iso_time(value: datetime | None) -> str:
    """ISO 8601 of a request time; naive stays naive (WIB by convention); None means now."""
    if value is None:
        return datetime.now(JAKARTA).isoformat(timespec="seconds")
    return value.isoformat()


def review_reasons(bundle: Bundle, heads: dict[str, HeadResult], duplicates: bool) -> list[str]:
    """The closed list of `schemas.ReviewReason` values that apply, in a fixed order."""
    reasons = []
    for head in NAMED_HEADS:
        spec = bundle.head_specs.get(head)
        if spec is None:
            reasons.append(f"{head}_missing")
        elif not spec.trained:
            reasons.append(f"{head}_untrained")
        elif heads[head].abstain:
            reasons.append(f"{head}_uncertain")
    if duplicates:
        reasons.append("duplicate_found")
    return reasons


def torch_threads(bundle: Bundle, threads: int) -> int:
    """Torch's threads for serving `bundle` with `threads` for the encoder: all of them
    when torch runs the encoder, one when ONNX Runtime does (its own pool has them).
    Torch then only pools and runs the heads, and a second OpenMP thread, waking
    while ORT's threads still spin after a pass, stalled those small ops (mean
    pooling's p90 went from 0.4 to 10 ms)."""
    return 1 if bundle.encoder.onnx is not None else threads


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _head_dict(result: HeadResult, k: int) -> dict[str, Any]:
    out = result.to_dict()
    out["top"] = out["top"][:k]
    return out


class Engine:
    """Runs micro-batches against the served model; see the module docstring."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        encode_batch: int = 4,
        duplicates_k: int = 5,
        bf16: bool = False,
        threads: int = 1,
    ) -> None:
        self.metrics = metrics
        self.bf16 = bf16
        self.threads = threads  # the encoder's CPU threads (torch's, or ONNX Runtime's)
        self.encode_batch = encode_batch
        self.duplicates_k = duplicates_k
        self.served: Served | None = None
        self.model_calls = 0  # predict() calls (tests check that requests share them)
        # While a re-embedding for a reload runs, ids written meanwhile (worker thread only).
        self.journal: set[str] | None = None

    # ------------------------------------------------------------------ batches
    def process(self, jobs: list[Job]) -> list[Any]:
        """Results for the jobs of one micro-batch (worker thread): one list per job."""
        served = self.served
        if served is None:
            raise RuntimeError("no model is loaded")
        items: list[Item] = [it for job in jobs for it in job.payload]
        self.fit_torch_threads(served.bundle)
        precision = (
            torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        )
        with precision:
            timing, outputs = self._run(served, items)
        results: list[Any] = []
        pos = 0
        now = time.perf_counter()
        for job in jobs:
            queue_ms = _ms(job.started - job.enqueued)
            chunk = outputs[pos : pos + len(job.payload)]
            pos += len(job.payload)
            for out in chunk:
                if "timing_ms" in out:
                    out["timing_ms"] = {"queue": queue_ms, **timing, "batch_size": len(items)}
            results.append(chunk)
        self.metrics.model_seconds.observe(now - min(j.started for j in jobs))
        self.metrics.batch_size.observe(len(items))
        return results

    def fit_torch_threads(self, bundle: Bundle) -> None:
        """Set `torch_threads` on the worker thread: once a thread has run a parallel
        op, torch's thread count is that thread's own."""
        want = torch_threads(bundle, self.threads)
        if torch.get_num_threads() != want:
            torch.set_num_threads(want)

    def _run(
        self, served: Served, items: Sequence[Item]
    ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        bundle, finder, index = served.bundle, served.finder, served.index
        complaints = [
            make_complaint(it.text, id=it.id or "", created_at=it.created_at, **it.location)
            for it in items
        ]
        routed = [i for i, it in enumerate(items) if it.route]
        timing: dict[str, float] = {}
        vecs = np.zeros((len(items), finder.dim), dtype=np.float32)
        preds = []
        t0 = time.perf_counter()
        if routed:
            k_max = max(items[i].top_k for i in routed)
            preds = predict(
                bundle,
                [items[i].text for i in routed],
                top_k=k_max,
                batch_size=self.encode_batch,
                with_embeddings=True,
                locations=[items[i].location for i in routed],
            )
            self.model_calls += 1
            emb = np.stack([p.embedding for p in preds if p.embedding is not None])
            t1 = time.perf_counter()
            timing["classify"] = _ms(t1 - t0)
            vecs[routed] = finder.embed(
                [complaints[i].text for i in routed],
                classifier_embeddings=emb,
                batch_size=self.encode_batch,
            )
            t0 = time.perf_counter()
            timing["dedup_embed"] = _ms(t0 - t1)
        only_register = [i for i, it in enumerate(items) if not it.route]
        if only_register:
            vecs[only_register] = finder.embed(
                [complaints[i].text for i in only_register], batch_size=self.encode_batch
            )
            timing["register_embed"] = _ms(time.perf_counter() - t0)
            t0 = time.perf_counter()

        matches: dict[int, list[DuplicateMatch]] = {}
        if routed:
            found = finder.find(
                index, [complaints[i] for i in routed], vecs[routed], k=self.duplicates_k
            )
            matches = dict(zip(routed, found, strict=True))
            self._within_batch(served, items, complaints, vecs, matches)
            t1 = time.perf_counter()
            timing["duplicates"] = _ms(t1 - t0)
            t0 = t1

        registered = self._register(index, items, complaints, vecs)
        if registered:
            timing["register"] = _ms(time.perf_counter() - t0)

        outputs: list[dict[str, Any]] = []
        by_item = dict(zip(routed, preds, strict=True))
        for i, it in enumerate(items):
            if not it.route:
                outputs.append({"id": it.id, "new": registered.get(i, False)})
                continue
            outputs.append(
                self._route_output(served, it, by_item[i].heads, matches[i], registered.get(i))
            )
        return timing, outputs

    def _within_batch(
        self,
        served: Served,
        items: Sequence[Item],
        complaints: Sequence[IndexedComplaint],
        vecs: np.ndarray,
        matches: dict[int, list[DuplicateMatch]],
    ) -> None:
        """Add complaints registered earlier in this batch as duplicate candidates.

        The index search cannot see them yet (they are written after the batch
        is scored), so they are scored here with the bundle's pair scorer under
        the same rules as index candidates: within the time window, or an exact
        re-submission at any time.
        """
        finder = served.finder
        spec = finder.spec
        earlier: list[int] = []
        seen_ids: set[str] = set()
        for i, it in enumerate(items):
            c = complaints[i]
            if it.route and earlier:
                have = {m.id for m in matches[i]}
                cands = [j for j in earlier if complaints[j].id not in have | {c.id}]
                cands = [j for j in cands if finder.in_window(c, complaints[j])]
                if cands:
                    scores = finder.score_pairs(
                        [c] * len(cands), [complaints[j] for j in cands], vecs[[i] * len(cands)],
                        vecs[cands],
                    )  # fmt: skip
                    extra = [
                        DuplicateMatch(
                            id=complaints[j].id,
                            score=float(s),
                            similarity=float(vecs[i] @ vecs[j]),
                            created_at=complaints[j].created_at,
                            snippet=complaints[j].snippet,
                            exact=bool(c.text_hash) and c.text_hash == complaints[j].text_hash,
                        )
                        for j, s in zip(cands, scores, strict=True)
                        if s >= spec.threshold
                    ]
                    if extra:
                        merged = sorted(matches[i] + extra, key=lambda m: -m.score)
                        matches[i] = merged[: self.duplicates_k]
            if it.register and c.id and c.id not in seen_ids:
                seen_ids.add(c.id)
                earlier.append(i)

    def _register(
        self,
        index: ComplaintIndex,
        items: Sequence[Item],
        complaints: Sequence[IndexedComplaint],
        vecs: np.ndarray,
    ) -> dict[int, bool]:
        """Write the batch's registrations in one `add`; item -> whether its id was new.

        Registering is idempotent by id: an id already in the index keeps its stored
        record (a retry without `created_at` or location must not overwrite them),
        and the same id twice in one batch keeps the first. To replace a record,
        delete it first.
        """
        first: dict[str, int] = {}
        out: dict[int, bool] = {}
        for i, it in enumerate(items):
            if it.register and it.id:
                if it.id in first:
                    out[i] = False
                else:
                    first[it.id] = i
        if not first:
            return out
        existing = index.get(list(first))
        new = {cid: i for cid, i in first.items() if cid not in existing}
        if new:
            rows = list(new.values())
            index.add([complaints[i] for i in rows], vecs[rows])
            if self.journal is not None:
                self.journal.update(new)
        for cid, i in first.items():
            out[i] = cid in new
        return out

    def _route_output(
        self,
        served: Served,
        item: Item,
        heads: dict[str, HeadResult],
        duplicates: list[DuplicateMatch],
        registered: bool | None,
    ) -> dict[str, Any]:
        bundle, m = served.bundle, self.metrics
        k = item.top_k
        reasons = review_reasons(bundle, heads, bool(duplicates))
        for name, result in heads.items():
            if result.top:
                m.predictions.labels(head=name, label=result.top[0].label).inc()
            if result.abstain:
                m.abstentions.labels(head=name).inc()
        for reason in reasons:
            m.reviews.labels(reason=reason).inc()
        if duplicates:
            m.duplicates.inc()
        out: dict[str, Any] = {
            "id": item.id,
            "model_version": served.version,
            "needs_review": bool(reasons),
            "review_reasons": reasons,
            "duplicates": [d.to_dict() for d in duplicates],
            "heads": {name: _head_dict(r, k) for name, r in heads.items()},
            "registered": registered,
            "timing_ms": {},
        }
        for head, key in NAMED_HEADS.items():
            out[key] = out["heads"][head]["top"] if head in heads else []
        return out

    # -------------------------------------------------------------- index ops
    def remove(self, complaint_id: str) -> int:
        """Remove one complaint from the index (worker thread); how many were removed."""
        served = self.served
        if served is None:
            raise RuntimeError("no model is loaded")
        n = served.index.remove([complaint_id])
        if self.journal is not None:
            self.journal.add(complaint_id)
        return n
