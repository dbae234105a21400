"""Prometheus metrics, one registry per app (tests can build many apps in one process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

_LATENCY_BUCKETS = (
    0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.4, 0.6, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """Every metric the API exports; `render()` gives the Prometheus text format."""

    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series only clutter the text format
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "aduan_http_requests", "HTTP requests by endpoint, method and status.",
            ["endpoint", "method", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "aduan_http_request_seconds", "HTTP request latency by endpoint.",
            ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.predictions = Counter(
            "aduan_predictions", "Top-1 predictions by head and label.",
            ["head", "label"], registry=r,
        )  # fmt: skip
        self.abstentions = Counter(
            "aduan_abstentions", "Predictions where the head abstained, by head.",
            ["head"], registry=r,
        )  # fmt: skip
        self.reviews = Counter(
            "aduan_review_reasons", "Complaints flagged for review, by reason.",
            ["reason"], registry=r,
        )  # fmt: skip
        self.duplicates = Counter(
            "aduan_duplicates_found", "Complaints with at least one duplicate found.", registry=r
        )
        self.batch_size = Histogram(
            "aduan_model_batch_size", "Complaints per model call (micro-batch size).",
            buckets=_BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.model_seconds = Histogram(
            "aduan_model_batch_seconds", "Time of one model call (classify, dedup, index).",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "aduan_queue_complaints", "Complaints waiting for the model.", registry=r
        )
        self.rejected = Counter(
            "aduan_rejected", "Requests turned away, by reason (overloaded, timeout, not_ready).",
            ["reason"], registry=r,
        )  # fmt: skip
        self.index_size = Gauge(
            "aduan_index_complaints", "Complaints in the duplicate index.", registry=r
        )
        self.reloads = Counter(
            "aduan_model_reloads", "Model reloads by result (ok, failed).", ["result"], registry=r
        )
        self.model_info = Gauge(
            "aduan_model_info", "The served model (value 1).", ["version", "name"], registry=r
        )
        self.feedback = Counter("aduan_feedback", "Feedback records stored.", registry=r)

    def set_index_size(self, fn: Callable[[], float]) -> None:
        self.index_size.set_function(fn)

    def set_model(self, version: str, name: str) -> None:
        self.model_info.clear()
        self.model_info.labels(version=version, name=name).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
