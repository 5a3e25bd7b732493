"""Run inside a fresh user + network + mount namespace (``unshare -r -n -m``) whose ``/etc/resolv.conf`` names
127.0.0.1 as the only name server (``options timeout:30 attempts:1``): serves on 127.0.0.1:53 a name server
that answers NXDOMAIN for names under ``nxdomain.test`` and reads every other query without ever answering,
runs a real Hypercorn function on 127.0.0.1, and prints one JSON line. The calls go through the gateway's
real `HTTPSession` (resolver ``gateway``) or, to show what the gateway did before, the same session with
aiohttp's `ThreadedResolver` (glibc ``getaddrinfo`` on the loop's executor threads; resolver ``threaded``).

``python -m tests.gateway.providers.dns_exhaustion_child MODE asyncio|uvloop gateway|threaded``, MODE one of

- ``exhaust``: `HANGING` concurrent calls (timeout `HANGING_TIMEOUT`) to distinct names that never resolve,
  then a call to the healthy function addressed as ``localhost``: how long it took, its answer or error, and
  how many hanging calls were still pending when it finished; then the hanging calls' errors.
- ``bound``: one call with a 20 s timeout to a name that never resolves: its error and seconds (the lookup's
  own bound, not the call's, ends it).
- ``nxdomain``: the error of a call to a name the server says does not exist.

The process leaves with ``os._exit``: threads blocked in glibc's ``getaddrinfo`` (threaded) stay blocked for
30 s, and waiting for them is not what is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import threading
import time
from typing import Any

import aiohttp
from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart

from gateway.providers import ProviderError
from gateway.providers import http as http_module
from gateway.providers.http import HTTPProvider, HTTPSession

HANGING = 16
HANGING_TIMEOUT = 2.0
HEALTHY_TIMEOUT = 5.0


def _question_end(query: bytes) -> int:
    """Offset just past the first question of a DNS query (name labels, then type and class)."""
    at = 12
    while query[at]:
        at += 1 + query[at]
    return at + 1 + 4


def _dns_server(queries: list[bytes]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))

    def serve_queries() -> None:
        while True:
            data, peer = sock.recvfrom(4096)
            queries.append(data)
            if b"\x08nxdomain\x04test\x00" in data:
                # Same id and question, flags: response, recursion desired + available, rcode 3 (NXDOMAIN).
                flags = bytes([0x80 | (data[2] & 0x01), 0x83])
                sock.sendto(data[:2] + flags + b"\x00\x01\x00\x00\x00\x00\x00\x00" + data[12:_question_end(data)], peer)
            # any other name: never answered

    threading.Thread(target=serve_queries, daemon=True).start()


async def _healthy_function() -> tuple[socket.socket, asyncio.Event, asyncio.Task[None]]:
    """A real Hypercorn function on 127.0.0.1: its listening socket (keep it: Hypercorn serves its file
    descriptor, which closes with the object), the event that stops it and its task."""
    app = Quart("healthy")

    @app.post("/fn")
    async def fn() -> str:
        return "healthy"

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = config.errorlog = None
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    await asyncio.sleep(0.3)
    return sock, stop, task


async def _outcome(provider: HTTPProvider) -> tuple[str | None, str | None, float]:
    """(answer, error, seconds) of one call."""
    started = time.monotonic()
    try:
        answer: str | None = (await provider.call(b"{}")).decode()
        error = None
    except ProviderError as exc:
        answer, error = None, str(exc)
    return answer, error, time.monotonic() - started


async def _exhaust(session: HTTPSession) -> dict[str, Any]:
    listening, stop, server = await _healthy_function()
    port = listening.getsockname()[1]
    hanging = [asyncio.create_task(_outcome(HTTPProvider(
        {"url": f"http://fn{n}.hanging-dns.test:8080/fn", "timeout": HANGING_TIMEOUT}, session)))
        for n in range(HANGING)]
    await asyncio.sleep(0.3)  # every hanging lookup has started
    healthy = HTTPProvider({"url": f"http://localhost:{port}/fn", "timeout": HEALTHY_TIMEOUT}, session)
    answer, error, seconds = await _outcome(healthy)
    pending = sum(not task.done() for task in hanging)
    outcomes = await asyncio.gather(*hanging)
    stop.set()
    await server
    with contextlib.suppress(OSError):  # Hypercorn closed the descriptor already
        listening.close()
    return {"healthy_answer": answer, "healthy_error": error, "healthy_seconds": seconds,
            "hanging_pending_when_healthy_answered": pending,
            "hanging_errors": [error for _, error, _ in outcomes],
            "hanging_seconds_max": max(seconds for _, _, seconds in outcomes)}


async def _one(session: HTTPSession, url: str, timeout: float) -> dict[str, Any]:
    answer, error, seconds = await _outcome(HTTPProvider({"url": url, "timeout": timeout}, session))
    return {"answer": answer, "error": error, "seconds": seconds}


async def _run(mode: str) -> dict[str, Any]:
    session = HTTPSession(100)
    try:
        if mode == "exhaust":
            return await _exhaust(session)
        if mode == "bound":
            return await _one(session, "http://fn.hanging-dns.test:8080/fn", 20.0)
        assert mode == "nxdomain", mode
        return await _one(session, "http://fn.nxdomain.test:8080/fn", 5.0)
    finally:
        await session.close()


def main() -> None:
    mode, loop_kind, resolver = sys.argv[1:4]
    if resolver == "threaded":
        http_module.FunctionResolver = aiohttp.ThreadedResolver  # type: ignore[misc,assignment]
    else:
        assert resolver == "gateway", resolver
    queries: list[bytes] = []
    _dns_server(queries)
    if loop_kind == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        assert loop_kind == "asyncio", loop_kind
        loop = asyncio.new_event_loop()
    result = loop.run_until_complete(_run(mode))
    result["queries_for_hanging_names"] = sum(b"hanging-dns" in q for q in queries)
    result["queries_for_localhost"] = sum(b"\x09localhost" in q for q in queries)
    print(json.dumps(result), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
