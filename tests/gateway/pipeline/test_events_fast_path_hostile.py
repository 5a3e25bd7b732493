"""Hostile requests against the Events API's fast path (issue 16): each raw request is sent to the fast path
and to the Quart app alone (one event plane, served twice) and the answers compared byte for byte -- the
status line, every header in its order and case (only the ``date`` value masked), the body. Plus the bounds:
clients that send headers and never the body are all given up after the body timeout."""

from __future__ import annotations

import asyncio
import re
import socket
import tracemalloc
from typing import Any

import pytest

from gateway.http.events_api import EventsApp, create_app
from tests.asgi_server import AsgiServer

from .event_plane_harness import EventGateway, FunctionServer, GatewayFactory
from .test_events_fast_path import CE, event, request

_DATE = re.compile(rb"\r\ndate: [^\r]*", re.IGNORECASE)


async def raw_exchange(url: str, raw: bytes, timeout: float = 10) -> bytes:
    """Everything the server sends back for ``raw`` on a new connection, until it closes (date masked)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw)
    await writer.drain()
    try:
        received = await asyncio.wait_for(reader.read(-1), timeout)
    finally:
        writer.close()
    return _DATE.sub(b"\r\ndate: *", received)


@pytest.fixture
async def both(event_gateway: GatewayFactory, recorder: FunctionServer) -> Any:
    gw: EventGateway = await event_gateway()
    await gw.function("fn", recorder.target("fn"))
    await gw.subscribe(type="sync", event_type="http.request", function_id="fn", path="/sync/:id", method="GET")
    await gw.subscribe(type="sync", event_type="http.request", function_id="fn", path="/sync/:id", method="POST")
    await gw.subscribe(type="sync", event_type="http.request", function_id="fn", path="/a/b", method="GET")
    fast = create_app(gw.plane)
    fast_server = AsgiServer(fast, log_errors=False)
    fast_url = await fast_server.start()
    quart_server = AsgiServer(EventsApp(fast.quart, gw.plane, max_batch_events=1000, fast=False), log_errors=False)
    quart_url = await quart_server.start()
    recorder.answer("fn", {"statusCode": 200, "headers": {"X-Echo": "1"}, "body": "ok"})
    yield fast_url, quart_url, recorder, gw
    await quart_server.stop()
    await fast_server.stop()


def _lengths(*values: str) -> bytes:
    """A POST of one event with the given Content-Length header lines."""
    body = event()
    head = "POST /nobody HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Type: " + CE + "\r\n"
    head += "".join(f"Content-Length: {v}\r\n" for v in values)
    return head.encode() + b"\r\n" + body


BODY_LEN = len(event())

HOSTILE = [
    ("duplicate equal Content-Length", _lengths(str(BODY_LEN), str(BODY_LEN))),
    ("conflicting Content-Length", _lengths(str(BODY_LEN), "5")),
    ("comma Content-Length", _lengths(f"{BODY_LEN}, {BODY_LEN}")),
    ("signed Content-Length", _lengths(f"+{BODY_LEN}")),
    ("negative Content-Length", _lengths("-1")),
    ("spaced Content-Length", _lengths(f"  {BODY_LEN}  ")),
    ("leading zeros Content-Length", _lengths(f"000{BODY_LEN}")),
    ("huge Content-Length", _lengths("9" * 40)),
    ("body longer than announced", _lengths(str(BODY_LEN - 5))),
    ("Content-Length 0 with a body", _lengths("0")),
    ("pipelined", request("GET", "/nobody", headers={"Connection": None}) * 3  # type: ignore[dict-item]
     + request("GET", "/sync/1")),
    ("many headers", request("GET", "/sync/2", headers={f"X-H{n}": "v" for n in range(200)})),
    ("a large header", request("GET", "/sync/3", headers={"X-Big": "v" * 12000})),
    ("empty Space", request("POST", "/x", event(), {"Content-Type": CE, "Space": ""})),
    ("two Space headers", b"POST /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\nSpace: \r\nSpace: other\r\n"
                          b"Content-Type: " + CE.encode() + b"\r\nContent-Length: " + str(BODY_LEN).encode()
                          + b"\r\n\r\n" + event()),
    ("Space with spaces", request("POST", "/x", event(), {"Content-Type": CE, "Space": "a b"})),
    ("Space latin-1", b"POST /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\nSpace: caf\xe9\r\n"
                      b"Content-Length: 0\r\n\r\n"),
    ("Space very long", request("POST", "/x", event(), {"Content-Type": CE, "Space": "s" * 5000})),
    ("lone %", request("GET", "/sync/%")),
    ("%2", request("GET", "/sync/%2")),
    ("%00", request("GET", "/sync/a%00b")),
    ("%2F", request("GET", "/sync/a%2Fb")),
    ("%FF", request("GET", "/sync/%FF")),
    ("UTF-8 escapes", request("GET", "/sync/caf%C3%A9")),
    ("query: lone %", request("GET", "/sync/1?a=%&b=%2&c=%zz")),
    ("query: %00 and +", request("GET", "/sync/1?a=%00&b=x+y&c=%2B")),
    ("query: repeated and ;", request("GET", "/sync/1?a=1;a=2&a=3&&=&x")),
    ("query: invalid UTF-8 escape", request("GET", "/sync/1?a=%FF%FE")),
    ("query: raw high byte", b"GET /sync/1?a=\xff HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
    ("path: raw high byte", b"GET /sync/\xff HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
    ("double slash", request("GET", "//sync/1")),
    ("inner double slash", request("GET", "/a//b")),
    ("trailing slash", request("GET", "/a/b/")),
    ("dot segments", request("GET", "/a/./b/../b")),
    ("absolute-form target", request("GET", "http://other.test/sync/5?q=1")),
    ("absolute-form target, no path", request("GET", "http://other.test")),
    ("asterisk-form OPTIONS", request("OPTIONS", "*")),
    ("HTTP/1.0 without Host", request("GET", "/sync/6", headers={"Host": None}, version="1.0")),  # type: ignore[dict-item]
    ("HTTP/1.0 with Host", request("GET", "/sync/6", version="1.0")),
    ("HTTP/1.1 without Host", request("GET", "/sync/6", headers={"Host": None})),  # type: ignore[dict-item]
    ("two Host headers", b"GET /sync/7 HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n"),
    ("odd Host", request("GET", "/sync/7", headers={"Host": "[::1]:99"})),
    ("bad Host", request("GET", "/sync/7", headers={"Host": "a b/c"})),
    ("lower-case method", request("get", "/sync/8")),
    ("mixed-case method", request("Post", "/nobody", event(), {"Content-Type": CE})),
    ("CORS preflight", request("OPTIONS", "/sync/9", headers={"Origin": "http://o.test",
                                                              "Access-Control-Request-Method": "POST",
                                                              "Access-Control-Request-Headers": "x-a"})),
    ("OPTIONS with body", request("OPTIONS", "/nobody", b"xyz")),
    ("GET with a body", request("GET", "/sync/10", b'{"a":1}', {"Content-Type": "application/json"})),
    ("keep-alive, then close", request("GET", "/sync/11", headers={"Connection": "keep-alive"})
     + request("GET", "/sync/12")),
]


@pytest.mark.parametrize("raw", [raw for _, raw in HOSTILE], ids=[name for name, _ in HOSTILE])
async def test_hostile_request_answered_as_the_quart_app(both, raw: bytes) -> None:
    fast_url, quart_url, _, _ = both
    fast = await raw_exchange(fast_url, raw)
    quart = await raw_exchange(quart_url, raw)
    assert fast == quart, f"\nfast  {fast!r}\nquart {quart!r}"


async def h2_exchange(url: str, method: str, path: str, body: bytes, headers: list[tuple[str, str]],
                      timeout: float = 10) -> tuple[list[tuple[str, str]], bytes]:
    """One HTTP/2 request (cleartext, prior knowledge) over a raw socket; the answer's headers (but date)
    and body."""
    import h2.config
    import h2.connection
    import h2.events

    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="latin-1"))
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, [(":method", method), (":path", path), (":scheme", "http"),
                               (":authority", "gateway.test:4000"), *headers], end_stream=not body)
    if body:
        conn.send_data(stream, body, end_stream=True)
    writer.write(conn.data_to_send())
    answer_headers: list[tuple[str, str]] = []
    answer = b""
    try:
        async with asyncio.timeout(timeout):
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived):
                        answer_headers = [(k, v) for k, v in ev.headers if k != "date"]
                    elif isinstance(ev, h2.events.DataReceived):
                        answer += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded | h2.events.StreamReset):
                        writer.close()
                        return answer_headers, answer
                writer.write(conn.data_to_send())
    finally:
        writer.close()
    return answer_headers, answer


H2_REQUESTS = [
    ("POST with Content-Length", "POST", "/sync/1", b"plain", [("content-type", "text/plain"),
                                                               ("content-length", "5")]),
    ("POST without Content-Length", "POST", "/sync/1", b"plain", [("content-type", "text/plain")]),
    ("CloudEvent without Content-Length", "POST", "/nobody", event(), [("content-type", CE)]),
    ("GET", "GET", "/sync/2?a=1", b"", []),
    ("two equal Content-Lengths", "POST", "/sync/1", b"plain", [("content-length", "5"), ("content-length", "5")]),
    ("conflicting Content-Lengths", "POST", "/sync/1", b"plain", [("content-length", "5"), ("content-length", "7")]),
    ("Content-Length over the body", "POST", "/sync/1", b"plain", [("content-length", "9")]),
    ("Content-Length under the body", "POST", "/sync/1", b"plain", [("content-length", "2")]),
    ("Content-Length 0 with a body", "POST", "/sync/1", b"plain", [("content-length", "0")]),
]


@pytest.mark.parametrize("request_", H2_REQUESTS, ids=[r[0] for r in H2_REQUESTS])
async def test_http2_request_answered_as_the_quart_app(both, request_: tuple[Any, ...]) -> None:
    fast_url, quart_url, recorder, _ = both
    _, method, path, body, headers = request_
    fast = await h2_exchange(fast_url, method, path, body, headers)
    quart = await h2_exchange(quart_url, method, path, body, headers)
    assert fast == quart, f"\nfast  {fast!r}\nquart {quart!r}"
    if method == "POST" and path.startswith("/sync") and (":status", "200") in fast[0]:
        first, second = (await recorder.wait_for("fn", 2))[-2:]
        assert first["body"]["data"]["body"] == second["body"]["data"]["body"], (first, second)


async def test_h2_query_not_utf8_answered_as_the_quart_app(both) -> None:
    fast_url, quart_url, _, _ = both
    path = "/sync/1?a=\xff&b=%FF"  # sent as latin-1 bytes: a raw 0xFF in the query
    fast = await h2_exchange(fast_url, "GET", path, b"", [])
    quart = await h2_exchange(quart_url, "GET", path, b"", [])
    assert fast == quart, f"\nfast  {fast!r}\nquart {quart!r}"


async def test_draining_answers_as_the_quart_app(both) -> None:
    fast_url, quart_url, _, gw = both
    gw.plane.draining = True
    try:
        for raw in (request("POST", "/x", event(), {"Content-Type": CE}), request("GET", "/sync/1"),
                    request("OPTIONS", "/sync/1", headers={"Origin": "http://o.test",
                                                           "Access-Control-Request-Method": "GET"})):
            fast = await raw_exchange(fast_url, raw)
            assert fast.startswith(b"HTTP/1.1 503 "), fast
            assert fast == await raw_exchange(quart_url, raw)
    finally:
        gw.plane.draining = False


async def _half_sent(url: str, raw: bytes, close_write: bool) -> bytes:
    """Send ``raw`` (a request whose body is cut short), then shut the writing side or not; what comes back."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw)
    await writer.drain()
    if close_write:
        writer.write_eof()
    try:
        return _DATE.sub(b"\r\ndate: *", await asyncio.wait_for(reader.read(-1), 10))
    finally:
        writer.close()


