"""Micro-batching: concurrent requests share model calls; overload answers 503 + Retry-After."""

# Fixtures are imported from tests/serving_fixtures.py; test arguments re-bind them.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.batcher import Job, MicroBatcher, Overloaded, QueueTimeout
from tests.serving_fixtures import (
    TEXT_JALAN,
    TEXT_LAMPU,
    AppFactory,
    bundle_dir,  # noqa: F401
    make_app,  # noqa: F401
)


def _slow(app: Any, seconds: float) -> None:
    """Make every model call take at least `seconds` (so requests pile up meanwhile)."""
    service = app.state.service
    real = service.engine.process

    def process(jobs: list[Job]) -> list[Any]:
        time.sleep(seconds)
        return real(jobs)

    service.batcher.process = process


def _fire(client: TestClient, n: int, body: dict[str, Any] | None = None) -> list[Any]:
    with ThreadPoolExecutor(n) as pool:
        futures = [
            pool.submit(client.post, "/v1/route", json=body or {"id": f"Q-{i}", "text": TEXT_LAMPU})
            for i in range(n)
        ]
        return [f.result() for f in futures]


@pytest.mark.parametrize("wait_ms", [0, 5])  # 0, the default: batches form while the model runs
def test_concurrent_requests_share_model_calls(make_app: AppFactory, wait_ms: float) -> None:
    app = make_app(batch_wait_ms=wait_ms, micro_batch=32)
    with TestClient(app) as c:
        _slow(app, 0.05)
        engine = app.state.service.engine
        before = engine.model_calls
        responses = _fire(c, 16)
        calls = engine.model_calls - before
        assert [r.status_code for r in responses] == [200] * 16
        assert [r.json()["id"] for r in responses] == [f"Q-{i}" for i in range(16)]
        assert calls < 16 / 2, f"{calls} model calls for 16 concurrent requests"
        sizes = [r.json()["timing_ms"]["batch_size"] for r in responses]
        assert max(sizes) > 1
        assert "aduan_model_batch_size_count" in c.get("/metrics").text


def test_batches_are_bounded(make_app: AppFactory) -> None:
    app = make_app(batch_wait_ms=20, micro_batch=4)
    with TestClient(app) as c:
        _slow(app, 0.05)
        responses = _fire(c, 12)
    assert all(r.status_code == 200 for r in responses)
    assert max(r.json()["timing_ms"]["batch_size"] for r in responses) <= 4


def test_overload_is_refused_with_retry_after(make_app: AppFactory) -> None:
    app = make_app(max_queue=2, micro_batch=1, batch_wait_ms=0)
    with TestClient(app) as c:
        _slow(app, 0.2)
        responses = _fire(c, 10)
        codes = sorted(r.status_code for r in responses)
        refused = [r for r in responses if r.status_code == 503]
        assert refused and 200 in codes and set(codes) <= {200, 503}
        for r in refused:
            assert r.json()["error"]["code"] == "overloaded"
            assert int(r.headers["Retry-After"]) >= 1
        assert 'aduan_rejected_total{reason="overloaded"}' in c.get("/metrics").text
        # once the queue drains, requests succeed again
        assert c.post("/v1/route", json={"text": TEXT_JALAN}).status_code == 200


def test_requests_waiting_too_long_get_503(make_app: AppFactory) -> None:
    app = make_app(request_timeout_s=0.15, micro_batch=1, batch_wait_ms=0)
    with TestClient(app) as c:
        _slow(app, 0.5)
        responses = _fire(c, 3)
    timed_out = [r for r in responses if r.status_code == 503]
    assert timed_out and all(r.json()["error"]["code"] == "timeout" for r in timed_out)
    assert all(r.headers["Retry-After"] for r in timed_out)
    assert any(r.status_code == 200 for r in responses)


def test_batcher_groups_jobs_and_isolates_errors() -> None:
    calls: list[list[Any]] = []

    def process(jobs: list[Job]) -> list[Any]:
        calls.append([j.payload for j in jobs])
        time.sleep(0.02)
        return [ValueError("bad") if j.payload == "bad" else j.payload.upper() for j in jobs]

    async def main() -> None:
        b = MicroBatcher(process, max_batch=8, wait_s=0.005, max_queue=100, timeout_s=5)
        b.start()
        try:
            first = asyncio.create_task(b.submit("a"))
            await asyncio.sleep(0.005)  # "a" is being processed; these queue meanwhile
            rest = [asyncio.create_task(b.submit(x)) for x in ("b", "bad", "c", "d")]
            assert await first == "A"
            results = await asyncio.gather(*rest, return_exceptions=True)
            assert results[0] == "B" and results[2:] == ["C", "D"]
            assert isinstance(results[1], ValueError)
            order = await b.call(lambda: "exclusive")
            assert order == "exclusive"
        finally:
            await b.stop()

    asyncio.run(main())
    assert calls[0] == ["a"] and calls[1] == ["b", "bad", "c", "d"]


def test_batcher_refuses_beyond_the_queue_bound() -> None:
    def process(jobs: list[Job]) -> list[Any]:
        time.sleep(0.1)
        return [None for _ in jobs]

    async def main() -> None:
        b = MicroBatcher(process, max_batch=1, wait_s=0, max_queue=2, timeout_s=0.05)
        b.start()
        try:
            tasks = [asyncio.create_task(b.submit(i)) for i in range(5)]
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await b.stop()
        assert any(isinstance(r, Overloaded) for r in results)
        assert any(isinstance(r, QueueTimeout) for r in results)
        assert results[0] is None

    asyncio.run(main())


@pytest.mark.parametrize("n", [1, 40])
def test_batch_endpoint_larger_than_a_micro_batch(make_app: AppFactory, n: int) -> None:
    with TestClient(make_app(micro_batch=8)) as c:
        items = [{"id": f"L-{i}", "text": TEXT_JALAN} for i in range(n)]
        r = c.post("/v1/route/batch", json={"items": items})
    assert r.status_code == 200
    assert [o["id"] for o in r.json()["items"]] == [f"L-{i}" for i in range(n)]


def test_a_batch_that_fails_is_retried_job_by_job() -> None:
    calls: list[list[Any]] = []

    def process(jobs: list[Job]) -> list[Any]:
        calls.append([j.payload for j in jobs])
        time.sleep(0.02)
        if "bad" in calls[-1]:
            raise RuntimeError("one bad job")
        return [j.payload.upper() for j in jobs]

    async def main() -> list[Any]:
        b = MicroBatcher(process, max_batch=8, wait_s=0.005, max_queue=100, timeout_s=5)
        b.start()
        try:
            first = asyncio.create_task(b.submit("a"))
            await asyncio.sleep(0.005)
            rest = [asyncio.create_task(b.submit(x)) for x in ("b", "bad", "c")]
            return [await first, *await asyncio.gather(*rest, return_exceptions=True)]
        finally:
            await b.stop()

    results = asyncio.run(main())
    assert results[:2] == ["A", "B"] and results[3] == "C"
    assert isinstance(results[2], RuntimeError)
    assert calls[1] == ["b", "bad", "c"] and calls[2:] == [["b"], ["bad"], ["c"]]
