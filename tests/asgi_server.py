"""Serve a test's own ASGI app (a recording function, an authorizer, an OTLP receiver) on a free loopback
port, in the test's event loop: the one launcher of the in-process test servers."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config


class AsgiServer:
    """``app`` on Hypercorn on 127.0.0.1, a free port: ``url = await server.start()``, ``await server.stop()``.

    The socket is bound and listening before Hypercorn starts, so the URL is usable at once: no
    start-up polling, and no race for the port between choosing it and binding it. ``log_errors``:
    Hypercorn's error log on stderr (False: silent).
    """

    def __init__(self, app: Any, *, log_errors: bool = True) -> None:
        self.app = app
        self.log_errors = log_errors
        self.url = ""
        self._shutdown = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        sock = socket.create_server(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{os.dup(sock.fileno())}"]  # Hypercorn owns the duplicate
        config.accesslog = None
        if not self.log_errors:
            config.errorlog = None
        config.graceful_timeout = 1
        sock.close()
        self.url = f"http://127.0.0.1:{port}"
        self._task = asyncio.create_task(serve(self.app, config, shutdown_trigger=self._shutdown.wait))
        await asyncio.sleep(0)
        return self.url

    async def stop(self) -> None:
        self._shutdown.set()
        if self._task is not None:
            await self._task


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Run ``app`` (an `AsgiServer`, its errors not logged) until the block ends; yields its base URL (no
    trailing slash)."""
    server = AsgiServer(app, log_errors=False)
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()