async def test_a_body_cut_short_by_the_client_is_answered_as_the_quart_app(both) -> None:
    fast_url, quart_url, _, _ = both
    raw = _lengths(str(BODY_LEN))[:-10]
    fast = await _half_sent(fast_url, raw, close_write=True)
    quart = await _half_sent(quart_url, raw, close_write=True)
    assert fast == quart, f"\nfast  {fast!r}\nquart {quart!r}"


async def test_many_clients_that_never_send_the_body_are_all_given_up(event_gateway) -> None:
    """200 connections each announce a body and send part of it: each is answered 408 and closed after the
    body timeout; afterwards the server holds no task for them and still serves."""
    gw = await event_gateway()
    app = create_app(gw.plane)
    app.body_timeout = 0.5
    server = AsgiServer(app, log_errors=False, backlog=512)
    url = await server.start()
    try:
        # One request first: the tasks Hypercorn starts to serve at all are running when they are counted.
        assert (await raw_exchange(url, request("POST", "/x", event(), {"Content-Type": CE}))).startswith(b"HTTP/1.1 202 ")
        tasks_before = len(asyncio.all_tasks())
        head = (b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Type: " + CE.encode() + b"\r\nContent-Length: 5000\r\n\r\n"
                + b'{"specversion"')
        answers = await asyncio.gather(*(_half_sent(url, head, close_write=False) for _ in range(200)))
        assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers), {a[:40] for a in answers}
        for _ in range(100):  # the server's connection tasks end once their sockets are closed
            if len(asyncio.all_tasks()) <= tasks_before:
                break
            await asyncio.sleep(0.05)
        assert len(asyncio.all_tasks()) <= tasks_before, len(asyncio.all_tasks()) - tasks_before
        answer = await raw_exchange(url, request("POST", "/x", event(), {"Content-Type": CE}))
        assert answer.startswith(b"HTTP/1.1 202 "), answer
    finally:
        await server.stop()


