"""The delivery queue backends the conformance suite (test_backends.py) runs against: one entry each.

An entry says how to name fresh storage for one test (``location``: JSON-able, so a second *process*
can open the same storage -- see lease_worker.py), how to open a queue on it, and what the backend
promises beyond the protocol:

- ``shared``: several queue objects (several processes) on one location share one queue;
- ``expiring``: a lease not acked in ``lease_seconds`` makes the delivery leasable again;
- ``fenced``: a holder whose lease expired and was leased again (by anyone) changes nothing with its
  ack / retry / dead (JetStream, for one, takes an ack from an earlier delivery of a message);
- ``durable`` (the queue class's own ``durable``): deliveries survive close and reopen.

Tests needing one of these say so with ``@pytest.mark.queue_needs("shared", ...)``; the ``backend``
fixture is then parametrized over the backends that have them (never a skip counted as a pass).
Adding a backend is adding one `Backend` to `BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.queue.base import DeliveryQueue
from gateway.queue.memory import MemoryQueue
from gateway.queue.nats import NatsQueue
from gateway.queue.sqlite import SqliteQueue
from tests.nats_server import queue_names

#: Options every test queue gets unless the test passes its own: short leases keep the suite fast.
TEST_OPTIONS: dict[str, Any] = {"lease_seconds": 0.3, "max_events": 100_000}


@dataclass(frozen=True)
class Backend:
    name: str
    #: The queue class (its ``durable`` attribute says whether it keeps deliveries across reopen).
    cls: type
    #: ``location(request, tmp_path)``: fresh storage for one test, JSON-able.
    location: Callable[[pytest.FixtureRequest, Path], dict[str, Any]]
    #: ``open(location, **options)``: a queue (not started) on that storage; options as SqliteQueue's.
    open: Callable[..., DeliveryQueue]
    shared: bool
    expiring: bool
    fenced: bool
    marks: tuple[Any, ...] = field(default=())

    @property
    def durable(self) -> bool:
        return bool(self.cls.durable)


def _sqlite_location(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    return {"path": str(tmp_path / "queue.db")}


def _sqlite_open(location: dict[str, Any], **options: Any) -> DeliveryQueue:
    return SqliteQueue(location["path"], **options)


def _memory_location(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    return {}  # nothing to share: each MemoryQueue is its own queue


def _memory_open(location: dict[str, Any], **options: Any) -> DeliveryQueue:
    return MemoryQueue(**options)


def _nats_location(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    # The session's nats-server (tests/nats_server.py); a stream, consumer and buckets of this test's own.
    return {"servers": [request.getfixturevalue("nats_server").url], **queue_names()}


def _nats_open(location: dict[str, Any], **options: Any) -> DeliveryQueue:
    names = dict(location)
    return NatsQueue(names.pop("servers"), **names, **options)


BACKENDS: dict[str, Backend] = {
    backend.name: backend for backend in [
        Backend("memory", MemoryQueue, _memory_location, _memory_open, shared=False, expiring=True, fenced=True),
        Backend("sqlite", SqliteQueue, _sqlite_location, _sqlite_open, shared=True, expiring=True, fenced=True),
        Backend("nats", NatsQueue, _nats_location, _nats_open, shared=True, expiring=True, fenced=True,
                marks=(pytest.mark.nats,)),
    ]
}

#: What ``queue_needs`` may name.
CAPABILITIES = ("shared", "expiring", "fenced", "durable")
