"""The delivery queue (issue 14): what every backend -- memory, SQLite, NATS JetStream -- must do.

A *delivery* is one async event for one subscribed function (an event with three async subscribers is
three deliveries: one slow function never holds the others back). The Events API puts deliveries in
with :meth:`DeliveryQueue.enqueue` **before** it answers 202; a durable backend has them on disk (or in
the JetStream stream) when that returns, so a 202 means "will be delivered at least once, or become a
dead letter". The delivery worker (``gateway.pipeline.delivery_worker``) takes them out with
:meth:`lease`, calls the function, and then :meth:`ack` (success: gone), :meth:`retry` (failed, more
attempts left: due again after the backoff, on any gateway) or :meth:`dead` (no attempts left: a dead
letter an operator can list, redeliver or delete through the Config API).

A lease is how several processes (``--processes N``) and gateways share one queue without delivering
one delivery twice at the same time: a leased delivery is invisible to every other lease until the
holder acks, retries or kills it, or until the lease expires (the holder died: another one delivers it
again -- at least once, never "at most once"). A holder whose call runs long renews its leases with
:meth:`DeliveryQueue.extend`. Redeliveries keep the event as it was (same ``id``, so a
function can de-duplicate); ``attempts`` counts the attempts made before this lease.

This module is below the pipeline: it knows JSON-able events and strings, no plugins, no functions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.common import rfc3339

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_MAX_EVENTS",
    "MAX_ERROR_CHARS",
    "MAX_LIMIT",
    "MAX_NAME_CHARS",
    "DeadLetter",
    "DeliveryQueue",
    "LeasedDelivery",
    "NewDelivery",
    "QueueError",
    "QueueFull",
    "QueueMisconfigured",
    "QueueUnavailable",
    "cap_limit",
    "is_delivery_id",
]

#: How long a lease hides a delivery from every other worker, in seconds (``--queue-lease``). A live
#: worker renews the leases it holds (:meth:`DeliveryQueue.extend`, every third of this) while their calls
#: run, so a call may take longer than this; what it bounds is how long the deliveries of a worker that
#: died (or stalled past a whole lease) stay hidden before another one delivers them again.
DEFAULT_LEASE_SECONDS = 60.0
#: Deliveries a queue holds (waiting, leased or waiting to retry; dead letters not counted) before
#: :meth:`DeliveryQueue.enqueue` refuses new ones with :class:`QueueFull` (``--queue-max-events``).
DEFAULT_MAX_EVENTS = 100_000

# The bounds every backend keeps the same (hostile or careless input through the Config API, long errors).
#: The most deliveries one ``lease`` call, or dead letters one ``dead_letters`` call, returns.
MAX_LIMIT = 1000
#: The longest error text kept with a retry or a dead letter (the rest is cut).
MAX_ERROR_CHARS = 4096
#: The longest space or function id a dead-letter filter may name: longer ones match nothing, and no
#: query is made (the gateway's own names are far shorter).
MAX_NAME_CHARS = 1000

#: What a delivery id is: 32 lowercase hex characters (uuid4 hex), as every backend makes them.
_DELIVERY_ID = re.compile(r"[0-9a-f]{32}\Z")


def is_delivery_id(value: object) -> bool:
    """Whether ``value`` can be a delivery id; anything else is "not found" without asking the backend."""
    return isinstance(value, str) and len(value) == 32 and _DELIVERY_ID.match(value) is not None


def cap_limit(limit: int) -> int:
    """``limit`` within 0..`MAX_LIMIT`."""
    return max(0, min(int(limit), MAX_LIMIT))


class QueueError(Exception):
    """A queue cannot take new deliveries now; the Events API answers 503 with this message."""


class QueueFull(QueueError):
    """Over ``--queue-max-events``: back-pressure, nothing accepted is dropped."""


class QueueUnavailable(QueueError):
    """The backend cannot be reached (NATS down, SQLite file unwritable): no 202 it cannot keep."""


class QueueMisconfigured(QueueUnavailable):
    """The backend is there but this gateway cannot use it as it is (a queue file of a newer schema, a
    JetStream stream or consumer with other settings): unlike other `QueueUnavailable` errors it does not go
    away by itself, so the gateway refuses to start on it (``gateway.runtime``)."""


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery to put in the queue: the event as the function will receive it (a JSON-able
    CloudEvent, 1.0 or 0.1 as routed), for one function of one space."""

    space: str
    function_id: str
    #: The subscription that routed it ("" for deliveries that no subscription id names).
    subscription_id: str
    event: dict[str, Any]
    #: A system event (delivered as a plain call, emitting no system events of its own).
    system: bool = False


