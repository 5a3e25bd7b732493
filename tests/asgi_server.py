"""Serve a test's own ASGI app (a recording function, an authorizer) on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Run ``app`` on Hypercorn until the block ends; yields its base URL (no trailing slash).

    The socket is bound and listening before Hypercorn starts, so the URL is usable at once: no
    start-up polling, and no race for the port between choosing it and binding it.
    """
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{os.dup(sock.fileno())}"]  # Hypercorn owns the duplicate
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1
    sock.close()
    shutdown = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=shutdown.wait))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        shutdown.set()
        await task
