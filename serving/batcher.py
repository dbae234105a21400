"""Micro-batching: concurrent requests share one model call, on one worker thread.

Requests put a job on a bounded queue and await its future. One asyncio task
takes the oldest job and, for up to `wait_s` (ADUAN_BATCH_WAIT_MS), gathers
more batchable jobs until `max_batch` complaints (ADUAN_MICRO_BATCH) are
collected, then hands the batch to the single worker thread and waits for it.
While the worker runs, new requests queue up, so the next batch is larger:
under load the batch size grows by itself and the wait costs nothing; a lone
request pays at most `wait_s`.

The queue is bounded in complaints (ADUAN_MAX_QUEUE): a job that would
overflow it is refused at once (`Overloaded`, answered 503 with Retry-After)
instead of waiting without end, and a job that waits longer than `timeout_s`
is dropped (`QueueTimeout`, 503). A job whose caller went away (timeout or
disconnect) before the worker took it is skipped. When a batch fails as a
whole, its jobs are retried one by one, so one bad job cannot fail the
others. Jobs that must not share a model call (index removal, the index swap
after a reload) are "exclusive":
they run alone, in queue order, on the same worker thread, so every index
write happens on one thread.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("aduan.serving.batcher")


class Overloaded(Exception):
    """The queue is full; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many requests are waiting for the model")
        self.retry_after = retry_after


class QueueTimeout(Exception):
    """The job waited longer than the request timeout."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("the request waited too long for the model")
        self.retry_after = retry_after


class Stopped(Exception):
    """The batcher is shutting down."""


@dataclass(eq=False)
class Job:
    payload: Any
    size: int  # complaints it holds (queue accounting, batch size)
    exclusive: bool  # run alone (payload is then a callable)
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.perf_counter)
    started: float = 0.0
    abandoned: bool = False


class MicroBatcher:
    """Collects jobs into batches and runs `process(batch)` on one worker thread.

    `process` receives the batchable jobs of one batch and returns one result
    per job, in order; a result that is an exception is raised to that job's
    caller only. Exclusive jobs carry a callable that is called with no
    arguments.
    """

    def __init__(
        self,
        process: Callable[[list[Job]], list[Any]],
        *,
        max_batch: int,
        wait_s: float,
        max_queue: int,
        timeout_s: float,
        on_depth: Callable[[int], None] | None = None,
        thread_init: Callable[[], None] | None = None,
    ) -> None:
        self.process = process
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.on_depth = on_depth
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="aduan-model", initializer=thread_init
        )
        self._jobs: collections.deque[Job] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.pending = 0  # complaints queued, not yet taken by the worker
        self.batches = 0  # model calls so far (for tests and metrics)
        self._seconds_per_item = 0.05  # running estimate, for Retry-After

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="aduan-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._jobs:
            job = self._jobs.popleft()
            if not job.future.done():
                job.future.set_exception(Stopped("the server is shutting down"))
        self.pending = 0
        await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown, True)

    # ------------------------------------------------------------------- submit
    def retry_after(self) -> int:
        return max(1, min(30, math.ceil(self.pending * self._seconds_per_item)))

    async def submit(self, payload: Any, size: int = 1, *, exclusive: bool = False) -> Any:
        """Queue a job and wait for its result (raises Overloaded / QueueTimeout / its error)."""
        if self._wake is None or self._task is None:
            raise Stopped("the model worker is not running")
        if self.pending and self.pending + size > self.max_queue:
            raise Overloaded(self.retry_after())
        job = Job(payload, size, exclusive, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._set_pending(self.pending + size)
        self._wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), self.timeout_s)
        except TimeoutError:
            if not job.started:
                job.abandoned = True
                raise QueueTimeout(self.retry_after()) from None
            return await job.future  # already running: its result is moments away
        except asyncio.CancelledError:
            job.abandoned = True  # the client went away; skip the job if not started
            raise

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` alone on the worker thread, in queue order (index writes, swaps).

        Not bounded by the queue limit or the timeout, and it runs even when the
        caller goes away: such calls are few and must not be lost halfway.
        """
        if self._wake is None or self._task is None:
            raise Stopped("the model worker is not running")
        job = Job(fn, 0, True, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._wake.set()
        return await asyncio.shield(job.future)

    def _set_pending(self, value: int) -> None:
        self.pending = value
        if self.on_depth is not None:
            self.on_depth(value)

    def _alone(self, job: Job) -> Any:
        try:
            return self.process([job])[0]
        except Exception as exc:
            return exc

    # --------------------------------------------------------------------- loop
    async def _next(self, timeout: float | None) -> Job | None:
        """The oldest job, waiting up to `timeout` seconds (None: forever)."""
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        while not self._jobs:
            self._wake.clear()
            if end is None:
                await self._wake.wait()
                continue
            remaining = end - loop.time()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                return None
        return self._jobs[0]

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._next(None)
            assert first is not None
            self._jobs.popleft()
            batch = [first]
            size = first.size
            if not first.exclusive:
                end = loop.time() + self.wait_s
                while size < self.max_batch:
                    nxt = await self._next(max(0.0, end - loop.time()) if self.wait_s else 0.0)
                    if nxt is None or nxt.exclusive or size + nxt.size > self.max_batch:
                        break
                    batch.append(self._jobs.popleft())
                    size += nxt.size
            self._set_pending(max(0, self.pending - size))
            live = [j for j in batch if not j.abandoned and not j.future.done()]
            if not live:
                continue
            now = time.perf_counter()
            for j in live:
                j.started = now
            try:
                if first.exclusive:
                    results = [await loop.run_in_executor(self.executor, first.payload)]
                else:
                    self.batches += 1
                    results = await loop.run_in_executor(self.executor, self.process, live)
                    n = sum(j.size for j in live)
                    per_item = (time.perf_counter() - now) / max(1, n)
                    self._seconds_per_item = 0.8 * self._seconds_per_item + 0.2 * per_item
            except asyncio.CancelledError:
                for j in live:
                    if not j.future.done():
                        j.future.set_exception(Stopped("the server is shutting down"))
                raise
            except Exception as exc:  # process() failed as a whole
                if len(live) == 1:
                    results = [exc]
                else:  # retry each job alone, so one bad job cannot fail the others
                    results = [
                        await loop.run_in_executor(self.executor, self._alone, j) for j in live
                    ]
            for j, result in zip(live, results, strict=True):
                if j.future.done():
                    continue
                if isinstance(result, BaseException):
                    j.future.set_exception(result)
                else:
                    j.future.set_result(result)
