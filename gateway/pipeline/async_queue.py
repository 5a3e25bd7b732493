"""Async delivery: a bounded backlog, a pool of workers, and retries with exponential backoff.

Upstream dropped an async delivery when the backlog was full or on the first failure, silently. Here a
failing delivery is retried per its function's retry policy, and whatever is finally given up (backlog
full, attempts exhausted) goes to ``on_drop`` which counts, logs and emits ``invocationFailed``.

A delivery waiting for its next attempt does not hold a worker: it waits on a timer and then goes back
to the end of the backlog, so one function that keeps failing with long backoffs cannot take the whole
pool away from healthy ones. Waiting retries are bounded like the backlog; when that many are already
waiting, the worker itself sleeps out the delay (back-pressure, as before) rather than holding more in
memory. A retry whose timer fires while the backlog is full waits for room instead of being dropped:
fresh traffic does not cancel an accepted delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.config.models import RetryPolicy

__all__ = ["AsyncQueue", "Attempt", "Job", "RetryPolicy"]  # RetryPolicy: gateway.config.models's

log = logging.getLogger("gateway.pipeline.async")


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the handler is told: which attempt this is, so its system events can say so."""

    number: int
    last: bool


@dataclass(slots=True)
class Job:
    """One delivery. ``payload`` is opaque to the queue; ``attempt`` is the number of the next attempt."""

    payload: Any
    policy: RetryPolicy
    attempt: int = 1


Handler = Callable[[Any, Attempt], Awaitable[bool]]
DropHandler = Callable[[Any, str], Awaitable[None]]


async def _unbound(payload: Any, _: Any) -> Any:
    raise RuntimeError("the async queue was started without a handler")


class AsyncQueue:
    """``handler(payload, attempt)`` returns True when done (success, or a failure not worth retrying),
    False to retry. ``on_drop(payload, reason)`` is called when a job is given up."""

    def __init__(self, handler: Handler | None = None, on_drop: DropHandler | None = None, *, workers: int,
                 backlog: int,
                 on_depth: Callable[[int], None] | None = None, on_retry: Callable[[Any], None] | None = None) -> None:
        self._handler: Handler = handler or _unbound
        self._on_drop: DropHandler = on_drop or _unbound
        self._on_depth = on_depth or (lambda depth: None)
        self._on_retry = on_retry or (lambda payload: None)
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=max(1, backlog))
        self._worker_count = max(1, workers)
        self._workers: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        #: Retries waiting on a timer, by id of their job; at most ``_retry_capacity`` of them.
        self._retrying: dict[int, asyncio.TimerHandle] = {}
        self._retry_capacity = max(1, backlog)
        #: Accepted jobs not finished yet (queued, running or waiting to retry); ``_idle`` is set at 0.
        self._unfinished = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self, handler: Handler | None = None, on_drop: DropHandler | None = None) -> None:
        """Start the workers; ``handler`` and ``on_drop``, when given, replace the constructor's (the
        consumer of a queue is often built after what feeds it)."""
        if handler is not None:
            self._handler = handler
        if on_drop is not None:
            self._on_drop = on_drop
        if not self._workers:
            self._workers = [asyncio.create_task(self._work(), name=f"async-delivery-{i}")
                             for i in range(self._worker_count)]

    def submit(self, payload: Any, policy: RetryPolicy) -> bool:
        """Enqueue without waiting; on a full backlog the job is dropped (``on_drop``) and False returned."""
        try:
            self._queue.put_nowait(Job(payload, policy))
        except asyncio.QueueFull:
            self._in_background(self._on_drop(payload, f"async backlog full ({self._queue.maxsize} waiting)"))
            return False
        self._unfinished += 1
        self._idle.clear()
        self._on_depth(self._queue.qsize())
        return True

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def retrying(self) -> int:
        """Deliveries waiting on a timer for their next attempt."""
        return len(self._retrying)

    def _in_background(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _finished(self) -> None:
        self._unfinished -= 1
        if self._unfinished <= 0:
            self._unfinished = 0
            self._idle.set()

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            self._on_depth(self._queue.qsize())
            try:
                await self._run(job)
            finally:
                self._queue.task_done()

    async def _run(self, job: Job) -> None:
        """Attempt ``job``; it is finished here unless a retry timer now holds it."""
        attempts = max(1, job.policy.max_attempts)
        while True:
            last = job.attempt >= attempts
            try:
                done = await self._handler(job.payload, Attempt(job.attempt, last))
            except Exception:  # a bug in a handler must not kill the worker
                log.exception("async delivery failed unexpectedly")
                done = True
            if done:
                self._finished()
                return
            if last:
                try:
                    await self._on_drop(job.payload, f"gave up after {attempts} attempt(s)")
                except Exception:
                    log.exception("async drop handler failed")
                self._finished()
                return
            self._on_retry(job.payload)
            delay = job.policy.delay(job.attempt)
            job.attempt += 1
            if len(self._retrying) < self._retry_capacity:
                self._retrying[id(job)] = asyncio.get_running_loop().call_later(delay, self._retry_due, job)
                return
            await asyncio.sleep(delay)  # too many retries waiting already: this worker waits instead

    def _retry_due(self, job: Job) -> None:
        self._retrying.pop(id(job), None)
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._in_background(self._queue.put(job))  # an accepted delivery waits for room, never dropped
            return
        self._on_depth(self._queue.qsize())

    async def drain(self, timeout: float) -> bool:
        """Wait until every accepted delivery (retries included) is finished; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            if self._background:
                await asyncio.wait(self._background, timeout=timeout)
            return True
        except TimeoutError:
            log.warning("drain timed out with %d async deliveries queued and %d waiting to retry",
                        self._queue.qsize(), len(self._retrying))
            return False

    async def close(self) -> None:
        for handle in self._retrying.values():
            handle.cancel()
        self._retrying.clear()
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
