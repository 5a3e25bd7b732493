"""A recording HTTP function on Hypercorn in the test process, for the plugin tests that run the gateway
as a subprocess (``tests.gateway_fixtures.launch_gateway``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from quart import Quart, request

from tests.asgi_server import serving

@dataclass
class FunctionServer:
    """A recording HTTP function: every CloudEvent it receives, in arrival order."""

    url: str
    received: list[dict[str, Any]]


@asynccontextmanager
async def function_server() -> AsyncIterator[FunctionServer]:
    app = Quart("recording-function")
    received: list[dict[str, Any]] = []

    @app.post("/")
    async def call() -> Any:
        received.append(json.loads(await request.get_data(as_text=True)))
        return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "ok"}

    async with serving(app) as base_url:
        yield FunctionServer(url=f"{base_url}/", received=received)
