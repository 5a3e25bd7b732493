"""What only the memory queue does (the protocol itself is the conformance suite's, test_backends.py):
its dead letters are bounded, oldest dropped and counted; closing it forgets what it holds."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.queue.base import NewDelivery, QueueFull
from gateway.queue.memory import MemoryQueue


def _new(n: int, function_id: str = "fn") -> NewDelivery:
    return NewDelivery("space", function_id, "sub", {"id": str(n)})


async def test_dead_letters_beyond_the_bound_drop_the_oldest_counted_and_logged(caplog) -> None:
    queue = MemoryQueue(10, max_dead=3)
    await queue.enqueue([_new(n) for n in range(5)])
    with caplog.at_level(logging.WARNING, "gateway.queue.memory"):
        for delivery in await queue.lease(10, 0):
            await queue.dead(delivery, error=f"failed {delivery.event['id']}")
    letters = await queue.dead_letters("space")
    assert [letter.event["id"] for letter in letters] == ["2", "3", "4"]
    assert queue.dead_dropped == 2 and await queue.dead_counts() == {("space", "fn"): 3}
    # Logged once (then at most once a minute), with the count.
    assert [r.getMessage() for r in caplog.records] == [
        "memory queue: 1 dead letter(s) dropped, oldest first, to keep at most 3 (1 dropped since start)"]
    await queue.close()


async def test_the_bound_counts_waiting_leased_and_retrying_deliveries() -> None:
    queue = MemoryQueue(3)
    await queue.enqueue([_new(1), _new(2)])
    first, second = await queue.lease(2, 0)
    await queue.retry(first, delay=30, error="later")  # waiting on a timer: still held
    await queue.enqueue([_new(3)])  # 3 held now
    with pytest.raises(QueueFull, match="--queue-max-events 3"):
        await queue.enqueue([_new(4)])
    await queue.ack(second)
    await queue.enqueue([_new(4)])
    assert await queue.depth() == 3
    await queue.close()
    assert await queue.depth() == 0 and await queue.lease(1, 0) == []


async def test_a_system_delivery_redelivered_from_the_dead_letters_stays_a_system_delivery() -> None:
    queue = MemoryQueue(10)
    await queue.enqueue([NewDelivery("space", "fn", "", {"type": "eventgateway.event.received"}, system=True)])
    (delivery,) = await queue.lease(1, 0)
    await queue.dead(delivery, error="down")
    assert await queue.redeliver("space", id=delivery.id) == 1
    (again,) = await queue.lease(1, 0)
    assert (again.id, again.system, again.attempts) == (delivery.id, True, 0)
    await queue.close()


async def test_a_cancelled_lease_leaves_nothing_leased_by_no_one() -> None:
    # What lease_cancel_safe promises (the delivery worker cancels a waiting lease when it stops): a lease
    # cancelled while it waits took nothing; one woken by an enqueue and cancelled before it ran again
    # either took nothing or returns what it took (asyncio.wait_for may finish instead of raising).
    queue = MemoryQueue(10)
    assert queue.lease_cancel_safe
    idle = asyncio.create_task(queue.lease(5, 30))
    await asyncio.sleep(0.01)
    idle.cancel()
    with pytest.raises(asyncio.CancelledError):
        await idle
    woken = asyncio.create_task(queue.lease(5, 30))
    await asyncio.sleep(0.01)
    await queue.enqueue([_new(1)])
    woken.cancel()
    try:
        took = await woken
    except asyncio.CancelledError:
        took = []
    again = await queue.lease(5, 0)
    assert [d.event for d in took + again] == [{"id": "1"}]
    await queue.close()