async def test_with_an_events_token_every_request_is_the_quart_apps(event_gateway) -> None:
    gw = await event_gateway()
    app = create_app(gw.plane, events_token="s3cret")
    seen: list[str] = []
    quart = app.quart

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(scope["method"])
        await quart(scope, receive, send)

    app.quart = counted  # type: ignore[assignment]
    server = AsgiServer(app, log_errors=False)
    url = await server.start()
    try:
        seen.clear()
        refused = await raw_exchange(url, request("POST", "/x", event(), {"Content-Type": CE}))
        accepted = await raw_exchange(url, request("POST", "/x", event(), {"Content-Type": CE,
                                                                          "Authorization": "Bearer s3cret"}))
        assert refused.startswith(b"HTTP/1.1 401 "), refused
        assert accepted.startswith(b"HTTP/1.1 202 "), accepted
        assert seen == ["POST", "POST"]
    finally:
        await server.stop()


HOSTILE_ANSWERS = [
    {"statusCode": 200, "headers": {"X-\u00dc": "1"}, "body": "non-ASCII name"},
    {"statusCode": 200, "headers": {"X Space": "1"}, "body": "space in name"},
    {"statusCode": 200, "headers": {"X:Colon": "1"}, "body": "colon in name"},
    {"statusCode": 200, "headers": {"": "empty"}, "body": "empty name"},
    {"statusCode": 200, "headers": {"X-Nul": "a\u0000b"}, "body": "NUL in value"},
    {"statusCode": 200, "headers": {"X-Del": "a\u007fb", "X-Tab": "a\tb", "X-Pad": "  v  "}, "body": "odd bytes"},
    {"statusCode": 200, "headers": {"Transfer-Encoding": "chunked"}, "body": "framed twice"},
    {"statusCode": 200, "headers": {"content-LENGTH": "1", "Content-Length": "2"}, "body": "lengths"},
    {"statusCode": 200, "headers": {"Connection": "close", "Server": "fn", "Date": "yesterday"}, "body": "hop"},
    {"statusCode": 200, "headers": {f"X-N{n}": str(n) for n in range(300)}, "body": "many"},
    {"statusCode": 200, "headers": {"X-Long": "v" * 100_000}, "body": "long"},
    {"statusCode": 304, "headers": {"ETag": "x"}, "body": "not modified with a body"},
    {"statusCode": 205, "body": "reset content with a body"},
    {"statusCode": 204, "headers": {"Content-Length": "5"}, "body": "no content, a length"},
    {"statusCode": 304, "headers": {"Transfer-Encoding": "chunked"}, "body": "not modified, chunked"},
    {"statusCode": 200, "headers": {"Content-Length": "-1"}, "body": "negative length"},
    {"statusCode": 101, "body": "switching"},
    {"statusCode": 100, "body": "continue"},
    {"statusCode": 0, "body": "zero"},
    {"statusCode": 999, "body": "999"},
    {"statusCode": 1000, "body": "1000"},
    {"statusCode": "201", "body": "string status"},
    {"statusCode": 200, "body": "\u2603" * 1000},
    {"statusCode": 200, "body": "aGVsbG8=", "isBase64Encoded": True},
]


