"""Lease renewal: `DeliveryQueue.extend` on every backend (memory, a SQLite file, a real nats-server) and the
delivery worker renewing the leases of its calls in flight, so that a call slower than ``--queue-lease``
is delivered once, not once per lease.

The sleeps below are what makes a lease run out (or not); no test asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.queue.base import MAX_LIMIT, DeliveryQueue, LeasedDelivery, NewDelivery
from gateway.queue.sqlite import SqliteQueue
from tests.gateway.queue.conftest import QueueFactory
from tests.gateway_fixtures import GatewayProcess


def new(i: int = 0) -> NewDelivery:
    return NewDelivery(space="default", function_id="slow", subscription_id="s1",
                       event={"specversion": "1.0", "id": f"e{i}", "type": "test.event", "source": "/test"})


async def other_queue(queue_factory: QueueFactory, first: DeliveryQueue, **options: Any) -> DeliveryQueue:
    """Another worker's view of ``first``'s queue: another queue object on the same storage (another
    process) where the backend is shared, the same object otherwise (memory: one process's queue)."""
    return await queue_factory(**options) if queue_factory.backend.shared else first


async def lease_all(queue: DeliveryQueue, count: int) -> list[LeasedDelivery]:
    leased: list[LeasedDelivery] = []
    for _ in range(50):
        leased += await queue.lease(count - len(leased), 1.0)
        if len(leased) >= count:
            break
    assert len(leased) == count
    return leased


# -- DeliveryQueue.extend ------------------------------------------------------------------------------


@pytest.mark.slow  # over 2 s: leases of 1 s run out and are renewed
@pytest.mark.queue_needs("expiring")
async def test_a_renewed_lease_outlives_its_time(queue_factory: QueueFactory) -> None:
    """Renewed every quarter lease for 2.5 leases, a delivery stays hidden from every other worker; once
    acked it is gone."""
    holder = await queue_factory(lease_seconds=1.0)
    other = await other_queue(queue_factory, holder, lease_seconds=1.0)
    await holder.enqueue([new()])
    [delivery] = await holder.lease(10, 2.0)
    for _ in range(10):
        await asyncio.sleep(0.25)
        assert await holder.extend([delivery]) == []
    assert await other.lease(10, 0) == []  # 2.5 s after the lease: still hidden
    await holder.ack(delivery)
    assert await other.lease(10, 1.5) == []  # acked: gone, not back after a lease
    assert await holder.depth() == 0


@pytest.mark.queue_needs("expiring", "fenced")
async def test_a_lost_lease_is_not_renewed_nor_taken_back(queue_factory: QueueFactory) -> None:
    """A lease that ran out is reported lost by ``extend``: not renewed while no one leased it again (the
    renewal is no way to revive it), and never taken back from the worker that leased it since."""
    holder = await queue_factory()  # lease_seconds 0.3
    other = await other_queue(queue_factory, holder)
    await holder.enqueue([new()])
    [first] = await holder.lease(10, 2.0)
    await asyncio.sleep(0.6)
    assert await holder.extend([first]) == [first]  # expired, leased by no one yet: lost all the same
    [second] = await other.lease(10, 2.0)
    assert second.id == first.id
    assert await holder.extend([first]) == [first]  # leased again since: lost, and left to its new holder
    assert await other.extend([second]) == []  # the new holder's lease is intact
    await holder.ack(first)  # fenced: changes nothing
    assert await holder.depth() == 1
    await other.ack(second)
    assert await holder.depth() == 0


@pytest.mark.queue_needs("expiring")
async def test_renewals_never_add_up_past_one_lease(queue_factory: QueueFactory) -> None:
    """Forty renewals in a row hide a delivery for one lease from the last, not forty: a worker that dies
    right after renewing gives its deliveries back after one lease (0.3 s here; the 5 s wait is a hang
    guard, far below the 12 s that forty added-up leases would hide it)."""
    holder = await queue_factory()  # lease_seconds 0.3
    other = await other_queue(queue_factory, holder)
    await holder.enqueue([new()])
    [delivery] = await holder.lease(10, 2.0)
    for _ in range(40):
        assert await holder.extend([delivery]) == []
    [again] = await other.lease(10, 5.0)
    assert again.id == delivery.id


@pytest.mark.slow  # over 2 s: leases of 1 s run out and are renewed
@pytest.mark.queue_needs("expiring")
async def test_a_full_batch_of_leases_is_renewed_in_one_call(queue_factory: QueueFactory) -> None:
    """A worker holding a whole batch (`MAX_LIMIT` leases) renews them in one ``extend`` (SQLite: one
    transaction); all stay hidden past their lease, and are acked by their holder."""
    holder = await queue_factory(lease_seconds=1.0)
    other = await other_queue(queue_factory, holder, lease_seconds=1.0)
    await holder.enqueue([new(i) for i in range(MAX_LIMIT)])
    leased = await lease_all(holder, MAX_LIMIT)
    commits = holder.commits if isinstance(holder, SqliteQueue) else 0
    for _ in range(6):
        await asyncio.sleep(0.25)
        assert await holder.extend(leased) == []
    if isinstance(holder, SqliteQueue):
        assert holder.commits - commits == 6  # one transaction per renewal of the whole batch
    assert await other.lease(MAX_LIMIT, 0) == []  # 1.5 s after the lease: all still hidden
    for delivery in leased:
        await holder.ack(delivery)
    assert await holder.depth() == 0


async def test_sqlite_renewal_is_guarded_by_the_lease_token(tmp_path: Any) -> None:
    """Two processes on one file: the one whose lease ran out and was taken over cannot renew the new
    holder's lease (the UPDATE names its own token), even for a delivery with the same id."""
    path = tmp_path / "queue.db"
    a, b = SqliteQueue(path, lease_seconds=0.3), SqliteQueue(path, lease_seconds=0.3)
    await a.start()
    await b.start()
    try:
        await a.enqueue([new()])
        [old] = await a.lease(1, 1.0)
        await asyncio.sleep(0.5)
        [current] = await b.lease(1, 1.0)
        assert old.token != current.token
        assert await a.extend([old]) == [old]
        await asyncio.sleep(0.5)  # b renews nothing: its lease runs out, a's attempt did not extend it
        [third] = await a.lease(1, 1.0)
        assert third.id == old.id and third.token not in (old.token, current.token)
    finally:
        await a.close()
        await b.close()


# -- the delivery worker ---------------------------------------------------------------------------------


@pytest.fixture
async def plane(function_server: Any) -> AsyncIterator[Callable[..., Any]]:
    """``plane(queue, **options)``: a real `DeliveryWorker` on ``queue`` (the real config view, plugin
    manager and event plane's invoker), with one http function ``slow`` on ``function_server``."""
    from gateway.config.models import Function
    from gateway.config.view import ConfigView
    from gateway.metrics import Metrics
    from gateway.pipeline import EventPlane
    from gateway.pipeline.delivery_worker import DeliveryWorker
    from gateway.plugins.manager import PluginManager
    from gateway.store.base import Kind
    from gateway.store.memory import MemoryStore

    store = MemoryStore()
    await store.open()
    metrics = Metrics()
    view = ConfigView(store, metrics)
    await view.start()
    plugins = PluginManager(view=view, metrics=metrics, plugin_paths=[])
    await plugins.start()
    model = Function.model_validate({"functionId": "slow", "space": "default", "type": "http", "timeout": 30,
                                     "provider": {"url": function_server.url + "/slow"}})
    entry = await store.create(Kind.FUNCTIONS, "default", "slow", model.to_json())
    assert await view.wait_for_revision(entry.revision)
    planes: list[Any] = []
    workers: list[DeliveryWorker] = []

    def make(queue: DeliveryQueue, **options: Any) -> DeliveryWorker:
        event_plane = EventPlane(view, plugins, metrics, queue=queue)  # not started: only its invoker is used
        planes.append(event_plane)
        worker = DeliveryWorker(queue, view, plugins, event_plane.invoker, event_plane.emitter, metrics,
                                workers=4, lease_wait=0.2, **options)
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(worker.close(), 10)
    for event_plane in planes:
        await event_plane.providers.close()
    await plugins.close()
    await view.close()
    await store.close()


#: The function's call takes this long: three and a half leases of `LEASE` seconds.
CALL_SECONDS = 3.5
LEASE = 1.0


@pytest.mark.slow  # over 2 s: leases of 1 s run out and are renewed
@pytest.mark.queue_needs("expiring")
@pytest.mark.parametrize("renew", [True, False], ids=["renewing", "not-renewing"])
async def test_a_call_slower_than_the_lease_is_delivered_once(queue_factory: QueueFactory, plane: Any,
                                                             function_server: Any, renew: bool) -> None:
    """Two workers sharing one queue (SQLite, NATS: each on its own queue object, as two processes or two
    gateways; memory: one process's queue), ``--queue-lease`` 1 s, a function answering after 3.5 s: renewing, the delivery is made once and acked; not renewing
    (as before leases were renewed), the other worker delivers it again while the first call runs."""
    function_server.respond(200, {"ok": True}, delay=CALL_SECONDS)
    first = await queue_factory(lease_seconds=LEASE)
    queues = [first, await other_queue(queue_factory, first, lease_seconds=LEASE)]
    workers = [plane(queue, renew_leases=renew) for queue in queues]
    for worker in workers:
        await worker.start()
    await queues[0].enqueue([new()])
    if renew:
        await function_server.wait_for_requests(1)
        for worker in workers:  # hang guard: the call ends after 3.5 s and is acked
            assert await worker.settle(20)
        assert await queues[1].depth() == 0
        assert len(function_server.requests) == 1
        assert all(worker.leases_lost == 0 for worker in workers)
    else:
        await function_server.wait_for_requests(2)
        assert [r.json["id"] for r in function_server.requests[:2]] == ["e0", "e0"]
    for worker in workers:
        await worker.close()


@pytest.mark.slow  # over 2 s: leases of 1 s run out and are renewed
@pytest.mark.queue_needs("expiring")
async def test_renewal_stops_when_the_worker_stops(queue_factory: QueueFactory, plane: Any,
                                                   function_server: Any) -> None:
    """A worker closed during a call renews nothing after: the delivery comes back to another worker one
    lease later (the 10 s wait is a hang guard; a renewal going on would hide it for ever)."""
    function_server.respond(200, {"ok": True}, delay=60)
    queue = await queue_factory(lease_seconds=LEASE)
    other = await other_queue(queue_factory, queue, lease_seconds=LEASE)
    worker = plane(queue)
    await worker.start()
    await queue.enqueue([new()])
    await function_server.wait_for_requests(1)
    await asyncio.sleep(LEASE * 1.5)  # renewed at least once while the call ran
    await asyncio.wait_for(worker.close(), 10)
    [again] = await other.lease(10, 10.0)
    assert again.event["id"] == "e0"
    assert again.attempts == (1 if queue_factory.backend.name == "nats" else 0)  # JetStream counts deliveries


@pytest.mark.slow  # over 2 s: leases of 1 s run out and are renewed
@pytest.mark.queue_needs("expiring", "fenced")
async def test_a_lease_lost_while_its_call_runs_is_logged_once_and_counted(
        queue_factory: QueueFactory, plane: Any, function_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A worker stalled longer than a whole lease (its event loop blocked) finds the lease of its call in
    flight lost at its next renewal: one warning, counted in ``leases_lost``, and not renewed again (the
    delivery belongs to its next holder)."""
    function_server.respond(200, {"ok": True}, delay=60)
    queue = await queue_factory(lease_seconds=LEASE)
    worker = plane(queue)
    await worker.start()
    await queue.enqueue([new()])
    await function_server.wait_for_requests(1)
    caplog.set_level("WARNING", logger="gateway.pipeline.delivery")
    time.sleep(LEASE * 1.6)  # noqa: ASYNC251 - the stall itself: nothing on this loop runs, no renewal either
    for _ in range(200):  # hang guard: the next renewal comes a third of a lease later
        if worker.leases_lost:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(LEASE)  # three more renewals of what the worker still holds
    assert worker.leases_lost == 1
    assert worker._metrics.delivery_leases_lost._value.get() == 1  # eventgateway_delivery_leases_lost_total
    lost = [r for r in caplog.records if "was lost before its call ended" in r.getMessage()]
    assert len(lost) == 1


async def test_two_gateway_processes_deliver_a_slow_call_once(gateway_process: Callable[..., GatewayProcess],
                                                             function_server: Any, tmp_path: Path) -> None:
    """The real thing: ``python -m gateway serve --processes 2 --queue-lease 1`` (two processes sharing the
    SQLite queue file), eight async events for a function answering after 3.5 s: each reaches the function
    once, and the queue file ends empty."""
    function_server.respond(200, {"ok": True}, delay=CALL_SECONDS)
    data = tmp_path / "data"
    gateway = gateway_process("--data-dir", str(data), "--queue-lease", str(LEASE), "--processes", "2")
    async with httpx.AsyncClient(timeout=20) as client:
        api = gateway.config_url + "/v1/spaces/default"
        for path, body in (
            ("/functions", {"functionId": "slow", "type": "http", "retry": {"maxAttempts": 1},
                            "provider": {"url": function_server.url + "/slow", "timeout": 30}}),
            ("/eventtypes", {"name": "job.done"}),
            ("/subscriptions", {"type": "async", "eventType": "job.done", "functionId": "slow"}),
        ):
            response = await client.post(api + path, json=body)
            assert response.status_code == 201, response.text
        await asyncio.sleep(1.0)  # both processes see the subscription (the store's watch)
        ids = [f"job-{i}" for i in range(8)]
        for event_id in ids:
            response = await client.post(gateway.events_url + "/", json={
                "specversion": "1.0", "type": "job.done", "source": "/lease-test", "id": event_id},
                headers={"Content-Type": "application/cloudevents+json"})
            assert response.status_code == 202, response.text
    await function_server.wait_for_requests(len(ids), timeout=30)

    def queued() -> int:
        with contextlib.closing(sqlite3.connect(data / "queue.db")) as db:
            return int(db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0])
    for _ in range(400):  # hang guard: the calls end after 3.5 s and are acked
        if queued() == 0:
            break
        await asyncio.sleep(0.05)
    assert queued() == 0, gateway.log()
    assert gateway.stop() == 0
    seen = sorted(r.json["id"] for r in function_server.requests)
    assert seen == sorted(ids), gateway.log()  # each once: no second delivery while a call ran


async def test_memory_renewals_add_nothing_to_the_expiry_heap() -> None:
    """A holder renewing a full batch of leases over and over (a hostile or broken caller) costs no memory:
    each lease keeps its one row in the expiry heap, moved on when its old time comes."""
    from gateway.queue.memory import MemoryQueue

    queue = MemoryQueue(lease_seconds=0.2)
    await queue.enqueue([new(i) for i in range(MAX_LIMIT)])
    leased = await queue.lease(MAX_LIMIT, 0)
    assert len(leased) == MAX_LIMIT
    for round in range(50):
        assert await queue.extend(leased) == []
        if round % 10 == 0:
            await asyncio.sleep(0.1)
        assert len(queue._expiry) <= MAX_LIMIT
    assert await queue.lease(10, 0) == []  # all still held
    await asyncio.sleep(0.3)
    assert len(await queue.lease(MAX_LIMIT, 0)) == MAX_LIMIT  # not renewed: back after one lease
    await queue.close()
