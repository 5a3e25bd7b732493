"""Real gateway processes on one real ``nats-server -js`` (``--queue nats://...``; tests/nats_server.py).

- gateway A accepts events (202) and starts delivering them to a function that hangs; A is killed with
  SIGKILL before one delivery finished; gateway B, on the same NATS, delivers every one of them (after
  A's lease ran out, as a second attempt) and the queue ends empty, with no dead letter;
- nats-server stopped mid-run under a stream of events: while it is down events are answered 503 quickly
  (never a 202 the gateway cannot keep); once it is back (same store) they are accepted again without
  restarting the gateway, and every event answered 202 reaches the function.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gateway.queue.nats import NatsQueue
from tests.gateway_fixtures import FunctionServer, GatewayProcess
from tests.nats_server import NatsServer

pytestmark = [pytest.mark.nats, pytest.mark.slow]

CE = {"Content-Type": "application/cloudevents+json"}


async def configure(config_url: str, function_url: str) -> None:
    async with httpx.AsyncClient(base_url=config_url + "/v1/spaces/default", timeout=10) as api:
        for path, body in (
            ("/functions", {"functionId": "recorder", "type": "http",
                            "provider": {"url": function_url, "timeout": 20}}),
            ("/eventtypes", {"name": "job.done"}),
            ("/subscriptions", {"type": "async", "eventType": "job.done", "functionId": "recorder"}),
        ):
            response = await api.post(path, json=body)
            assert response.status_code == 201, response.text


async def post_event(client: httpx.AsyncClient, events_url: str, event_id: str) -> int:
    response = await client.post(events_url + "/", headers=CE, json={
        "specversion": "1.0", "type": "job.done", "source": "/nats-test", "id": event_id, "data": {"n": event_id}})
    return response.status_code


def delivered_ids(function: FunctionServer, since: int = 0) -> Counter[str]:
    return Counter(r.json["id"] for r in function.requests[since:])


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


async def queue_depth(server: NatsServer) -> int:
    queue = NatsQueue([server.url], lease_seconds=2.0)  # the gateways' stream and consumer, as they set them
    try:
        return await queue.depth()
    finally:
        await queue.close()


async def test_events_accepted_by_a_killed_gateway_are_delivered_by_the_other(
        nats_factory: Callable[[], NatsServer], gateway_process: Callable[..., GatewayProcess],
        function_server: FunctionServer, tmp_path: Path) -> None:
    nats = nats_factory()
    common = ("--db", f"sqlite:{tmp_path / 'config.db'}", "--queue", nats.url, "--queue-lease", "2")
    function_server.respond(200, {"ok": True}, delay=60)  # A's calls hang: A finishes none
    a = gateway_process(*common, "--data-dir", str(tmp_path / "a"))
    await configure(a.config_url, function_server.url)
    ids = [f"evt-{i}" for i in range(40)]
    async with httpx.AsyncClient(timeout=10) as client:
        statuses = await asyncio.gather(*(post_event(client, a.events_url, i) for i in ids))
    assert statuses == [202] * len(ids)
    await function_server.wait_for_requests(len(ids), timeout=10)  # A leased them all and is calling
    assert delivered_ids(function_server) == Counter(ids)
    assert {r.headers.get("Event-Gateway-Delivery-Attempt") for r in function_server.requests} == {"1"}

    a.signal(signal.SIGKILL)
    assert a.wait(10) == -signal.SIGKILL
    seen_from_a = len(function_server.requests)
    function_server.respond(200, {"ok": True})  # the function works again (A's hung calls stay hung)
    killed_at = time.monotonic()

    b = gateway_process(*common, "--data-dir", str(tmp_path / "b"))
    await wait_until(lambda: set(delivered_ids(function_server, seen_from_a)) == set(ids), 20,
                     "B delivers every event A accepted")
    took = time.monotonic() - killed_at
    assert took > 1.0  # not before A's lease ran out
    by_b = function_server.requests[seen_from_a:]
    assert {r.headers.get("Event-Gateway-Delivery-Attempt") for r in by_b} == {"2"}  # A's counts
    assert all(r.json["data"] == {"n": r.json["id"]} for r in by_b)
    deadline = time.monotonic() + 10
    while await queue_depth(nats) != 0:
        assert time.monotonic() < deadline, "the stream kept deliveries B made"
        await asyncio.sleep(0.1)
    async with httpx.AsyncClient(timeout=10) as client:
        letters = await client.get(b.config_url + "/v1/spaces/default/deadletters")
    assert letters.status_code == 200 and letters.json() == {"deadLetters": []}
    assert b.stop() == 0


async def test_nats_stopped_mid_run_refuses_quickly_and_loses_nothing_accepted(
        nats_factory: Callable[[], NatsServer], gateway_process: Callable[..., GatewayProcess],
        function_server: FunctionServer, tmp_path: Path) -> None:
    nats = nats_factory()
    gw = gateway_process("--db", f"sqlite:{tmp_path / 'config.db'}", "--queue", nats.url, "--queue-lease", "5",
                         "--data-dir", str(tmp_path / "gw"))
    await configure(gw.config_url, function_server.url)
    numbers = itertools.count()
    outcomes: list[tuple[str, int, float, str]] = []  # id, status, seconds, phase
    phase = "up"

    async def sender() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            while phase != "done":
                event_id = f"e{next(numbers)}"
                started = time.monotonic()
                status = await post_event(client, gw.events_url, event_id)
                outcomes.append((event_id, status, time.monotonic() - started, phase))
                await asyncio.sleep(0.01)

    senders = [asyncio.create_task(sender()) for _ in range(3)]
    await asyncio.sleep(1.0)
    nats.stop()
    phase = "down"
    await asyncio.sleep(2.0)
    nats.start()  # same port, same store
    phase = "back"
    await wait_until(lambda: sum(1 for o in outcomes if o[3] == "back" and o[1] == 202) >= 30, 15,
                     "events accepted again after NATS came back")
    phase = "done"
    await asyncio.gather(*senders)

    by_phase = {p: Counter(o[1] for o in outcomes if o[3] == p) for p in ("up", "down", "back")}
    assert by_phase["up"][202] > 10 and set(by_phase["up"]) == {202}, by_phase
    down = [o for o in outcomes if o[3] == "down"]
    assert Counter(o[1] for o in down)[503] > 5, by_phase  # refused while NATS was away ...
    assert set(o[1] for o in down) <= {202, 503}, by_phase  # (a 202 only just before the stop was seen)
    assert max(o[2] for o in down) < 2.5, sorted(o[2] for o in down)[-5:]  # ... and quickly
    assert set(by_phase["back"]) <= {202, 503}, by_phase

    accepted = {o[0] for o in outcomes if o[1] == 202}
    await wait_until(lambda: accepted <= set(delivered_ids(function_server)), 20,
                     f"every accepted event delivered ({len(accepted)} accepted)")
    duplicates = sum(n - 1 for n in delivered_ids(function_server).values() if n > 1)
    refused_but_delivered = set(delivered_ids(function_server)) - accepted
    print(f"accepted {len(accepted)}, refused {sum(1 for o in outcomes if o[1] == 503)}, "
          f"duplicates {duplicates}, refused yet delivered {len(refused_but_delivered)}")
    assert gw.stop() == 0


async def test_an_incompatible_stream_stops_the_start_up(
        nats_factory: Callable[[], NatsServer], gateway_process: Callable[..., GatewayProcess], tmp_path: Path) -> None:
    """A stream of the gateway's name with other settings (limits retention instead of work-queue) is never
    rewritten: the gateway refuses to start, naming what differs, as for a SQLite queue of a newer schema."""
    import nats as nats_client
    from nats.js.api import RetentionPolicy, StreamConfig

    from gateway.queue.nats import DEFAULT_STREAM

    server = nats_factory()
    client = await nats_client.connect(server.url)
    try:
        await client.jetstream().add_stream(StreamConfig(name=DEFAULT_STREAM, subjects=["someone.else"],
                                                         retention=RetentionPolicy.LIMITS))
    finally:
        await client.close()
    gateway = gateway_process("--db", f"sqlite:{tmp_path / 'config.db'}", "--queue", server.url,
                              "--data-dir", str(tmp_path / "gw"), wait=False)
    assert gateway.wait(60) == 1
    log = gateway.log()
    assert DEFAULT_STREAM in log and "retention" in log, log
    assert "listening" not in log
