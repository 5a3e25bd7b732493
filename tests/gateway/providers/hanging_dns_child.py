"""Run inside a fresh user + network + mount namespace (``unshare -r -n -m``) whose ``/etc/resolv.conf`` names
127.0.0.1 as the only name server: serves a DNS server on 127.0.0.1:53 that reads every query and never
answers, calls an http function whose host name can then never resolve, and prints one JSON line: the
error, the seconds the call took (on asyncio's loop or uvloop's, which the gateway runs on), the queries the server received and whether the event loop kept running
while the resolution hung.

The resolution is the gateway's real one (`gateway.providers.dns.FunctionResolver`: c-ares over UDP to the
configured name server, which would give up after its own ~3 s bound). The process leaves with ``os._exit``:
waiting for the abandoned lookup is not what is measured here.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time

from gateway.providers import ProviderError
from gateway.providers.http import HTTPProvider, HTTPSession

HOST = "fn.hanging-dns.test"


def _silent_dns_server(queries: list[bytes]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))

    def serve() -> None:
        while True:
            data, _ = sock.recvfrom(4096)
            queries.append(data)  # and never answer

    threading.Thread(target=serve, daemon=True).start()


async def _call(timeout: float) -> dict[str, object]:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    session = HTTPSession(4)
    provider = HTTPProvider({"url": f"http://{HOST}:8080/fn", "timeout": timeout}, session)
    started = time.monotonic()
    try:
        await provider.call(b"{}")
        error = None
    except ProviderError as exc:
        error = str(exc)
    took = time.monotonic() - started
    ticker.cancel()
    return {"error": error, "seconds": took, "loop_ticks": ticks}


def main() -> None:
    """``python -m tests.gateway.providers.hanging_dns_child TIMEOUT asyncio|uvloop``"""
    timeout, loop_kind = float(sys.argv[1]), sys.argv[2]
    queries: list[bytes] = []
    _silent_dns_server(queries)
    if loop_kind == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    result = loop.run_until_complete(_call(timeout))
    result["queries_for_host"] = sum(HOST.split(".")[0].encode() in q for q in queries)
    print(json.dumps(result), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
