"""``GET /v1/events/tail`` (issue 15): the live tail as Server-Sent Events, through a real gateway on
Hypercorn and real streaming clients (httpx; a raw socket for the client that never reads).

Records are published through the app's own hub (``hub_of(gw.gateway.config_app)``) until the pipeline
publishes for real (issue 14's rebuild); what a client receives is the hub's output as served by the API.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.http.config_api import tail as tail_module
from gateway.http.config_api.tail import hub_of
from gateway.observe.record import CallRecord, EventRecord, PluginVerdict, StageRecord
from gateway.observe.tail import BUFFER, MAX_CLIENTS, TailHub

from .conftest import assert_error


def record(n: int = 0, *, space: str = "default", type: str = "user.created", status: int = 202,
           message: str = "", fault: bool = False) -> EventRecord:
    stage = StageRecord("eventgateway.event.received", 0.05, [
        PluginVerdict("guard", "sync", "fault" if fault else "continue", 0.012, fuel=1234,
                      fault_kind="trap" if fault else None, message=message or None)])
    return EventRecord(id=f"ev-{n}", type=type, space=space, source="/test", status=status, duration_ms=1.5,
                       stages=[stage], calls=[CallRecord("hello", "http", "async", True, 3.2, status=200)])


async def data_lines(response: httpx.Response) -> AsyncIterator[Any]:
    """The JSON of each ``data:`` line of an SSE response (comments skipped)."""
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            yield json.loads(line[6:])


async def take(response: httpx.Response, count: int, timeout: float = 5.0) -> list[Any]:
    got: list[Any] = []

    async def read() -> None:
        async for item in data_lines(response):
            got.append(item)
            if len(got) >= count:
                return
    await asyncio.wait_for(read(), timeout)
    return got


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def client(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gw.config_url, timeout=10,
                                 limits=httpx.Limits(max_connections=200)) as c:
        yield c


async def test_a_record_published_reaches_a_client_with_every_field(gw: Any, client: httpx.AsyncClient) -> None:
    hub = hub_of(gw.gateway.config_app)
    assert not hub.listening
    async with client.stream("GET", "/v1/events/tail") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        await wait_for(lambda: hub.listening)
        hub.publish(record(1, message="<img src=x onerror=alert(1)>"))
        (got,) = await take(response, 1)
    assert got["id"] == "ev-1" and got["type"] == "user.created" and got["space"] == "default"
    assert got["status"] == 202 and got["kind"] == "request" and got["error"] is False
    assert got["receivedAt"].endswith("Z")
    (stage,) = got["stages"]
    assert stage["name"] == "eventgateway.event.received"
    assert stage["plugins"] == [{"plugin": "guard", "mode": "sync", "verdict": "continue", "durationMs": 0.012,
                                 "message": "<img src=x onerror=alert(1)>", "fuel": 1234}]
    assert got["calls"] == [{"functionId": "hello", "provider": "http", "mode": "async", "ok": True,
                             "durationMs": 3.2, "attempt": 1, "status": 200}]
    # The client left: the hub forgets it, and a publish costs nothing again.
    await wait_for(lambda: not hub.listening)


async def test_filters_space_type_and_status(gw: Any, client: httpx.AsyncClient) -> None:
    hub = hub_of(gw.gateway.config_app)
    queries = {"space": "?space=shop", "type": "?type=order.paid", "error": "?status=error", "ok": "?status=ok",
               "404": "?status=404", "5xx": "?status=5XX", "both": "?space=shop&type=order.paid"}
    records = [record(0, space="shop", type="order.paid", status=202),
               record(1, space="shop", type="user.created", status=404),
               record(2, space="default", type="order.paid", status=503),
               record(3, space="default", type="user.created", status=200, fault=True),
               record(4, space="default", type="user.created", status=200)]
    expected = {"space": ["ev-0", "ev-1"], "type": ["ev-0", "ev-2"], "error": ["ev-1", "ev-2", "ev-3"],
                "ok": ["ev-0", "ev-4"], "404": ["ev-1"], "5xx": ["ev-2"], "both": ["ev-0"]}
    async with asyncio.timeout(10):
        streams = {name: await client.send(client.build_request("GET", "/v1/events/tail" + q), stream=True)
                   for name, q in queries.items()}
        try:
            await wait_for(lambda: hub.clients == len(queries))
            for r in records:
                hub.publish(r)
            for name, response in streams.items():
                assert response.status_code == 200, name
                got = await take(response, len(expected[name]))
                assert [g["id"] for g in got] == expected[name], name
        finally:
            for response in streams.values():
                await response.aclose()


@pytest.mark.parametrize("query, fragment", [
    ("status=abc", "status filter"), ("status=600", "status filter"), ("status=error%0a", "status filter"),
    ("type=" + "x" * 501, "type filter is too long"), ("space=a%0Ab", "space filter contains control"),
])
async def test_bad_filters_are_400(client: httpx.AsyncClient, query: str, fragment: str) -> None:
    assert_error(await client.get("/v1/events/tail?" + query), 400, fragment)


async def test_with_a_config_token_the_tail_needs_it(gateway_server: Any) -> None:
    gw = await gateway_server(config_token="s3cret")
    hub = hub_of(gw.gateway.config_app)
    async with httpx.AsyncClient(base_url=gw.config_url, timeout=5) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"},
                        {"Authorization": "Bearer s3cret2"}):
            response = await c.get("/v1/events/tail", headers=headers)
            assert_error(response, 401, "bearer token")
        assert not hub.listening
        # Other reads stay open.
        assert (await c.get("/v1/plugins")).status_code == 200
        async with c.stream("GET", "/v1/events/tail", headers={"Authorization": "Bearer s3cret"}) as response:
            assert response.status_code == 200
            await wait_for(lambda: hub.listening)
            hub.publish(record(7))
            (got,) = await take(response, 1)
            assert got["id"] == "ev-7"


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent for a UDP connect
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


async def test_without_a_token_only_loopback_clients_may_read(gateway_server: Any) -> None:
    other = _non_loopback_address()
    gw = await gateway_server(host="0.0.0.0")  # exposed without a token: the tail still refuses others
    port = gw.config_port
    async with httpx.AsyncClient(timeout=5) as c:
        async with c.stream("GET", f"http://127.0.0.1:{port}/v1/events/tail") as response:
            assert response.status_code == 200
        if other is not None:  # a real peer that is not loopback
            response = await c.get(f"http://{other}:{port}/v1/events/tail")
            assert_error(response, 403, "without --config-token", "loopback")
            assert (await c.get(f"http://{other}:{port}/v1/plugins")).status_code == 200
    # The same rule through the app for a peer address this machine may not have (no network needed).
    test_client = gw.gateway.config_app.test_client()
    response = await test_client.get("/v1/events/tail", scope_base={"client": ("203.0.113.9", 40000)})
    assert response.status_code == 403
    response = await test_client.get("/v1/events/tail", scope_base={"client": ("::ffff:10.0.0.1", 40000)})
    assert response.status_code == 403
    assert not hub_of(gw.gateway.config_app).listening


async def test_a_stalled_client_does_not_slow_publish_and_gets_the_dropped_count(gw: Any) -> None:
    hub = hub_of(gw.gateway.config_app)
    # A client that sends its request and then never reads, with a small receive buffer.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gw.config_port))
    sock.sendall(b"GET /v1/events/tail HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        await wait_for(lambda: hub.listening)
        big = "m" * 400
        records = [record(i, message=big) for i in range(6000)]
        published = 0
        for batch in range(6):  # the server's generator gets the loop between batches and fills the socket
            for r in records[batch * 1000:(batch + 1) * 1000]:
                hub.publish(r)
                published += 1
            await asyncio.sleep(0.05)
        # The mechanism: the stalled client's buffer stays at its bound and what does not fit is dropped
        # and counted (a publish then costs a counter increment for it; measured in bench/bench_tail.py).
        (subscription,) = hub._clients
        assert subscription._records <= BUFFER
        assert subscription.dropped_total > 0
        # Now read everything: every record published is either received or counted as dropped.
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        received = dropped = 0
        buffer = b""
        deadline = time.monotonic() + 10
        while received + dropped < published:
            assert time.monotonic() < deadline, (received, dropped, published)
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), 5)
            assert chunk, "the server closed the stream"
            buffer += chunk
            *messages, buffer = buffer.split(b"\n\n")
            for message in messages:
                for line in message.split(b"\n"):
                    if line.startswith(b"data: "):
                        item = json.loads(line[6:])
                        if "dropped" in item and "id" not in item:
                            dropped += item["dropped"]
                        else:
                            received += 1
        assert received + dropped == published
        assert dropped > 0 and received >= BUFFER
    finally:
        sock.close()
    await wait_for(lambda: not hub.listening)


def test_publish_with_nobody_listening_costs_next_to_nothing() -> None:
    hub = TailHub()
    r = record()
    started = time.perf_counter()
    for _ in range(100_000):
        hub.publish(r)
    per_call = (time.perf_counter() - started) / 100_000
    assert per_call < 2e-6, f"{per_call * 1e9:.0f} ns per publish with nobody listening"
    assert not hub.listening and hub.published == 0


async def test_one_encoding_for_every_client_and_drops_marked_in_place() -> None:
    hub = TailHub()
    a, b = hub.subscribe(), hub.subscribe()
    hub.publish(record(1))
    line_a, line_b = await a.get(0), await b.get(0)
    assert line_a is line_b  # serialised once, the same string for both
    for i in range(BUFFER + 5):
        hub.publish(record(i))
    lines = [await a.get(0) for _ in range(BUFFER)]
    assert [json.loads(x)["id"] for x in lines] == [f"ev-{i}" for i in range(BUFFER)]
    assert json.loads(await a.get(0) or "") == {"dropped": 5}  # read everything it had: the gap, at once
    assert await a.get(0) is None
    hub.publish(record(99))
    assert json.loads(await a.get(0) or "")["id"] == "ev-99"
    a.close(), b.close()
    assert not hub.listening


async def test_the_client_cap_answers_503(gw: Any, client: httpx.AsyncClient) -> None:
    hub = hub_of(gw.gateway.config_app)
    streams = []
    try:
        for _ in range(MAX_CLIENTS):
            response = await client.send(client.build_request("GET", "/v1/events/tail"), stream=True)
            assert response.status_code == 200
            streams.append(response)
        await wait_for(lambda: hub.clients == MAX_CLIENTS)
        assert_error(await client.get("/v1/events/tail"), 503, "64 clients")
        await streams.pop().aclose()
        await wait_for(lambda: hub.clients == MAX_CLIENTS - 1)
        response = await client.send(client.build_request("GET", "/v1/events/tail"), stream=True)
        assert response.status_code == 200
        streams.append(response)
    finally:
        for response in streams:
            await response.aclose()
    await wait_for(lambda: hub.clients == 0)


async def test_heartbeat_comments_keep_a_quiet_stream_alive(gw: Any, client: httpx.AsyncClient,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tail_module, "HEARTBEAT_SECONDS", 0.5)
    async with client.stream("GET", "/v1/events/tail") as response:
        lines: list[str] = []

        async def until_heartbeat() -> None:
            async for line in response.aiter_lines():
                lines.append(line)
                if line == ": keep-alive":
                    return
        await asyncio.wait_for(until_heartbeat(), 3)
    assert lines[0] == ": event-gateway live tail" and "retry: 2000" in lines


async def test_a_stopping_gateway_ends_the_stream_at_once(gateway_server: Any) -> None:
    gw = await gateway_server(drain_timeout=20.0)
    async with httpx.AsyncClient(base_url=gw.config_url, timeout=10) as c:
        async with c.stream("GET", "/v1/events/tail") as response:
            await wait_for(lambda: hub_of(gw.gateway.config_app).listening)
            started = time.monotonic()
            stopping = asyncio.create_task(gw.stop())
            async for _ in response.aiter_lines():
                pass  # ends when the gateway ends the stream
            await stopping
    assert time.monotonic() - started < 5, "the tail held the drain"


async def test_the_tail_is_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/v1/openapi.json")).json()["paths"]
    operation = paths["/v1/events/tail"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"space", "type", "status"}
    assert set(operation["responses"]) >= {"200", "400", "401", "403", "503"}
    assert "/v1/metrics/summary" in paths and "/v1/spaces" in paths