@pytest.mark.parametrize("answer", HOSTILE_ANSWERS, ids=lambda a: a["body"][:20])
async def test_hostile_function_answer_sent_as_the_quart_app_sends_it(both, answer: dict[str, Any]) -> None:
    fast_url, quart_url, recorder, _ = both
    recorder.answer("fn", answer)
    for raw in (request("GET", "/sync/1"), request("OPTIONS", "/sync/1")):
        fast = await raw_exchange(fast_url, raw)
        quart = await raw_exchange(quart_url, raw)
        assert fast == quart, f"\nfast  {fast[:600]!r}\nquart {quart[:600]!r}"


@pytest.mark.parametrize("sent", [b"", b'{"specversion"'], ids=["no body at all", "part of the body"])
async def test_the_body_timeout_answer_is_the_quart_apps(event_gateway: GatewayFactory, sent: bytes) -> None:
    gw = await event_gateway()
    fast = create_app(gw.plane)
    fast.quart.config["BODY_TIMEOUT"] = 0.5
    fast.body_timeout = 0.5
    fast_server = AsgiServer(fast, log_errors=False)
    fast_url = await fast_server.start()
    quart_server = AsgiServer(EventsApp(fast.quart, gw.plane, max_batch_events=1000, fast=False), log_errors=False)
    quart_url = await quart_server.start()
    try:
        raw = (b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Type: " + CE.encode() + b"\r\nContent-Length: 100\r\n\r\n"
               + sent)
        answers = [await _half_sent(url, raw, close_write=False) for url in (fast_url, quart_url)]
        assert answers[0].startswith(b"HTTP/1.1 408 "), answers[0]
        assert answers[0] == answers[1], f"\nfast  {answers[0]!r}\nquart {answers[1]!r}"
    finally:
        await quart_server.stop()
        await fast_server.stop()


