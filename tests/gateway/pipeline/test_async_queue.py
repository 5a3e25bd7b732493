"""The async queue on its own: retries on timers, their bound, and drain covering waiting retries."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from gateway.pipeline.async_queue import AsyncQueue, Attempt, RetryPolicy


@pytest.mark.slow
async def test_retries_beyond_the_timer_bound_wait_in_the_worker_and_all_finish() -> None:
    attempts: Counter[str] = Counter()
    waiting_when_b_retried: list[int] = []
    retried: list[str] = []

    async def handler(payload: str, attempt: Attempt) -> bool:
        attempts[payload] += 1
        assert attempt.number == attempts[payload]
        if payload == "b" and attempt.number > 1:
            waiting_when_b_retried.append(queue.retrying)
        return attempts[payload] >= 3  # fails twice, then succeeds

    async def on_drop(payload: str, reason: str) -> None:
        raise AssertionError(f"{payload} dropped: {reason}")

    # backlog 1: one retry may wait on a timer; "a" takes that place with a long backoff.
    queue = AsyncQueue(handler, on_drop, workers=1, backlog=1, on_retry=retried.append)
    queue.start()
    try:
        assert queue.submit("a", RetryPolicy(max_attempts=3, initial_backoff=1.0, multiplier=1, max_backoff=1.0))
        await asyncio.sleep(0)  # the worker takes "a": the backlog has room again
        assert queue.submit("b", RetryPolicy(max_attempts=3, initial_backoff=0.01, multiplier=1, max_backoff=0.01))
        assert await queue.drain(10)
        assert attempts == {"a": 3, "b": 3} and sorted(retried) == ["a", "a", "b", "b"]
        # "b" was retried by its worker sleeping out the delay: the one timer place was "a"'s.
        assert waiting_when_b_retried == [1, 1]
        assert queue.retrying == 0 and queue.depth == 0
    finally:
        await queue.close()


async def test_exhausted_attempts_are_dropped_once_with_the_reason() -> None:
    dropped: list[tuple[str, str]] = []
    seen: list[Attempt] = []

    async def handler(payload: str, attempt: Attempt) -> bool:
        seen.append(attempt)
        return False

    async def on_drop(payload: str, reason: str) -> None:
        dropped.append((payload, reason))

    queue = AsyncQueue(handler, on_drop, workers=2, backlog=10)
    queue.start()
    try:
        assert queue.submit("x", RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.01))
        assert await queue.drain(10)
    finally:
        await queue.close()
    assert seen == [Attempt(1, False), Attempt(2, False), Attempt(3, True)]
    assert dropped == [("x", "gave up after 3 attempt(s)")]
