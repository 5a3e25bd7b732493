"""The Events API's fast path (issue 16: the common request served without Quart's machinery) answers
exactly what the Quart app answers: the same raw HTTP requests, sent over sockets to one event plane served
twice -- once by ``create_app`` (fast path on) and once by its Quart app alone -- give the same status line,
headers (but ``date``) and body, and the function receives the same event. Plus the fast path's own bounds:
a body that never comes is given up after the body timeout, and the server goes on serving."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway.http.events_api import EventsApp, create_app
from tests.asgi_server import AsgiServer

from .event_plane_harness import EventGateway, FunctionServer, GatewayFactory

CE = "application/cloudevents+json"


async def exchange(url: str, raw: bytes, timeout: float = 10) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    """Send ``raw`` on a new connection; (status line, headers without ``date``, body) of the answer,
    read until the server closes (every request here says ``Connection: close``)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw)
    await writer.drain()
    received = await asyncio.wait_for(reader.read(-1), timeout)
    writer.close()
    head, _, body = received.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = sorted((name.strip().lower(), value.strip()) for name, _, value in (line.partition(b":") for line in lines)
                     if name.strip().lower() != b"date")
    return status, headers, body


def request(method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None,
            version: str = "1.1") -> bytes:
    lines = [f"{method} {target} HTTP/{version}"]
    fields = {"Host": "gateway.test:4000", "Connection": "close", **(headers or {})}
    if body or method in ("POST", "PUT", "PATCH"):
        fields.setdefault("Content-Length", str(len(body)))
    lines += [f"{name}: {value}" for name, value in fields.items() if value is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def event(**fields: Any) -> bytes:
    return json.dumps({"specversion": "1.0", "type": "fast.event", "source": "/t", "id": "1", **fields}).encode()


@pytest.fixture
async def both(event_gateway: GatewayFactory, recorder: FunctionServer) -> Any:
    """The harness's gateway (fast path) and a second server of its event plane with the Quart app only."""
    gw: EventGateway = await event_gateway()
    await gw.function("fn", recorder.target("fn"))
    await gw.function("typed", recorder.target("typed"))
    await gw.subscribe(type="sync", event_type="http.request", function_id="fn", path="/sync/:id", method="GET")
    await gw.subscribe(type="sync", event_type="http.request", function_id="fn", path="/sync/:id", method="POST")
    await gw.subscribe(type="sync", event_type="fast.event", function_id="typed", path="/typed")
    fast = create_app(gw.plane)
    quart = fast.quart
    handed_to_quart: list[str] = []

    async def counted(scope: Any, receive: Any, send: Any) -> None:  # the requests the fast path left to Quart
        handed_to_quart.append(f"{scope['method']} {scope['path']}")
        await quart(scope, receive, send)

    fast.quart = counted  # type: ignore[assignment]
    fast_server = AsgiServer(fast, log_errors=False)
    fast_url = await fast_server.start()
    quart_server = AsgiServer(EventsApp(quart, gw.plane, max_batch_events=1000, fast=False), log_errors=False)
    quart_url = await quart_server.start()
    yield fast_url, quart_url, recorder, handed_to_quart
    await quart_server.stop()
    await fast_server.stop()


REQUESTS = [
    ("accepted, no subscriber", request("POST", "/nobody", event(), {"Content-Type": CE})),
    ("no body, no subscriber", request("GET", "/nobody")),
    ("invalid event", request("POST", "/x", b'{"specversion":"1.0"}', {"Content-Type": CE})),
    ("invalid JSON", request("POST", "/x", b'{"specversion":', {"Content-Type": CE})),
    ("reserved type", request("POST", "/x", event(type="eventgateway.event.received"), {"Content-Type": CE})),
    ("bad escape", request("POST", "/users/a%ZZb", b"x")),
    ("bad space header", request("POST", "/x", event(), {"Content-Type": CE, "Space": "a/b"})),
    ("unknown space", request("POST", "/x", event(), {"Content-Type": CE, "Space": "elsewhere"})),
    ("sync http.request with a query", request("GET", "/sync/7?a=1&a=2&b=%41%zz&c&d=x+y;e=1")),
    ("sync http.request, POST body", request("POST", "/sync/8?q=1", b"plain text", {"Content-Type": "text/plain"})),
    ("sync, duplicate headers", request("GET", "/sync/9", headers={"X-Dup": "1", "x-dup": "2"})),
    ("sync CloudEvent", request("POST", "/typed", event(data={"n": 1}), {"Content-Type": CE})),
    ("HTTP/1.0 without Host", request("GET", "/sync/10", headers={"Host": None}, version="1.0")),  # type: ignore[dict-item]
    ("OPTIONS", request("OPTIONS", "/sync/11", headers={"Origin": "http://o.test",
                                                        "Access-Control-Request-Method": "GET"})),
    ("DELETE", request("DELETE", "/nobody")),
    ("unknown method (Quart's 405 on both)", request("TRACE", "/x")),
    ("HEAD (Quart's on both)", request("HEAD", "/sync/12")),
    ("chunked body (Quart's on both)", b"POST /nobody HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                                       b"Content-Type: application/cloudevents+json\r\nTransfer-Encoding: chunked\r\n\r\n"
                                       + hex(len(event())).encode()[2:] + b"\r\n" + event() + b"\r\n0\r\n\r\n"),
    ("over the size limit (Quart's 413 on both)", request("POST", "/x", b"", {"Content-Length": str(6 * 1024 * 1024 + 1)})),
    ("non-numeric length (h11 refuses it before either app)", request("POST", "/x", b"", {"Content-Length": "12a"})),
]

FUNCTION_ANSWERS = [
    {"statusCode": 200, "body": "ok"},
    {"statusCode": 201, "headers": {"X-One": "1", "x-one": "2", "Content-Type": "text/plain"}, "body": "made"},
    {"statusCode": 204, "body": ""},
    {"statusCode": 200, "headers": {"X-Bad": "a\r\nSet-Cookie: x=1"}, "body": "x"},
    {"statusCode": 200, "headers": {"X-Latin": "caf\u00e9", "X-Wide": "\u2603"}, "body": "snow"},
    {"statusCode": 200, "headers": {"Content-Length": "99"}, "body": "short"},
]


@pytest.mark.parametrize("answer", FUNCTION_ANSWERS, ids=lambda a: str(a["statusCode"]) + str(sorted(a.get("headers", {}))))
async def test_fast_path_answers_exactly_as_the_quart_app(both, answer: dict[str, Any]) -> None:
    fast_url, quart_url, recorder, handed_to_quart = both
    recorder.answer("fn", answer)
    recorder.answer("typed", answer)
    for name, raw in REQUESTS:
        handed_to_quart.clear()
        fast = await exchange(fast_url, raw)
        quart = await exchange(quart_url, raw)
        assert fast == quart, f"{name}:\nfast  {fast}\nquart {quart}"
        # The fast path answered every request but the ones it leaves to Quart.
        assert bool(handed_to_quart) == ("Quart's" in name), (name, handed_to_quart)


async def test_the_function_gets_the_same_event_either_way(both) -> None:
    fast_url, quart_url, recorder, _ = both
    raw = request("POST", "/sync/1?a=1&a=2&b=%41", b'{"k": "v"}',
                  {"Content-Type": "application/json", "X-Dup": "1", "x-dup": "2", "Space": "default"})
    await exchange(fast_url, raw)
    await exchange(quart_url, raw)
    first, second = (await recorder.wait_for("fn", 2))[-2:]

    def comparable(call: dict[str, Any]) -> dict[str, Any]:
        body = dict(call["body"])
        for generated in ("id", "time", "eventID", "eventTime"):  # made per event
            body.pop(generated, None)
        data = dict(body.get("data") or {})
        return {**body, "data": data}

    assert comparable(first) == comparable(second)
    assert comparable(first)["data"]["query"] == {"a": ["1", "2"], "b": ["A"]}


async def test_a_body_that_never_comes_is_given_up_and_the_server_goes_on(event_gateway) -> None:
    gw = await event_gateway()
    app = create_app(gw.plane)
    app.body_timeout = 0.5
    server = AsgiServer(app, log_errors=False)
    url = await server.start()
    try:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Type: " + CE.encode() + b"\r\nContent-Length: 100\r\n\r\n"
                     b'{"specversion"')
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(-1), 10)  # answered, then closed: not held forever
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"didn't finish the request within the specified time" in answer, answer
        status, _, body = await exchange(url, request("POST", "/x", event(), {"Content-Type": CE}))
        assert status == b"HTTP/1.1 202 ", (status, body)
    finally:
        await server.stop()
