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
    """``app`` on Hypercorn on 127.0.0.1: ``url = await server.start()``, ``await server.stop()``; it can be
    started again after a stop (on the same port when ``port`` was given).

    The socket is bound and listening before Hypercorn starts, so the URL is usable at once: no
    start-up polling, and no race for the port between choosing it and binding it. ``port``: 0 (the
    default) for a free one, or one chosen in advance (a function that is down until started).
    ``log_errors``: Hypercorn's error log on stderr (False: silent). ``keep_alive_timeout``: Hypercorn's
    (None: its default; the gateway's own servers use 75 s, gateway/server.py). ``backlog``: connections the
    kernel queues before they are accepted (None: Hypercorn's default, 100; a test opening hundreds of
    connections at once needs more).
    """

    def __init__(self, app: Any, *, port: int = 0, log_errors: bool = True,
                 keep_alive_timeout: float | None = None, backlog: int | None = None) -> None:
        self.app = app
        self.port = port
        self.log_errors = log_errors
        self.keep_alive_timeout = keep_alive_timeout
        self.backlog = backlog
        self.url = f"http://127.0.0.1:{port}" if port else ""
        self._shutdown = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        config = Config()
        if self.backlog is not None:
            config.backlog = self.backlog  # Hypercorn listens again on the socket with it
        sock = socket.create_server(("127.0.0.1", self.port), backlog=config.backlog)
        port = sock.getsockname()[1]
        self._shutdown = asyncio.Event()
        config.bind = [f"fd://{os.dup(sock.fileno())}"]  # Hypercorn owns the duplicate
        config.accesslog = None
        if not self.log_errors:
            config.errorlog = None
        config.graceful_timeout = 1
        if self.keep_alive_timeout is not None:
            config.keep_alive_timeout = self.keep_alive_timeout
        sock.close()
        self.url = f"http://127.0.0.1:{port}"
        self._task = asyncio.create_task(serve(self.app, config, shutdown_trigger=self._shutdown.wait))
        await asyncio.sleep(0)
        return self.url

    async def stop(self) -> None:
        """Stop serving (nothing when not started); returns once Hypercorn has closed."""
        self._shutdown.set()
        if self._task is not None:
            task, self._task = self._task, None
            await task


@asynccontextmanager
async def serving(app: Any, *, backlog: int | None = None) -> AsyncIterator[str]:
    """Run ``app`` (an `AsgiServer`, its errors not logged; ``backlog`` as there) until the block ends; yields
    its base URL (no trailing slash)."""
    server = AsgiServer(app, log_errors=False, backlog=backlog)
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()
