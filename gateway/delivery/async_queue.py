"""Async delivery: a bounded backlog, a pool of workers, and retries with exponential backoff.

Upstream dropped an async delivery when the backlog was full or on the first failure, silently. Here a
failing delivery is retried per its function's retry policy, and whatever is finally given up (backlog
full, attempts exhausted) goes to ``on_drop`` which counts, logs and emits ``invocationFailed``. The
worker sleeps between attempts: with the default 100 workers that keeps the code simple and the
ordering per delivery obvious, at the price of a worker per backing-off delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["AsyncQueue", "Attempt", "Job", "RetryPolicy"]

log = logging.getLogger("gateway.delivery.async")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts in all (first included) and the delay ``min(initial * multiplier**(n-1), max)``."""

    max_attempts: int = 3
    initial_backoff: float = 0.1
    multiplier: float = 2.0
    max_backoff: float = 5.0

    def delay(self, failed_attempts: int) -> float:
        return min(self.initial_backoff * self.multiplier ** (failed_attempts - 1), self.max_backoff)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the handler is told: which attempt this is, so its system events can say so."""

    number: int
    last: bool


@dataclass(slots=True)
class Job:
    """One delivery. ``payload`` is opaque to the queue."""

    payload: Any
    policy: RetryPolicy


Handler = Callable[[Any, Attempt], Awaitable[bool]]
DropHandler = Callable[[Any, str], Awaitable[None]]


class AsyncQueue:
    """``handler(payload, attempt)`` returns True when done (success, or a failure not worth retrying),
    False to retry. ``on_drop(payload, reason)`` is called when a job is given up."""

    def __init__(self, handler: Handler, on_drop: DropHandler, *, workers: int, backlog: int,
                 on_depth: Callable[[int], None] | None = None, on_retry: Callable[[Any], None] | None = None) -> None:
        self._handler = handler
        self._on_drop = on_drop
        self._on_depth = on_depth or (lambda depth: None)
        self._on_retry = on_retry or (lambda payload: None)
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=max(1, backlog))
        self._worker_count = max(1, workers)
        self._workers: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if not self._workers:
            self._workers = [asyncio.create_task(self._work(), name=f"async-delivery-{i}")
                             for i in range(self._worker_count)]

    def submit(self, payload: Any, policy: RetryPolicy) -> bool:
        """Enqueue without waiting; on a full backlog the job is dropped (``on_drop``) and False returned."""
        try:
            self._queue.put_nowait(Job(payload, policy))
        except asyncio.QueueFull:
            task = asyncio.create_task(self._on_drop(payload, f"async backlog full ({self._queue.maxsize} waiting)"))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return False
        self._on_depth(self._queue.qsize())
        return True

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            self._on_depth(self._queue.qsize())
            try:
                await self._run(job)
            except Exception:  # a bug in a handler must not kill the worker
                log.exception("async delivery failed unexpectedly")
            finally:
                self._queue.task_done()

    async def _run(self, job: Job) -> None:
        attempts = max(1, job.policy.max_attempts)
        for number in range(1, attempts + 1):
            last = number == attempts
            if await self._handler(job.payload, Attempt(number, last)):
                return
            if last:
                await self._on_drop(job.payload, f"gave up after {attempts} attempt(s)")
                return
            self._on_retry(job.payload)
            await asyncio.sleep(job.policy.delay(number))

    async def drain(self, timeout: float) -> bool:
        """Wait until every queued delivery (retries included) is finished; False on timeout."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
            if self._background:
                await asyncio.wait(self._background, timeout=timeout)
            return True
        except TimeoutError:
            log.warning("drain timed out with %d async deliveries still queued", self._queue.qsize())
            return False

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