@pytest.mark.parametrize("target, draining", [("/a%ZZ", False), ("/x", True)], ids=["bad escape", "draining"])
async def test_early_answers_come_before_the_body_as_the_quart_apps(event_gateway: GatewayFactory, target: str,
                                                                   draining: bool) -> None:
    """A request the app refuses on its path or because it is draining is answered at once, before its body is
    read, as the Quart app answers it: a client that announces a body and never sends it gets the 400 or 503,
    not the body timeout's 408 (the fast path read the body first)."""
    gw = await event_gateway()
    fast = create_app(gw.plane)
    fast.quart.config["BODY_TIMEOUT"] = 0.5
    fast.body_timeout = 0.5
    fast_server = AsgiServer(fast, log_errors=False)
    fast_url = await fast_server.start()
    quart_server = AsgiServer(EventsApp(fast.quart, gw.plane, max_batch_events=1000, fast=False), log_errors=False)
    quart_url = await quart_server.start()
    gw.plane.draining = draining
    try:
        raw = (f"POST {target} HTTP/1.1\r\nHost: h\r\nContent-Type: {CE}\r\nContent-Length: 100\r\n\r\n".encode()
               + b'{"specversion"')
        answers = [await _half_sent(url, raw, close_write=False) for url in (fast_url, quart_url)]
        assert answers[0].startswith(b"HTTP/1.1 503 " if draining else b"HTTP/1.1 400 "), answers[0]
        assert answers[0] == answers[1], f"\nfast  {answers[0]!r}\nquart {answers[1]!r}"
    finally:
        gw.plane.draining = False
        await quart_server.stop()
        await fast_server.stop()


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "quart"])
async def test_a_body_sent_in_tiny_pieces_is_held_compactly(event_gateway: GatewayFactory, fast: bool) -> None:
    """A body that arrives a byte or a few at a time: the app holds about its size, not a Python object per
    piece (a list of bytes objects costs ~40 bytes per piece: a 6 MiB body sent byte by byte, ~250 MiB)."""
    gw = await event_gateway()
    app = create_app(gw.plane)
    served = app if fast else EventsApp(app.quart, gw.plane, max_batch_events=1000, fast=False)
    server = AsgiServer(served, log_errors=False)
    url = await server.start()
    host, port = url.removeprefix("http://").split(":")
    size = 200_000
    try:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        writer.write(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % size)
        await writer.drain()
        tracemalloc.start()
        try:
            for n in range(size):
                writer.write(b"x")
                await writer.drain()
                if n % 20 == 0:
                    await asyncio.sleep(0)  # let the server take what has come
            answer = await asyncio.wait_for(reader.read(-1), 30)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            writer.close()
        assert answer.startswith(b"HTTP/1.1 202 "), answer
        assert peak < 4 * size, f"{peak} bytes held for a {size}-byte body"
    finally:
        await server.stop()
