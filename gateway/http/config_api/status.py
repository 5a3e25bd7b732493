"""``/v1/status`` (200 while the gateway runs, 503 while it drains) and ``/v1/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio

from quart import Blueprint, Response

from gateway.metrics import CONTENT_TYPE_LATEST

from ._common import gateway

blueprint = Blueprint("status", __name__, url_prefix="/v1")


@blueprint.get("/status")
async def status() -> Response:
    # Upstream answered 200 with an empty body; a draining gateway says so, so a load balancer stops
    # sending it new work.
    if gateway().draining:
        return Response("", status=503)
    return Response("", status=200)


@blueprint.get("/metrics")
async def metrics() -> Response:
    # Formatting every series takes a while for a big registry: never on the event loop, which would
    # hold up every other request (events included) for as long.
    body = await asyncio.to_thread(gateway().metrics.render)
    return Response(body, status=200, content_type=CONTENT_TYPE_LATEST)
