"""The in-process delivery queue (``--queue memory``): fastest, and **not durable**.

Everything lives in this process's memory: a killed or crashed process loses every delivery it held
(waiting, leased or waiting to retry) and every dead letter -- the at-most-once behaviour the gateway had
before issue 14, for those who choose it. A graceful stop (SIGTERM) delivers what it holds first, within
``--drain-timeout`` (the delivery worker keeps leasing until the queue is empty).

- **Bound.** ``enqueue`` refuses a batch with `QueueFull` when the deliveries held (waiting, leased,
  waiting to retry) plus the batch would exceed ``max_events``: back-pressure, nothing accepted dropped.
- **Retries** wait on a timer (an ``asyncio`` timer handle, not a worker) and become due when it fires.
- **Leases** expire as in the durable backends (a worker that never acks, retries or kills a delivery gets
  it back after ``lease_seconds``); acting on an expired lease changes nothing. ``extend`` renews held
  leases for ``lease_seconds`` from now (a lease keeps its one expiry-heap row, pushed back to the new
  time when the old one comes: renewals add nothing to the heap).
- **Dead letters** are kept up to ``max_dead`` (default ``max_events``); past that the oldest is dropped to
  make room, counted in :attr:`MemoryQueue.dead_dropped` and logged (the first time, then at most once a
  minute with the count).
- Ids are 32 lowercase hex characters (uuid4 hex, as SQLite's); anything else is "not found".

All methods run on the event loop (no threads, no I/O); the queue binds to the loop of its first use.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.queue.base import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_EVENTS,
    MAX_ERROR_CHARS,
    MAX_LIMIT,
    DeadLetter,
    LeasedDelivery,
    NewDelivery,
    QueueFull,
    QueueUnavailable,
    cap_limit,
    is_delivery_id,
)

__all__ = ["MAX_LIMIT", "MemoryQueue"]

log = logging.getLogger("gateway.queue.memory")

#: How often the "dead letters dropped" warning may repeat, in seconds.
_DROP_LOG_SECONDS = 60.0


@dataclass(slots=True)
class _Entry:
    id: str
    space: str
    function_id: str
    subscription_id: str
    event: dict[str, Any]
    system: bool
    attempts: int = 0
    first_attempt_at: float | None = None
    last_error: str | None = None
    #: The token of the lease holding it (0: not leased), and when that lease ends (``time.monotonic()``).
    lease: int = 0
    lease_until: float = 0.0


class MemoryQueue:
    """A `gateway.queue.base.DeliveryQueue` in process memory (see the module docstring)."""

    durable = False
    #: ``lease`` takes deliveries only after its last wait, with no await in between: cancelled, it took none.
    lease_cancel_safe = True

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 max_dead: int | None = None) -> None:
        if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
            raise ValueError(f"--queue-max-events must be at least 1, not {max_events!r}")
        if not lease_seconds > 0:
            raise ValueError(f"--queue-lease must be a positive number of seconds, not {lease_seconds!r}")
        self.max_events = max_events
        self.lease_seconds = float(lease_seconds)
        self.max_dead = max_events if max_dead is None else max(1, int(max_dead))
        self.description = "memory"
        #: Dead letters dropped (oldest first) to keep at most ``max_dead``.
        self.dead_dropped = 0
        self._ready: deque[_Entry] = deque()
        self._leased: dict[str, _Entry] = {}
        #: Leases by expiry: (lease_until, token, id); stale rows (acked, re-leased) are skipped when popped.
        self._expiry: list[tuple[float, int, str]] = []
        self._retrying: dict[str, tuple[_Entry, asyncio.TimerHandle]] = {}
        #: Dead letters by id, oldest first, each with its ``system`` flag (kept for a redelivery).
        self._dead: OrderedDict[str, tuple[DeadLetter, bool]] = OrderedDict()
        self._dead_counts: dict[tuple[str, str], int] = {}
        self._tokens = itertools.count(1)
        self._wakeup: asyncio.Event | None = None
        self._closed = False
        self._drop_logged_at = -_DROP_LOG_SECONDS
        self._drops_unlogged = 0

    def _held(self) -> int:
        return len(self._ready) + len(self._leased) + len(self._retrying)

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    # -- DeliveryQueue ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Nothing to open."""

    async def enqueue(self, deliveries: Sequence[NewDelivery]) -> None:
        count = len(deliveries)
        if self._closed:
            raise QueueUnavailable("the memory queue is closed (the gateway is stopping)")
        if count == 0:
            return
        held = self._held()
        if held + count > self.max_events:
            raise QueueFull(f"the delivery queue is full: {held} deliveries wait and {count} more would exceed "
                            f"--queue-max-events {self.max_events}; try again later")
        for d in deliveries:
            self._ready.append(_Entry(uuid.uuid4().hex, d.space, d.function_id, d.subscription_id, d.event,
                                      bool(d.system)))
        self._wake()

    def _expire_leases(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, token, id = heapq.heappop(self._expiry)
            entry = self._leased.get(id)
            if entry is None or entry.lease != token:
                continue  # acked, retried, killed or leased again since
            if entry.lease_until > now:  # renewed since: its one row goes back in at its new time
                heapq.heappush(self._expiry, (entry.lease_until, token, id))
                continue
            del self._leased[id]
            entry.lease = 0
            self._ready.appendleft(entry)  # its holder is gone or too slow: due again at once

    async def lease(self, limit: int, wait: float) -> list[LeasedDelivery]:
        limit = cap_limit(limit)
        if limit == 0 or self._closed:
            return []
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        deadline = time.monotonic() + max(0.0, float(wait))
        while True:
            now = time.monotonic()
            self._expire_leases(now)
            if self._ready:
                return self._take(limit, now)
            remaining = deadline - now
            if remaining <= 0 or self._closed:
                return []
            pause = remaining
            if self._expiry:
                pause = min(pause, max(0.0, self._expiry[0][0] - now) + 0.001)
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), pause)
            except TimeoutError:
                pass

    def _take(self, limit: int, now: float) -> list[LeasedDelivery]:
        token = next(self._tokens)
        until = now + self.lease_seconds
        wall = time.time()
        leased: list[LeasedDelivery] = []
        while self._ready and len(leased) < limit:
            entry = self._ready.popleft()
            if entry.first_attempt_at is None:
                entry.first_attempt_at = wall
            entry.lease, entry.lease_until = token, until
            self._leased[entry.id] = entry
            leased.append(LeasedDelivery(
                id=entry.id, space=entry.space, function_id=entry.function_id,
                subscription_id=entry.subscription_id, event=entry.event, system=entry.system,
                attempts=entry.attempts, first_attempt_at=entry.first_attempt_at, last_error=entry.last_error,
                token=token))
        for delivery in leased:
            heapq.heappush(self._expiry, (until, token, delivery.id))
        return leased

    async def extend(self, deliveries: Sequence[LeasedDelivery]) -> list[LeasedDelivery]:
        now = time.monotonic()
        self._expire_leases(now)  # an expired lease is lost, whether or not it was leased again since
        until = now + self.lease_seconds
        lost: list[LeasedDelivery] = []
        for delivery in deliveries:
            entry = self._leased.get(delivery.id) if is_delivery_id(delivery.id) else None
            if entry is None or entry.lease != delivery.token:
                lost.append(delivery)
                continue
            entry.lease_until = until  # its expiry-heap row moves on when its old time comes
        return lost

    def _release(self, delivery: LeasedDelivery) -> _Entry | None:
        """The entry ``delivery`` still holds the lease of, taken out of the leased set (None: the lease
        expired, or it was acked, retried or killed already)."""
        if not is_delivery_id(delivery.id):
            return None
        entry = self._leased.get(delivery.id)
        if entry is None or entry.lease != delivery.token:
            return None
        del self._leased[delivery.id]
        entry.lease = 0
        return entry

    async def ack(self, delivery: LeasedDelivery) -> None:
        self._release(delivery)

    async def retry(self, delivery: LeasedDelivery, *, delay: float, error: str) -> None:
        entry = self._release(delivery)
        if entry is None:
            return
        entry.attempts += 1
        entry.last_error = str(error)[:MAX_ERROR_CHARS]
        delay = max(0.0, float(delay))
        if self._closed:
            return
        if delay == 0:
            self._ready.append(entry)
            self._wake()
            return
        handle = asyncio.get_running_loop().call_later(delay, self._retry_due, entry.id)
        self._retrying[entry.id] = (entry, handle)

    def _retry_due(self, id: str) -> None:
        found = self._retrying.pop(id, None)
        if found is not None:
            self._ready.append(found[0])
            self._wake()

    async def dead(self, delivery: LeasedDelivery, *, error: str) -> None:
        entry = self._release(delivery)
        if entry is None:
            return
        now = time.time()
        while len(self._dead) >= self.max_dead:
            self._forget(next(iter(self._dead)))
            self._dropped_dead()
        key = (entry.space, entry.function_id)
        self._dead_counts[key] = self._dead_counts.get(key, 0) + 1
        self._dead[entry.id] = (DeadLetter(
            id=entry.id, space=entry.space, function_id=entry.function_id, subscription_id=entry.subscription_id,
            event=entry.event, attempts=entry.attempts + 1, last_error=str(error)[:MAX_ERROR_CHARS],
            first_attempt_at=entry.first_attempt_at if entry.first_attempt_at is not None else now,
            last_attempt_at=now), entry.system)

    def _forget(self, id: str) -> None:
        letter, _ = self._dead.pop(id)
        key = (letter.space, letter.function_id)
        left = self._dead_counts[key] - 1
        if left:
            self._dead_counts[key] = left
        else:
            del self._dead_counts[key]

    def _dropped_dead(self) -> None:
        self.dead_dropped += 1
        self._drops_unlogged += 1
        now = time.monotonic()
        if now - self._drop_logged_at >= _DROP_LOG_SECONDS:
            log.warning("memory queue: %d dead letter(s) dropped, oldest first, to keep at most %d "
                        "(%d dropped since start)", self._drops_unlogged, self.max_dead, self.dead_dropped)
            self._drop_logged_at = now
            self._drops_unlogged = 0

    async def dead_letters(self, space: str, function_id: str | None = None,
                           limit: int = MAX_LIMIT) -> list[DeadLetter]:
        limit = cap_limit(limit)
        found: list[DeadLetter] = []
        if limit == 0:
            return found
        for letter, _ in self._dead.values():
            if letter.space == space and (function_id is None or letter.function_id == function_id):
                found.append(letter)
                if len(found) >= limit:
                    break
        return found

    async def redeliver(self, space: str, *, id: str | None = None, function_id: str | None = None) -> int:
        if id is None and function_id is None:
            raise ValueError("redeliver needs an id or a function_id")
        if id is not None:
            found = self._dead.get(id) if is_delivery_id(id) else None
            if found is None or found[0].space != space or (function_id is not None
                                                            and found[0].function_id != function_id):
                return 0
            letters = [found]
        else:
            letters = [(letter, system) for letter, system in self._dead.values()
                       if letter.space == space and letter.function_id == function_id]
        for letter, system in letters:
            self._forget(letter.id)
            # The same id and event; a fresh attempt count. Not bounded by max_events: an operator's act.
            self._ready.append(_Entry(letter.id, letter.space, letter.function_id, letter.subscription_id,
                                      letter.event, system))
        if letters:
            self._wake()
        return len(letters)

    async def delete_dead(self, space: str, id: str) -> bool:
        found = self._dead.get(id) if is_delivery_id(id) else None
        if found is None or found[0].space != space:
            return False
        self._forget(id)
        return True

    async def depth(self) -> int:
        return self._held()

    async def dead_counts(self) -> dict[tuple[str, str], int]:
        return dict(self._dead_counts)

    async def close(self) -> None:
        """Forget everything held (a non-durable queue: the worker drains it before, within the drain
        timeout) and cancel the retry timers."""
        self._closed = True
        for _, handle in self._retrying.values():
            handle.cancel()
        held = self._held()
        if held:
            log.warning("memory queue closed with %d deliveries not delivered (lost: --queue memory is not "
                        "durable)", held)
        self._retrying.clear()
        self._ready.clear()
        self._leased.clear()
        self._expiry.clear()
        self._wake()