@dataclass(slots=True)
class LeasedDelivery:
    """A delivery this worker holds until it acks, retries or kills it (or the lease expires)."""

    id: str
    space: str
    function_id: str
    subscription_id: str
    event: dict[str, Any]
    system: bool
    #: Attempts made before this lease (0 on the first delivery; the next attempt is ``attempts + 1``).
    attempts: int
    #: Wall-clock time (``time.time()``) of the first attempt, None before it.
    first_attempt_at: float | None = None
    last_error: str | None = None
    #: The backend's own handle (a NATS message, a lease token); opaque to the worker.
    token: Any = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A delivery whose attempts are all spent: kept until an operator redelivers or deletes it."""

    id: str
    space: str
    function_id: str
    subscription_id: str
    event: dict[str, Any]
    attempts: int
    last_error: str
    first_attempt_at: float
    last_attempt_at: float

    def to_json(self) -> dict[str, Any]:
        """The Config API's shape (times in RFC 3339, UTC, milliseconds)."""
        return {
            "id": self.id, "functionId": self.function_id, "subscriptionId": self.subscription_id,
            "event": self.event, "attempts": self.attempts, "lastError": self.last_error,
            "firstAttemptAt": rfc3339(self.first_attempt_at, millis=True),
            "lastAttemptAt": rfc3339(self.last_attempt_at, millis=True),
        }


class DeliveryQueue(Protocol):
    """A delivery queue backend. Every method is a coroutine safe to call from the event loop (a
    backend doing blocking I/O does it on its own thread)."""

    #: Whether an accepted delivery survives the process (False only for ``memory``).
    durable: bool
    #: Whether a ``lease`` may be cancelled at any moment without leaving a delivery leased by no one
    #: (``memory``: it takes nothing before its last wait; ``sqlite``: what a cancelled lease's take leased
    #: is given back right behind it). The delivery worker then stops at once instead of letting a waiting
    #: lease run out its wait (False for ``nats``).
    lease_cancel_safe: bool
    #: A short description for logs and /v1/status (``"sqlite:/var/lib/eg/queue.db"``; never a password).
    description: str
    #: How long a lease lasts, in seconds (``--queue-lease``): from ``lease``, and from each ``extend``.
    lease_seconds: float

    async def start(self) -> None:
        """Open the backend (create tables, streams, consumers). Raises `QueueUnavailable` when it
        cannot be opened now; the gateway starts anyway and enqueues answer 503 until it can."""

    async def enqueue(self, deliveries: Sequence[NewDelivery]) -> None:
        """Store every delivery, all or none, before returning (durable backends: committed).
        Raises `QueueFull` over the bound, `QueueUnavailable` when the backend cannot take them."""

    async def lease(self, limit: int, wait: float) -> list[LeasedDelivery]:
        """Up to ``limit`` deliveries that are due (not waiting on a retry delay, not leased by anyone
        else), each now leased to this worker for the lease time; waits up to ``wait`` seconds for one
        when none is due (returning an empty list then)."""

    async def extend(self, deliveries: Sequence[LeasedDelivery]) -> list[LeasedDelivery]:
        """Renew the leases this worker holds on ``deliveries`` (a call still running): each is hidden from
        every other worker for `lease_seconds` from now -- never longer, however often it is renewed, so
        a worker that dies after a renewal hides its deliveries for at most one lease. The whole list in
        one backend round trip. A lease already lost (expired, whether or not leased again since; acked,
        retried or killed) is not renewed and never taken back from its new holder: those deliveries are
        returned. Raises `QueueUnavailable` when the backend cannot be reached (the leases run on as they
        were)."""

    async def ack(self, delivery: LeasedDelivery) -> None:
        """The delivery succeeded (or was given up without a dead letter): remove it."""

    async def retry(self, delivery: LeasedDelivery, *, delay: float, error: str) -> None:
        """The attempt ``delivery.attempts + 1`` failed and more are allowed: due again in ``delay``
        seconds (any worker), with ``attempts`` one higher and ``last_error`` = ``error``."""

    async def dead(self, delivery: LeasedDelivery, *, error: str) -> None:
        """The last allowed attempt (``delivery.attempts + 1``) failed: keep it as a dead letter."""

    async def dead_letters(self, space: str, function_id: str | None = None,
                           limit: int = MAX_LIMIT) -> list[DeadLetter]:
        """The dead letters of a space (oldest first), optionally of one function only; at most ``limit``
        (capped at `MAX_LIMIT`)."""

    async def redeliver(self, space: str, *, id: str | None = None, function_id: str | None = None) -> int:
        """Turn dead letters back into deliveries due now, with a fresh attempt count: the one with
        ``id``, or all of ``function_id``. Returns how many (0: none matched)."""

    async def delete_dead(self, space: str, id: str) -> bool:
        """Forget one dead letter; False if there is none with that id in that space."""

    async def depth(self) -> int:
        """Deliveries held (waiting, leased or waiting to retry; dead letters not counted)."""

    async def dead_counts(self) -> dict[tuple[str, str], int]:
        """Dead letters per (space, function id), for the ``eventgateway_deadletters`` gauge."""

    async def close(self) -> None:
        """Release the backend. Leased deliveries not acked are delivered again after their lease."""
