"""A client that leaves while its sync request waits for a slow function: the Quart app cancels the request's
handling at the disconnect (its receiver task sees ``http.disconnect``). Served as the gateway serves it
(gateway/server.py: Hypercorn's keep-alive timeout 75 s), the function's timeout 60 s and its answer 30 s
away: nothing else ends the request within the test. The fast path must cancel it too (it held it until the function answered: up to
the function's timeout, 900 s at most), or a client can pile up requests in flight without holding a single
connection open."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.http.events_api import EventsApp, create_app
from tests.asgi_server import AsgiServer

from .event_plane_harness import FunctionServer, GatewayFactory


class Counting:
    """The event plane, counting the requests it is handling."""

    def __init__(self, plane: Any) -> None:
        self._plane = plane
        self.in_flight = 0

    @property
    def draining(self) -> bool:
        return bool(self._plane.draining)

    async def handle(self, request: Any, space: str) -> Any:
        self.in_flight += 1
        try:
            return await self._plane.handle(request, space)
        finally:
            self.in_flight -= 1


@pytest.mark.parametrize("fast", [False, True], ids=["quart", "fast path"])
async def test_a_request_whose_client_left_is_not_held(event_gateway: GatewayFactory, recorder: FunctionServer,
                                                       fast: bool) -> None:
    gw = await event_gateway()
    await gw.function("slow", recorder.target("slow"), provider={"timeout": 60})
    await gw.subscribe(type="sync", event_type="http.request", function_id="slow", path="/slow", method="GET")
    recorder.delays["slow"] = 30
    plane = Counting(gw.plane)
    app = create_app(plane)
    # Hypercorn's keep-alive timeout as gateway/server.py sets it
    server = AsgiServer(app if fast else EventsApp(app.quart, plane, max_batch_events=1000, fast=False),
                        log_errors=False, keep_alive_timeout=75)
    url = await server.start()
    host, port = url.removeprefix("http://").split(":")
    try:
        writers = []
        for _ in range(20):
            _, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
            await writer.drain()
            writers.append(writer)
        for _ in range(200):  # every request is being handled: waiting for the function, which answers in 30 s
            if plane.in_flight == 20:
                break
            await asyncio.sleep(0.05)
        assert plane.in_flight == 20
        for writer in writers:
            writer.close()
        for _ in range(200):
            if plane.in_flight == 0:
                break
            await asyncio.sleep(0.05)
        assert plane.in_flight == 0, f"{plane.in_flight} requests still held after their clients left"
    finally:
        await server.stop()
