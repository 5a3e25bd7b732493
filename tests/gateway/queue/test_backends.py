"""The delivery queue conformance suite: what gateway/queue/base.py's docstrings promise, run against every
backend in tests/gateway/queue/backends.py (a test that needs a promise only some backends make -- one
queue shared by several queue objects or processes, leases that expire, deliveries kept across reopen
-- says so with ``queue_needs`` and runs on those only).

Covered: enqueue / lease / ack and the fields kept; a leased delivery invisible to every other lease
(one queue, two queue objects on one storage, and a real second process); a lease's wait (returns at once,
woken by a local enqueue, sees another queue object's enqueue); an expired lease (a dead holder: a
SIGKILLed process) -> leasable again; a stale holder's ack/retry/dead after another leased it changes
nothing; retry (not due before its delay, due after, attempts and last error counted); dead letters
(fields, filters, counts, redeliver with a fresh count, delete); QueueFull at the bound with nothing
half stored; durability across close and reopen; 1000 concurrent enqueues leased exactly once; hostile
ids and limits. SQLite-only promises (schema version, a full disk) are at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from gateway.queue.base import (
    MAX_ERROR_CHARS,
    MAX_LIMIT,
    DeliveryQueue,
    LeasedDelivery,
    NewDelivery,
    QueueFull,
    QueueUnavailable,
)
from gateway.queue.sqlite import SqliteQueue
from tests.gateway.queue.conftest import QueueFactory

ROOT = Path(__file__).resolve().parents[3]


def new(i: int, *, space: str = "default", function_id: str = "fn", subscription_id: str = "sub-1",
        system: bool = False) -> NewDelivery:
    return NewDelivery(space, function_id, subscription_id,
                       {"specversion": "1.0", "id": f"e{i}", "type": "user.created", "source": "/test",
                        "data": {"i": i, "text": "zé ✓"}}, system)


def batch(n: int, start: int = 0, **kw: object) -> list[NewDelivery]:
    return [new(i, **kw) for i in range(start, start + n)]  # type: ignore[arg-type]


def event_ids(deliveries: list[LeasedDelivery]) -> list[str]:
    return [d.event["id"] for d in deliveries]


async def lease_until(queue: DeliveryQueue, count: int, *, timeout: float = 5.0,
                      limit: int = 100) -> list[LeasedDelivery]:
    """Lease until ``count`` deliveries came (or ``timeout``)."""
    got: list[LeasedDelivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += await queue.lease(min(limit, count - len(got)), 0.2)
    return got


async def settle_dead_letters(queue: DeliveryQueue, space: str, count: int, **kw: object) -> list:
    """Dead letters of ``space`` once ``count`` are listed (a backend may show them a little later)."""
    deadline = time.monotonic() + 3.0
    while True:
        letters = await queue.dead_letters(space, **kw)  # type: ignore[arg-type]
        if len(letters) >= count or time.monotonic() > deadline:
            return letters
        await asyncio.sleep(0.05)


# -- enqueue, lease, ack --------------------------------------------------------------------------------


async def test_enqueue_lease_ack(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    await queue.enqueue([new(1), new(2, function_id="other", subscription_id="", system=True)])
    assert await queue.depth() == 2

    leased = await queue.lease(10, 0)
    assert sorted(event_ids(leased)) == ["e1", "e2"]
    by_event = {d.event["id"]: d for d in leased}
    first, second = by_event["e1"], by_event["e2"]
    assert (first.space, first.function_id, first.subscription_id, first.system) == ("default", "fn", "sub-1", False)
    assert first.event == new(1).event  # the JSON comes back as it went in, unicode included
    assert (second.function_id, second.subscription_id, second.system) == ("other", "", True)
    assert first.attempts == 0 and first.last_error is None
    assert first.id != second.id

    assert await queue.lease(10, 0) == []  # both leased: invisible
    assert await queue.depth() == 2  # leased still counts
    await queue.ack(first)
    assert await queue.depth() == 1
    await queue.ack(second)
    assert await queue.depth() == 0
    assert await queue.lease(10, 0.3) == []
    await queue.ack(first)  # acking twice is harmless
    assert await queue.depth() == 0


async def test_lease_takes_at_most_limit_oldest_first(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    for i in range(5):
        await queue.enqueue([new(i)])
    first = await queue.lease(2, 0)
    assert event_ids(first) == ["e0", "e1"]
    rest = await queue.lease(10, 0)
    assert event_ids(rest) == ["e2", "e3", "e4"]
    assert await queue.lease(0, 0) == []


async def test_an_empty_enqueue_stores_nothing(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    await queue.enqueue([])
    assert await queue.depth() == 0


async def test_lease_waits_and_is_woken_by_an_enqueue(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    started = time.monotonic()
    assert await queue.lease(10, 0.3) == []
    assert time.monotonic() - started >= 0.25  # it waited (a lower bound: no load makes it shorter)

    async def later() -> None:
        await asyncio.sleep(0.2)
        await queue.enqueue([new(7)])
    task = asyncio.create_task(later())
    # Woken by the enqueue: a lease that waited out its 60 s would trip the hang guard (not a timing claim).
    leased = await asyncio.wait_for(queue.lease(10, 60.0), 30)
    await task
    assert event_ids(leased) == ["e7"]


@pytest.mark.queue_needs("shared")
async def test_lease_sees_another_queue_objects_enqueue(queue_factory: QueueFactory) -> None:
    consumer, producer = await queue_factory(), await queue_factory()
    waiting = asyncio.create_task(consumer.lease(10, 60.0))
    await asyncio.sleep(0.2)
    await producer.enqueue([new(1)])
    leased = await asyncio.wait_for(waiting, 30)  # a poll, not the whole 60 s wait (a hang guard)
    assert event_ids(leased) == ["e1"]


# -- leases are exclusive ----------------------------------------------------------------------------------


async def test_concurrent_leases_on_one_queue_never_share_a_delivery(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(lease_seconds=30)
    await queue.enqueue(batch(200))
    results = await asyncio.gather(*(queue.lease(7, 0) for _ in range(40)))
    ids = [d.id for leased in results for d in leased]
    assert len(ids) == 200 and len(set(ids)) == 200


@pytest.mark.queue_needs("shared")
async def test_two_queue_objects_never_lease_one_delivery(queue_factory: QueueFactory) -> None:
    a, b = await queue_factory(lease_seconds=30), await queue_factory(lease_seconds=30)
    await a.enqueue(batch(300))

    async def drain(queue: DeliveryQueue) -> list[str]:
        got: list[str] = []
        while leased := await queue.lease(5, 0.3):
            got += [d.id for d in leased]
            for d in leased:
                await queue.ack(d)
            await asyncio.sleep(0)
        return got
    got_a, got_b = await asyncio.gather(drain(a), drain(b))
    assert not set(got_a) & set(got_b)
    assert len(got_a) + len(got_b) == 300 == len(set(got_a) | set(got_b))
    assert got_a and got_b  # both took part
    assert await a.depth() == 0


def worker(factory: QueueFactory, mode: str, **options: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.gateway.queue.lease_worker", factory.backend.name,
         json.dumps(factory.location), json.dumps(options), mode],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.queue_needs("shared")
async def test_a_second_process_never_leases_what_this_one_holds(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(lease_seconds=30)
    await queue.enqueue(batch(300))
    child = worker(queue_factory, "drain", lease_seconds=30)
    try:
        assert child.stdout is not None
        assert await asyncio.to_thread(child.stdout.readline) == "started\n"
        mine: list[str] = []
        while leased := await queue.lease(5, 0.5):
            mine += [d.id for d in leased]
            for d in leased:
                await queue.ack(d)
            await asyncio.sleep(0.01)
        # Read through the same text stream as readline above: it may already hold the child's first ids
        # (communicate(timeout=...) reads the raw pipe and would lose them).
        out = await asyncio.to_thread(child.stdout.read)
        await asyncio.to_thread(child.wait, 30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    theirs = out.split()
    assert child.returncode == 0
    assert not set(mine) & set(theirs)
    assert len(mine) + len(theirs) == 300 == len(set(mine) | set(theirs))
    assert mine and theirs, (len(mine), len(theirs))  # both processes leased some
    assert await queue.depth() == 0


@pytest.mark.queue_needs("shared", "expiring")
async def test_a_killed_processs_leases_expire_and_are_delivered_here(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    await queue.enqueue(batch(20))
    child = worker(queue_factory, "hold", lease_seconds=0.5)
    try:
        assert child.stdout is not None
        held = []
        while (line := await asyncio.to_thread(child.stdout.readline)) not in ("ready\n", ""):
            held.append(line.strip())
        assert len(held) == 20
        assert await queue.lease(100, 0) == []  # the child holds all of them
        child.send_signal(signal.SIGKILL)
        await asyncio.to_thread(child.wait)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    leased = await lease_until(queue, 20, timeout=3.0)
    assert sorted(d.id for d in leased) == sorted(held)
    assert sorted(event_ids(leased)) == sorted(d.event["id"] for d in batch(20))


# -- lease expiry, stale holders ---------------------------------------------------------------------------


@pytest.mark.queue_needs("expiring")
async def test_an_expired_lease_makes_the_delivery_leasable_again(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(lease_seconds=0.3)
    await queue.enqueue([new(1)])
    first = await queue.lease(10, 0)
    assert event_ids(first) == ["e1"]
    assert await queue.lease(10, 0.1) == []  # still leased
    again = await queue.lease(10, 2.0)  # waits for the expiry
    assert [d.id for d in again] == [first[0].id] and again[0].event == first[0].event
    await queue.ack(again[0])
    assert await queue.depth() == 0


@pytest.mark.queue_needs("expiring", "shared", "fenced")
async def test_a_stale_holder_changes_nothing(queue_factory: QueueFactory) -> None:
    # One lease time for both (a NATS consumer has one ack wait for every client).
    old, new_holder = await queue_factory(lease_seconds=0.6), await queue_factory(lease_seconds=0.6)
    await old.enqueue([new(1)])
    [stale] = await old.lease(10, 0)
    [current] = await lease_until(new_holder, 1, timeout=3.0)  # after old's lease expired
    assert current.id == stale.id

    await old.ack(stale)
    await old.retry(stale, delay=0, error="stale retry")
    await old.dead(stale, error="stale dead")
    assert await old.lease(10, 0) == []  # still held by the new holder, not made due by the stale retry
    assert await new_holder.depth() == 1
    assert await new_holder.dead_letters("default") == []

    await new_holder.retry(current, delay=0, error="real")
    [retried] = await lease_until(old, 1)
    assert retried.id == current.id and retried.last_error == "real"
    await old.ack(retried)
    assert await new_holder.depth() == 0


@pytest.mark.queue_needs("expiring", "fenced")
async def test_a_stale_holder_on_the_same_queue_changes_nothing(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(lease_seconds=0.3)
    await queue.enqueue([new(1)])
    [stale] = await queue.lease(10, 0)
    [current] = await lease_until(queue, 1, timeout=3.0)
    await queue.ack(stale)
    assert await queue.depth() == 1
    await queue.ack(current)
    assert await queue.depth() == 0


# -- retry ---------------------------------------------------------------------------------------------------


async def test_retry_is_due_after_its_delay_with_one_more_attempt(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(lease_seconds=30)
    await queue.enqueue([new(1)])
    [first] = await queue.lease(10, 0)
    await queue.retry(first, delay=0.5, error="HTTP 500")
    started = time.monotonic()
    assert await queue.lease(10, 0.25) == []  # not due before the delay
    [second] = await queue.lease(10, 3.0)
    waited = time.monotonic() - started
    assert 0.4 <= waited < 1.2, waited
    assert second.id == first.id and second.event == first.event
    assert second.attempts == 1 and second.last_error == "HTTP 500"
    assert second.first_attempt_at is not None and abs(second.first_attempt_at - time.time()) < 5
    assert await queue.depth() == 1  # waiting on a retry still counts

    await queue.retry(second, delay=0, error="timeout")
    [third] = await queue.lease(10, 2.0)
    assert third.attempts == 2 and third.last_error == "timeout"
    assert third.first_attempt_at == second.first_attempt_at
    await queue.ack(third)


async def test_a_retry_waiting_holds_back_nothing_else(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(lease_seconds=30)
    await queue.enqueue([new(1)])
    [slow] = await queue.lease(10, 0)
    await queue.retry(slow, delay=30, error="later")
    await queue.enqueue([new(2)])
    assert event_ids(await queue.lease(10, 1.0)) == ["e2"]


# -- dead letters --------------------------------------------------------------------------------------------


async def kill(queue: DeliveryQueue, deliveries: list[NewDelivery], error: str = "boom") -> list[LeasedDelivery]:
    """Enqueue ``deliveries``, fail each once with a retry, then make them dead letters."""
    await queue.enqueue(deliveries)
    leased = await lease_until(queue, len(deliveries))
    for d in leased:
        await queue.retry(d, delay=0, error="first")
    leased = await lease_until(queue, len(deliveries))
    for d in leased:
        await queue.dead(d, error=error)
    return leased


async def test_dead_letters_kept_listed_and_counted(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(lease_seconds=30)
    before = time.time()
    buried = await kill(queue, [new(1), new(2, function_id="other"), new(3, space="space-b")],
                        error="HTTP 503: down")
    assert await queue.depth() == 0  # dead letters are not deliveries
    assert await queue.lease(10, 0.2) == []

    letters = await settle_dead_letters(queue, "default", 2)
    assert sorted(letter.event["id"] for letter in letters) == ["e1", "e2"]
    one = next(letter for letter in letters if letter.event["id"] == "e1")
    assert one.id == next(d.id for d in buried if d.event["id"] == "e1")
    assert (one.space, one.function_id, one.subscription_id) == ("default", "fn", "sub-1")
    assert one.event == new(1).event
    assert one.attempts == 2 and one.last_error == "HTTP 503: down"
    assert before - 1 <= one.first_attempt_at <= one.last_attempt_at <= time.time() + 1
    shape = one.to_json()
    assert set(shape) == {"id", "functionId", "subscriptionId", "event", "attempts", "lastError",
                          "firstAttemptAt", "lastAttemptAt"}
    assert shape["lastAttemptAt"].endswith("Z")

    assert [x.event["id"] for x in await queue.dead_letters("default", "other")] == ["e2"]
    assert [x.event["id"] for x in await queue.dead_letters("space-b")] == ["e3"]
    assert await queue.dead_letters("default", "nobody") == []
    assert await queue.dead_letters("no-such-space") == []
    assert len(await queue.dead_letters("default", limit=1)) == 1
    assert await queue.dead_counts() == {("default", "fn"): 1, ("default", "other"): 1, ("space-b", "fn"): 1}


async def test_dead_letters_oldest_first(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(lease_seconds=30)
    for i in range(3):
        await kill(queue, [new(i)])
        await asyncio.sleep(0.01)
    letters = await settle_dead_letters(queue, "default", 3)
    assert [x.event["id"] for x in letters] == ["e0", "e1", "e2"]


async def test_redeliver_one_with_a_fresh_count(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(lease_seconds=30)
    await kill(queue, [new(1), new(2)])
    letters = await settle_dead_letters(queue, "default", 2)
    target = next(x for x in letters if x.event["id"] == "e1")

    assert await queue.redeliver("space-b", id=target.id) == 0  # another space's id: nothing
    assert await queue.redeliver("default", id=target.id) == 1
    [again] = await lease_until(queue, 1)
    assert again.event == target.event and again.attempts == 0 and again.last_error is None
    assert [x.event["id"] for x in await queue.dead_letters("default")] == ["e2"]
    assert await queue.redeliver("default", id=target.id) == 0  # not a dead letter any more
    await queue.ack(again)
    assert await queue.dead_counts() == {("default", "fn"): 1}


async def test_redeliver_all_of_a_function(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(lease_seconds=30)
    await kill(queue, batch(3) + [new(9, function_id="other"), new(8, space="space-b")])
    await settle_dead_letters(queue, "default", 4)
    assert await queue.redeliver("default", function_id="nobody") == 0
    assert await queue.redeliver("default", function_id="fn") == 3
    leased = await lease_until(queue, 3)
    assert sorted(event_ids(leased)) == ["e0", "e1", "e2"] and {d.attempts for d in leased} == {0}
    assert await queue.lease(10, 0.2) == []
    assert [x.event["id"] for x in await queue.dead_letters("default")] == ["e9"]
    assert [x.event["id"] for x in await queue.dead_letters("space-b")] == ["e8"]


async def test_delete_dead(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(lease_seconds=30)
    await kill(queue, [new(1), new(2)])
    letters = await settle_dead_letters(queue, "default", 2)
    assert await queue.delete_dead("space-b", letters[0].id) is False
    assert await queue.delete_dead("default", letters[0].id) is True
    assert await queue.delete_dead("default", letters[0].id) is False
    assert [x.id for x in await queue.dead_letters("default")] == [letters[1].id]
    assert await queue.dead_counts() == {("default", "fn"): 1}


HOSTILE_IDS = ["", "x", "'; DROP TABLE dead_letters; --", "%", "*", ">", "a.b.c", "0" * 10_000,
               "../../etc/passwd", "é" * 32, "\x00" * 32]


async def test_hostile_ids_and_filters_find_nothing_and_break_nothing(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(lease_seconds=30)
    await kill(queue, [new(1)])
    [letter] = await settle_dead_letters(queue, "default", 1)
    for hostile in HOSTILE_IDS + [letter.id.upper(), letter.id + "0", letter.id[:-1]]:
        assert await queue.delete_dead("default", hostile) is False, hostile
        assert await queue.redeliver("default", id=hostile) == 0, hostile
    for hostile in ["%", "*", ">", "default.*", "x" * 100_000, "' OR 1=1 --"]:
        assert await queue.dead_letters(hostile) == []
        assert await queue.dead_letters("default", hostile) == []
        assert await queue.redeliver(hostile, function_id="fn") == 0
        assert await queue.redeliver("default", function_id=hostile) == 0
    assert [x.id for x in await queue.dead_letters("default")] == [letter.id]  # still there, untouched


async def test_limits_are_capped(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(lease_seconds=30)
    await queue.enqueue(batch(1100))
    leased = await queue.lease(1_000_000, 0)
    assert 0 < len(leased) <= MAX_LIMIT
    assert await queue.lease(-5, 0) == []


async def test_dead_letter_listing_and_error_texts_are_capped(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(lease_seconds=30)
    await queue.enqueue(batch(MAX_LIMIT + 5))
    leased = await lease_until(queue, MAX_LIMIT + 5, limit=MAX_LIMIT)
    huge = "e" * (MAX_ERROR_CHARS * 50)
    await queue.retry(leased[0], delay=0, error=huge)
    [again] = await lease_until(queue, 1)
    assert again.last_error == "e" * MAX_ERROR_CHARS
    await asyncio.gather(*(queue.dead(d, error=huge) for d in [again, *leased[1:]]))
    letters = await settle_dead_letters(queue, "default", MAX_LIMIT, limit=1_000_000)
    assert len(letters) == MAX_LIMIT
    assert {letter.last_error for letter in letters} == {"e" * MAX_ERROR_CHARS}
    assert await queue.dead_letters("default", limit=-1) == []


# -- the bound -------------------------------------------------------------------------------------------------


async def test_queue_full_refuses_the_whole_batch(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(max_events=5, lease_seconds=30)
    await queue.enqueue(batch(3))
    with pytest.raises(QueueFull) as refused:
        await queue.enqueue(batch(3, start=10))
    message = str(refused.value)
    assert "--queue-max-events" in message and "5" in message
    assert await queue.depth() == 3  # nothing of the refused batch stored
    leased = await queue.lease(10, 0)
    assert sorted(event_ids(leased)) == ["e0", "e1", "e2"]

    await queue.enqueue(batch(2, start=20))  # exactly at the bound
    with pytest.raises(QueueFull):
        await queue.enqueue([new(30)])
    for d in leased:
        await queue.ack(d)
    await queue.enqueue(batch(3, start=40))  # room again
    assert await queue.depth() == 5


async def test_dead_letters_do_not_count_toward_the_bound(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(max_events=2, lease_seconds=30)
    await kill(queue, batch(2))
    await settle_dead_letters(queue, "default", 2)
    await queue.enqueue(batch(2, start=10))
    assert await queue.depth() == 2


async def test_concurrent_enqueues_at_the_bound_store_exactly_the_bound(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(max_events=10, lease_seconds=30)
    results = await asyncio.gather(*(queue.enqueue([new(i)]) for i in range(25)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, QueueFull)]
    assert len(refused) == 15 and results.count(None) == 10
    assert await queue.depth() == 10
    assert len(await lease_until(queue, 10)) == 10


async def test_1000_concurrent_enqueues_are_each_leased_exactly_once(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(lease_seconds=30)
    await asyncio.gather(*(queue.enqueue([new(i)]) for i in range(1000)))
    assert await queue.depth() == 1000

    seen: Counter[str] = Counter()

    async def consume() -> None:
        while leased := await queue.lease(50, 0.3):
            for d in leased:
                seen[d.event["id"]] += 1
                await queue.ack(d)
    await asyncio.gather(*(consume() for _ in range(4)))
    assert len(seen) == 1000 and set(seen.values()) == {1}
    assert await queue.depth() == 0


# -- durability -------------------------------------------------------------------------------------------------


@pytest.mark.queue_needs("durable")
async def test_deliveries_and_dead_letters_survive_close_and_reopen(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(lease_seconds=0.3)
    assert queue.durable is True
    await kill(queue, [new(1)])
    await settle_dead_letters(queue, "default", 1)
    await queue.enqueue(batch(3, start=10))
    [held] = await queue.lease(1, 0)  # leased, never acked: delivered again after the lease
    await queue.close()

    reopened = await queue_factory(lease_seconds=0.3)
    seen: set[str] = set()
    deadline = time.monotonic() + 5.0
    while len(seen) < 3 and time.monotonic() < deadline:
        for d in await reopened.lease(10, 0.2):
            seen.add(d.event["id"])
            if d.id == held.id:
                seen.add("held")
            await reopened.ack(d)
    assert seen == {"e10", "e11", "e12", "held"}
    assert [x.event["id"] for x in await reopened.dead_letters("default")] == ["e1"]


async def test_a_closed_queue_takes_nothing(queue_factory: QueueFactory, request: pytest.FixtureRequest) -> None:
    """After close nothing can deliver an enqueued event: taking it would be a 202 nobody keeps."""
    queue = await queue_factory()
    await queue.close()
    with pytest.raises(QueueUnavailable):
        await queue.enqueue([new(1)])


# -- SQLite only --------------------------------------------------------------------------------------------------


async def test_sqlite_refuses_a_newer_schema_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    queue = SqliteQueue(path)
    await queue.start()
    await queue.enqueue([new(1)])
    await queue.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    again = SqliteQueue(path)
    with pytest.raises(QueueUnavailable) as refused:
        await again.start()
    assert str(path) in str(refused.value) and "99" in str(refused.value)
    with pytest.raises(QueueUnavailable):
        await again.enqueue([new(2)])
    await again.close()
    with sqlite3.connect(path) as db:  # left as it was
        assert db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 1


async def test_sqlite_unopenable_file_is_unavailable_then_recovers(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    queue = SqliteQueue(blocker / "queue.db")
    with pytest.raises(QueueUnavailable) as refused:
        await queue.start()
    assert str(blocker / "queue.db") in str(refused.value)
    with pytest.raises(QueueUnavailable):
        await queue.enqueue([new(1)])
    blocker.unlink()  # the operator fixes it: the next enqueue (a second later) opens the file
    await asyncio.sleep(1.05)
    await queue.enqueue([new(1)])
    assert await queue.depth() == 1
    await queue.close()


async def test_sqlite_full_disk_is_unavailable_and_stores_no_half_batch(tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "queue.db")
    await queue.start()
    await queue.enqueue([new(0)])
    # SQLITE_FULL, as a full disk gives it: the writer's connection may not grow the file any more.
    pages = await queue._submit(lambda db, txn: db.execute("PRAGMA page_count").fetchone()[0])
    await queue._submit(lambda db, txn: db.execute(f"PRAGMA max_page_count = {pages + 2}"))
    big = [NewDelivery("default", "fn", "s", {"id": f"big{i}", "data": "x" * 4000}) for i in range(20)]
    with pytest.raises(QueueUnavailable) as refused:
        await queue.enqueue(big)
    assert "full" in str(refused.value)
    assert await queue.depth() == 1
    await queue._submit(lambda db, txn: db.execute("PRAGMA max_page_count = 1073741823"))
    await queue.enqueue(big)  # space again: works again
    assert await queue.depth() == 21
    await queue.close()


async def test_sqlite_a_cancelled_lease_gives_its_rows_back(tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "queue.db", lease_seconds=30)
    await queue.start()
    await queue.enqueue(batch(5))
    for _ in range(20):  # cancelled while the writer takes the lease: nothing stays hidden for 30 s
        task = asyncio.create_task(queue.lease(10, 0))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    leased = await lease_until(queue, 5, timeout=1.0)
    assert sorted(event_ids(leased)) == [f"e{i}" for i in range(5)]
    await queue.close()


async def test_sqlite_close_wakes_a_waiting_lease(tmp_path: Path) -> None:
    """A lease waiting (up to 60 s) on an empty queue when the queue closes returns nothing at once, rather
    than finishing its poll and failing on the closed file."""
    queue = SqliteQueue(tmp_path / "queue.db")
    await queue.start()
    waiting = asyncio.create_task(queue.lease(10, 60))
    commits = queue.commits
    while queue.commits == commits:  # its take ran: it waits now
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await asyncio.wait_for(queue.close(), 10)  # hang guards, not timings: the lease would wait 60 s
    assert await asyncio.wait_for(waiting, 10) == []


async def test_sqlite_a_lease_cancelled_right_before_a_close_leaves_nothing_leased_by_no_one(tmp_path: Path) -> None:
    """What ``lease_cancel_safe`` promises, and the delivery worker's prompt stop relies on: a lease cancelled
    at any moment (before its take ran, while it ran, after its rows came back, while it waited), the queue
    closed at once, reopened: every delivery can be leased at once (a lease of 300 s left behind by no one
    would hide it)."""
    path = tmp_path / "queue.db"
    queue = SqliteQueue(path, lease_seconds=300)
    assert queue.lease_cancel_safe
    await queue.start()
    await queue.enqueue(batch(5))
    await queue.close()
    cancelled_too_late = 0
    for round in range(24):
        queue = SqliteQueue(path, lease_seconds=300)
        await queue.start()
        task = asyncio.create_task(queue.lease(10, 60))
        for _ in range(round % 6):
            await asyncio.sleep(0)
        if round >= 12:
            await asyncio.sleep(0.001 * (round - 11))  # later: the writer's commit, the settle, the wait
        if task.done():  # it got its rows before the cancel: a holder, who hands them back
            cancelled_too_late += 1
            for delivery in task.result():
                await queue.retry(delivery, delay=0, error="handed back")
        else:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await queue.close()
    assert cancelled_too_late < 24  # the cancel did hit leases under way
    queue = SqliteQueue(path, lease_seconds=300)
    await queue.start()
    try:
        assert sorted(event_ids(await queue.lease(10, 0))) == [f"e{i}" for i in range(5)]
    finally:
        await queue.close()


async def test_sqlite_a_stopping_delivery_worker_does_not_wait_out_its_lease(tmp_path: Path) -> None:
    """The real delivery worker on a SQLite queue, its lease waiting up to 60 s for a delivery: its drain
    (and a close) returns at once instead of letting the lease run out; a delivery enqueued afterwards
    is leasable at once by the next holder."""
    from gateway.config.view import ConfigView
    from gateway.metrics import Metrics
    from gateway.pipeline import EventPlane
    from gateway.pipeline.delivery_worker import DeliveryWorker
    from gateway.plugins.manager import PluginManager
    from gateway.store.memory import MemoryStore

    store = MemoryStore()
    await store.open()
    metrics = Metrics()
    view = ConfigView(store, metrics)
    await view.start()
    plugins = PluginManager(view=view, metrics=metrics, plugin_paths=[])
    await plugins.start()
    queue = SqliteQueue(tmp_path / "queue.db", lease_seconds=300)
    plane = EventPlane(view, plugins, metrics, queue=queue)  # not started: its worker is replaced below
    try:
        await queue.start()
        for stop in ("drain", "close"):
            worker = DeliveryWorker(queue, view, plugins, plane.invoker, plane.emitter, metrics, workers=4,
                                    lease_wait=60)
            await worker.start()
            commits = queue.commits
            while queue.commits == commits:  # its first take ran: the lease waits now
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            if stop == "drain":
                assert await asyncio.wait_for(worker.drain(30), 10)  # hang guard: the lease would wait 60 s
            await asyncio.wait_for(worker.close(), 10)
        await queue.enqueue(batch(3))
        assert sorted(event_ids(await queue.lease(10, 0))) == ["e0", "e1", "e2"]
    finally:
        await plane.providers.close()
        await queue.close()
        await plugins.close()
        await view.close()
        await store.close()


async def test_sqlite_group_commit_shares_transactions(tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "queue.db")
    await queue.start()
    before = queue.commits
    for i in range(20):  # one caller: one transaction per enqueue
        await queue.enqueue([new(i)])
    assert queue.commits - before == 20

    before = queue.commits

    async def caller(c: int) -> None:
        for i in range(20):
            await queue.enqueue([new(c * 100 + i)])
    await asyncio.gather(*(caller(c) for c in range(32)))
    assert await queue.depth() == 660
    assert queue.commits - before < 640 / 4, queue.commits - before  # concurrent callers share commits
    await queue.close()
