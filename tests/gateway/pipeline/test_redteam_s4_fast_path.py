"""Red team: more raw HTTP/1.1 requests against the Events API's fast path, each answered byte for byte as the
Quart app alone answers it (the hostile harness's ``both``: one event plane served twice)."""

from __future__ import annotations

import asyncio

import pytest

from .test_events_fast_path import CE, event, request
from .test_events_fast_path_hostile import BODY_LEN, _half_sent, both, raw_exchange  # noqa: F401

_HEAD = "POST /nobody HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Type: " + CE + "\r\n"

HOSTILE = [
    ("overlong UTF-8 slash", request("GET", "/sync/a%C0%AFb")),
    ("overlong UTF-8 dot", request("GET", "/sync/%C0%AE%C0%AE")),
    ("escaped dot segments", request("GET", "/sync/%2E%2E%2Fa")),
    ("lone surrogate escape", request("GET", "/sync/%ED%A0%80")),
    ("%00 in query key", request("GET", "/sync/1?%00=1")),
    ("semicolon path", request("GET", "/sync/1;x=y")),
    ("very long path", request("GET", "/sync/" + "a" * 20000)),
    ("header value of spaces", request("GET", "/sync/1", headers={"X-A": "   "})),
    ("Space header of spaces", request("POST", "/x", event(), {"Content-Type": CE, "Space": "   "})),
    ("Content-Type of spaces", request("POST", "/nobody", event(), {"Content-Type": "  "})),
    ("Content-Type with params", request("POST", "/nobody", event(), {"Content-Type": CE + " ; charset=UTF-8"})),
    ("2000 headers", request("GET", "/sync/2", headers={f"X-H{n}": "v" for n in range(2000)})),
    ("chunked", (_HEAD + "Transfer-Encoding: chunked\r\n\r\n").encode()
     + f"{BODY_LEN:x}\r\n".encode() + event() + b"\r\n0\r\n\r\n"),
    ("chunked and Content-Length", (_HEAD + f"Transfer-Encoding: chunked\r\nContent-Length: {BODY_LEN}\r\n\r\n")
     .encode() + f"{BODY_LEN:x}\r\n".encode() + event() + b"\r\n0\r\n\r\n"),
    ("chunked, bad size", (_HEAD + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").encode()),
    ("chunked, huge size", (_HEAD + "Transfer-Encoding: chunked\r\n\r\n" + "f" * 30 + "\r\nabc\r\n").encode()),
    ("Expect 100-continue", request("POST", "/nobody", event(), {"Content-Type": CE, "Expect": "100-continue"})),
    ("HEAD on a sync path", request("HEAD", "/sync/1")),
    ("TRACE", request("TRACE", "/sync/1")),
    ("websocket upgrade", request("GET", "/sync/1", headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                                            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                                            "Sec-WebSocket-Version": "13"})),
    ("obs-fold header", b"GET /sync/1 HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\nConnection: close\r\n\r\n"),
    ("NUL in header value", b"GET /sync/1 HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\nConnection: close\r\n\r\n"),
]


@pytest.mark.parametrize("raw", [raw for _, raw in HOSTILE], ids=[name for name, _ in HOSTILE])
async def test_hostile_request_answered_as_the_quart_app(both, raw: bytes) -> None:  # noqa: F811
    fast_url, quart_url, _, _ = both
    fast = await raw_exchange(fast_url, raw)
    quart = await raw_exchange(quart_url, raw)
    assert fast == quart, f"\nfast  {fast!r}\nquart {quart!r}"


async def test_draining_begun_while_a_body_is_half_sent_is_answered_as_the_quart_app(both) -> None:  # noqa: F811
    """The gateway starts draining after the headers and half the body arrived; the client then sends the rest."""
    fast_url, quart_url, _, gw = both
    raw = request("POST", "/x", event(), {"Content-Type": CE})
    cut = len(raw) - BODY_LEN // 2

    async def exchange(url: str) -> bytes:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(raw[:cut])
            await writer.drain()
            await asyncio.sleep(0.2)
            gw.plane.draining = True
            writer.write(raw[cut:])
            await writer.drain()
            received = await asyncio.wait_for(reader.read(-1), 10)
        finally:
            gw.plane.draining = False
            writer.close()
        return received.split(b"\r\n")[0] + b"|" + received.split(b"\r\n\r\n", 1)[-1]

    fast = await exchange(fast_url)
    assert fast.startswith(b"HTTP/1.1 "), fast
    assert fast == await exchange(quart_url)
