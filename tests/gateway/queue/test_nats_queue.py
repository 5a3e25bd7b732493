"""`NatsQueue` against a real ``nats-server -js`` (tests/nats_server.py): what only a NATS queue does.

- NATS stopped (SIGTERM or SIGKILL): ``enqueue`` raises QueueUnavailable (no hang; how fast is not a
  test's business), ``lease`` returns nothing after its wait; started again on the same store: works again by itself and every delivery
  accepted before the stop is still there; a server that stops answering (SIGSTOP) costs an enqueue its
  PubAck timeout; a server that comes back empty gets its stream, consumer and buckets back;
- two clients share the one durable consumer: each delivery leased by one; a client that leased and died
  (closed without acking) -> the other gets the deliveries after the lease, with one attempt counted;
- the stream over ``max_events``: QueueFull, and a batch refused in part is taken back whole;
- an existing stream or consumer with settings the queue cannot use: a clear error, left as it is;
- hostile dead-letter ids, spaces and function ids reach no other key (NATS wildcards are data).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import nats
import pytest
from nats.js import api

from gateway.queue.base import NewDelivery, QueueError, QueueFull, QueueUnavailable
from gateway.queue.nats import NatsQueue, NatsQueueConfigError, key_token, parse_key_token
from tests.nats_server import NatsServer, queue_names

pytestmark = pytest.mark.nats


def deliveries(n: int, *, space: str = "space-a", function_id: str = "fn", tag: str = "e") -> list[NewDelivery]:
    return [NewDelivery(space, function_id, "sub-1", {"id": f"{tag}{i}", "data": {"i": i}}) for i in range(n)]


def new_queue(server: NatsServer, names: dict[str, Any], **kw: Any) -> NatsQueue:
    options: dict[str, Any] = {"max_events": 10_000, "lease_seconds": 30.0, "request_timeout": 1.0,
                               "connect_timeout": 1.0}
    options.update(kw)
    return NatsQueue([server.url], **names, **options)


async def lease_all(queue: NatsQueue, expected: int, *, timeout: float = 10.0) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        got += await queue.lease(100, 0.2)
    return got


async def until_enqueued(queue: NatsQueue, batch: list[NewDelivery], timeout: float = 15.0) -> float:
    """Enqueue ``batch`` as soon as the queue takes it; how long that took."""
    start = time.monotonic()
    while True:
        try:
            await queue.enqueue(batch)
            return time.monotonic() - start
        except QueueUnavailable:
            if time.monotonic() - start > timeout:
                raise
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_nats_down_is_unavailable_fast_and_back_with_everything(
        nats_factory: Callable[[], NatsServer], how: str) -> None:
    server = nats_factory()
    names = queue_names()
    queue = new_queue(server, names)
    await queue.start()
    before = deliveries(40, tag="before")
    await queue.enqueue(before[:20])
    await queue.enqueue(before[20:])
    leased_before = await queue.lease(5, 1.0)  # five of them held (not acked) across the outage
    assert len(leased_before) == 5
    server.stop() if how == "stop" else server.kill()
    await asyncio.sleep(0.2)  # the client sees the closed socket

    for _ in range(3):
        start = time.monotonic()
        with pytest.raises(QueueUnavailable, match="NATS at nats://127.0.0.1"):
            await queue.enqueue(deliveries(3, tag="refused"))
        assert time.monotonic() - start < 15  # a hang guard (10x), not a speed claim
    start = time.monotonic()
    assert await queue.lease(10, 0.3) == []
    assert time.monotonic() - start < 15
    with pytest.raises(QueueUnavailable):
        await queue.depth()

    server.start()  # same port, same store
    await until_enqueued(queue, deliveries(2, tag="after"))  # back by itself (until_enqueued's 15 s guard)
    # Everything accepted before the outage is there.
    assert await queue.depth() == 42
    held = {d.event["id"] for d in leased_before}
    # The five leased ones stay leased to us across a clean stop; a SIGKILLed server may have lost that
    # (the consumer's state is written behind the stream) and deliver them again: at least once.
    got = await lease_all(queue, 37 if how == "stop" else 42, timeout=3.0)
    ids = {d.event["id"] for d in got}
    assert ids | held == {f"before{i}" for i in range(40)} | {"after0", "after1"}
    if how == "stop":
        assert not ids & held and len(got) == 37
    assert not any(d.event["id"].startswith("refused") for d in got)
    for d in got:
        await queue.ack(d)
    for d in leased_before:
        await queue.ack(d)  # the lease outlived the outage: still ours to ack (or already acked again)
    assert await queue.depth() == 0
    await queue.close()


async def test_hung_nats_costs_the_pubak_timeout(nats_factory: Callable[[], NatsServer]) -> None:
    server = nats_factory()
    names = queue_names()
    queue = new_queue(server, names, request_timeout=0.8)
    await queue.start()
    await queue.enqueue(deliveries(3))
    server.pause()
    try:
        start = time.monotonic()
        with pytest.raises(QueueUnavailable, match="did not confirm"):
            await queue.enqueue(deliveries(5, tag="hung"))
        assert time.monotonic() - start > 0.7  # it waited for the PubAck (0.8 s), bounded by the guard below
        assert time.monotonic() - start < 20  # a hang guard (10x), not a speed claim
        start = time.monotonic()
        assert await queue.lease(10, 0.3) == []
        assert time.monotonic() - start < 20
    finally:
        server.resume()
    await until_enqueued(queue, deliveries(1, tag="after"))
    got = await lease_all(queue, 4)
    assert {d.event["id"] for d in got} >= {"e0", "e1", "e2", "after0"}
    await queue.close()


async def test_server_back_empty_gets_its_stream_again(nats_factory: Callable[[], NatsServer]) -> None:
    import shutil

    server = nats_factory()
    queue = new_queue(server, queue_names())
    await queue.start()
    await queue.enqueue(deliveries(2))
    server.stop()
    shutil.rmtree(server.directory / "store")
    server.start()
    await until_enqueued(queue, deliveries(3, tag="again"))
    got = await lease_all(queue, 3)
    assert sorted(d.event["id"] for d in got) == ["again0", "again1", "again2"]
    await queue.close()


async def test_a_queue_started_while_nats_is_down_starts_later(nats_factory: Callable[[], NatsServer]) -> None:
    server = nats_factory()
    server.stop()
    queue = new_queue(server, queue_names())
    start = time.monotonic()
    with pytest.raises(QueueUnavailable, match="unreachable"):
        await queue.start()
    assert time.monotonic() - start < 25  # a hang guard (10x), not a speed claim
    with pytest.raises(QueueUnavailable):
        await queue.enqueue(deliveries(1))
    assert await queue.lease(1, 0.1) == []
    server.start()
    await until_enqueued(queue, deliveries(1))
    assert len(await lease_all(queue, 1)) == 1
    await queue.close()


async def test_two_clients_share_the_consumer(nats_server: NatsServer) -> None:
    names = queue_names()
    a, b = new_queue(nats_server, names), new_queue(nats_server, names)
    await a.start()
    await b.start()
    await a.enqueue(deliveries(30, tag="a"))
    await b.enqueue(deliveries(30, tag="b"))
    first = await a.lease(10, 1.0)
    assert len(first) == 10
    seen_a: list[Any] = list(first)
    seen_b: list[Any] = []

    async def drain(queue: NatsQueue, into: list[Any]) -> None:
        deadline = time.monotonic() + 10
        while len(seen_a) + len(seen_b) < 60 and time.monotonic() < deadline:
            into += await queue.lease(3, 0.1)

    await asyncio.gather(drain(a, seen_a), drain(b, seen_b))
    ids = [d.id for d in seen_a + seen_b]
    assert len(ids) == 60 and len(set(ids)) == 60  # each delivery leased by one client, once
    assert {d.event["id"] for d in seen_a + seen_b} == {f"{t}{i}" for t in "ab" for i in range(30)}
    assert seen_b, "the second client got nothing: the consumer is not shared"
    assert all(d.attempts == 0 for d in seen_a + seen_b)
    await asyncio.gather(*(a.ack(d) for d in seen_a), *(b.ack(d) for d in seen_b))
    assert await a.depth() == 0
    await a.close()
    await b.close()


async def test_a_client_that_died_holding_leases_is_redelivered_to_the_other(nats_server: NatsServer) -> None:
    names = queue_names()
    dying, survivor = new_queue(nats_server, names, lease_seconds=1.0), new_queue(nats_server, names, lease_seconds=1.0)
    await dying.start()
    await survivor.start()
    await dying.enqueue(deliveries(4))
    held = await dying.lease(10, 1.0)
    assert len(held) == 4
    await dying.close()  # no ack, no retry: as a SIGKILLed gateway
    start = time.monotonic()
    assert await survivor.lease(10, 0.3) == []  # still leased
    got = await lease_all(survivor, 4, timeout=30)  # a hang guard
    assert time.monotonic() - start > 0.6  # not before the dead client's 1 s lease ran out
    assert sorted(d.id for d in got) == sorted(d.id for d in held)
    assert all(d.attempts == 1 for d in got)  # the dead client's attempt counts
    assert all(d.first_attempt_at is not None for d in got)
    assert {d.event["id"] for d in got} == {d.event["id"] for d in held}
    for d in got:
        await survivor.ack(d)
    assert await survivor.depth() == 0
    await survivor.close()


async def test_full_queue_refuses_the_whole_batch(nats_server: NatsServer) -> None:
    queue = new_queue(nats_server, queue_names(), max_events=5)
    await queue.enqueue(deliveries(3))
    with pytest.raises(QueueFull, match="--queue-max-events"):
        await queue.enqueue(deliveries(4, tag="over"))  # two would fit: none is kept
    assert await queue.depth() == 3
    await queue.enqueue(deliveries(2, tag="fits"))
    got = await lease_all(queue, 5)
    assert sorted(d.event["id"] for d in got) == ["e0", "e1", "e2", "fits0", "fits1"]
    await queue.ack(got[0])
    await queue.enqueue(deliveries(1, tag="room"))  # an ack makes room
    await queue.close()


async def test_an_event_over_max_payload_is_refused_clearly(nats_server: NatsServer) -> None:
    queue = new_queue(nats_server, queue_names())
    big = NewDelivery("space-a", "fn", "", {"id": "big", "data": "x" * (9 * 1024 * 1024)})
    with pytest.raises(QueueError, match="max_payload"):
        await queue.enqueue([big])
    assert await queue.depth() == 0
    await queue.enqueue([NewDelivery("space-a", "fn", "", {"id": "six", "data": "x" * (6 * 1024 * 1024)})])
    got = await lease_all(queue, 1)
    assert len(got[0].event["data"]) == 6 * 1024 * 1024
    await queue.close()


async def test_settings_changed_compatibly_are_applied(nats_server: NatsServer) -> None:
    names = queue_names()
    first = new_queue(nats_server, names, max_events=10, lease_seconds=5.0)
    await first.start()
    second = new_queue(nats_server, names, max_events=20, lease_seconds=7.0)
    await second.start()
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        assert (await js.stream_info(names["stream"])).config.max_msgs == 20
        assert (await js.consumer_info(names["stream"], names["consumer"])).config.ack_wait == 7.0
    finally:
        await nc.close()
    await first.close()
    await second.close()


async def test_an_incompatible_stream_is_a_clear_error_and_left_alone(nats_server: NatsServer) -> None:
    names = queue_names()
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(api.StreamConfig(name=names["stream"], subjects=[names["subject"]],
                                             retention=api.RetentionPolicy.LIMITS, storage=api.StorageType.MEMORY))
        await js.publish(names["subject"], b"someone else's")
        queue = new_queue(nats_server, names)
        with pytest.raises(NatsQueueConfigError, match=r"retention limits \(needs workqueue\).*storage memory"):
            await queue.start()
        with pytest.raises(QueueUnavailable, match="retention"):
            await queue.enqueue(deliveries(1))
        info = await js.stream_info(names["stream"])
        assert info.config.retention == api.RetentionPolicy.LIMITS and info.state.messages == 1
        await queue.close()

        names2 = queue_names()
        await js.add_stream(api.StreamConfig(name=names2["stream"], subjects=[names2["subject"]],
                                             retention=api.RetentionPolicy.WORK_QUEUE))
        await js.add_consumer(names2["stream"], api.ConsumerConfig(
            durable_name=names2["consumer"], deliver_subject="somewhere", ack_policy=api.AckPolicy.EXPLICIT))
        queue = new_queue(nats_server, names2)
        with pytest.raises(NatsQueueConfigError, match="push consumer"):
            await queue.start()
        await queue.close()
    finally:
        await nc.close()


async def test_messages_that_are_not_deliveries_are_dropped(nats_server: NatsServer) -> None:
    names = queue_names()
    queue = new_queue(nats_server, names)
    await queue.start()
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        for junk in (b"not json", b"[]", b'{"id": "x.y", "space": "s", "functionId": "f", "subscriptionId": "",'
                     b' "event": {}, "system": false}', b'{"id": "ok"}'):
            await js.publish(names["subject"], junk)
    finally:
        await nc.close()
    await queue.enqueue(deliveries(1))
    got = await lease_all(queue, 1)
    assert [d.event["id"] for d in got] == ["e0"]
    await queue.ack(got[0])
    assert await queue.depth() == 0
    await queue.close()


def test_key_tokens_round_trip_and_hold_no_separator() -> None:
    rng = random.Random(14)
    samples = ["", "=", "a.b", "a=2Eb", "*", ">", "space-a", "é∂ ✓", "$KV.x", "a/b", "..", "=3D"]
    samples += ["".join(rng.choice("ab.=*>-_/ é") for _ in range(rng.randint(0, 12))) for _ in range(500)]
    tokens: dict[str, str] = {}
    for text in samples:
        token = key_token(text)
        assert token and all(c.isascii() and (c.isalnum() or c in "-_=") for c in token), token
        assert parse_key_token(token) == text
        assert tokens.setdefault(token, text) == text  # one token, one text


async def test_hostile_dead_letter_names_reach_nothing_else(nats_server: NatsServer) -> None:
    queue = new_queue(nats_server, queue_names())
    spaces = ["space-a", "space-a.fn", "space-a.>", "*"]
    for space in spaces:
        await queue.enqueue([NewDelivery(space, "fn", "", {"id": space})])
    got = await lease_all(queue, len(spaces))
    for d in got:
        await queue.dead(d, error=f"failed in {d.space}")
    for space in spaces:
        letters = await queue.dead_letters(space)
        assert [(dl.space, dl.event["id"]) for dl in letters] == [(space, space)]
    assert await queue.dead_letters("space-a", function_id="*") == []
    assert await queue.dead_letters("space-a", function_id=">") == []
    assert await queue.dead_letters(">") == []
    assert await queue.dead_letters("x" * 5000) == []
    target = next(d for d in got if d.space == "space-a")
    for hostile in ["*", ">", f"{target.id}.x", "", "a b", "../" + target.id, target.id + "\r\nPUB x 1", "é"]:
        assert await queue.delete_dead("space-a", hostile) is False
        assert await queue.redeliver("space-a", id=hostile) == 0
    assert await queue.delete_dead("space-a.fn", target.id) is False  # another space's id
    assert await queue.redeliver("space-a", function_id="*") == 0
    counts = await queue.dead_counts()
    assert counts == {(space, "fn"): 1 for space in spaces}
    assert await queue.delete_dead("space-a", target.id) is True
    assert await queue.delete_dead("space-a", target.id) is False
    assert (await queue.dead_counts()).get(("space-a", "fn")) is None
    await queue.close()


async def test_redeliver_right_after_dying_is_not_taken_for_a_duplicate(nats_server: NatsServer) -> None:
    """The delivery keeps its id; its Nats-Msg-Id must not, or JetStream's 2-minute de-duplication window
    would swallow a redelivery made soon after the first publish."""
    queue = new_queue(nats_server, queue_names())
    await queue.enqueue(deliveries(1))
    [d] = await lease_all(queue, 1)
    await queue.retry(d, delay=0, error="first")
    [d] = await lease_all(queue, 1)
    assert (d.attempts, d.last_error) == (1, "first")
    await queue.dead(d, error="second")
    [letter] = await queue.dead_letters("space-a")
    assert (letter.id, letter.attempts, letter.last_error) == (d.id, 2, "second")
    assert letter.first_attempt_at <= letter.last_attempt_at
    assert await queue.redeliver("space-a", id=d.id) == 1
    [again] = await lease_all(queue, 1)
    assert (again.id, again.attempts, again.last_error, again.event) == (d.id, 0, None, d.event)
    assert await queue.dead_letters("space-a") == []
    await queue.ack(again)
    assert await queue.depth() == 0
    await queue.close()


async def test_redeliver_a_function_s_dead_letters(nats_server: NatsServer) -> None:
    queue = new_queue(nats_server, queue_names())
    await queue.enqueue(deliveries(3, function_id="fn.a", tag="a") + deliveries(2, function_id="fn-b", tag="b"))
    for d in await lease_all(queue, 5):
        await queue.dead(d, error="down")
    assert await queue.dead_counts() == {("space-a", "fn.a"): 3, ("space-a", "fn-b"): 2}
    a_letters = await queue.dead_letters("space-a", function_id="fn.a")
    assert sorted(dl.event["id"] for dl in a_letters) == ["a0", "a1", "a2"]
    assert len(await queue.dead_letters("space-a", limit=4)) == 4
    b_id = (await queue.dead_letters("space-a", function_id="fn-b"))[0].id
    assert await queue.redeliver("space-a", id=b_id, function_id="fn.a") == 0  # id and function must both match
    assert await queue.redeliver("space-a", function_id="fn.a") == 3
    assert await queue.dead_counts() == {("space-a", "fn-b"): 2}
    again = await lease_all(queue, 3)
    assert sorted(d.event["id"] for d in again) == ["a0", "a1", "a2"]
    assert sorted(d.id for d in again) == sorted(dl.id for dl in a_letters)
    assert await queue.redeliver("space-a", id=b_id, function_id="fn-b") == 1
    await queue.close()
