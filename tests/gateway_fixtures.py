"""Shared fixtures that start real gateways and a real HTTP function server.

Registered for the whole suite through ``pytest_plugins`` in ``tests/conftest.py``.

- ``gateway_server``: a factory. ``gw = await gateway_server(plugins=[...], db="memory", **settings)``
  starts a real :class:`gateway.runtime.Gateway` with both APIs on Hypercorn on free ports in the test's
  event loop; ``gw.events_url`` / ``gw.config_url``, ``gw.gateway`` (the runtime), ``await gw.stop()``.
  Every gateway still running at the end of the test is stopped.
- ``launch_gateway(*args, log_path=...)``: the one launcher of ``python -m gateway serve ...`` as a
  subprocess (for ``--processes N``, signals, restarts); ports are read back from its log. The
  ``gateway_process`` fixture wraps it and kills what is left at the end of the test.
- ``function_server``: a real HTTP server recording every request it receives; script its answers
  with ``respond(...)`` / ``script([...])``. ``function_server_factory`` makes more of them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Quart, Response, request

from gateway.server import RunningGateway, start_gateway
from gateway.settings import Settings
from gateway.store.base import Store
from tests.asgi_server import AsgiServer

REPO_ROOT = Path(__file__).resolve().parent.parent

__all__ = [
    "FunctionServer",
    "GatewayProcess",
    "launch_gateway",
    "RecordedRequest",
    "ScriptedResponse",
]


# -- gateways in the test's event loop ----------------------------------------------------------------


@pytest.fixture
async def gateway_server(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[RunningGateway] = []

    async def start(*, plugins: list[str | Path] | tuple[str | Path, ...] = (), store: Store | None = None,
                    db: str | None = None, close_grace: float = 0.0, **overrides: Any) -> RunningGateway:
        """Start a gateway. ``db`` defaults to ``memory``; pass ``db="sqlite:..."`` or a ``store``
        instance; any other :class:`Settings` field as a keyword. ``close_grace`` defaults to 0 here (no
        kept-alive client of a test is left waiting for the shutdown's 0.5 s pause; the shutdown tests
        run real processes, which keep it)."""
        values: dict[str, Any] = {"events_port": 0, "config_port": 0, "drain_timeout": 5.0,
                                  "data_dir": str(tmp_path / "data")}
        values.update(overrides)
        values["plugins"] = tuple(str(p) for p in plugins)
        values["db"] = db if db is not None else ("memory" if store is None else None)
        running = await start_gateway(Settings(**values), store=store, close_grace=close_grace)
        started.append(running)
        return running

    yield start
    for running in reversed(started):
        await running.stop()


# -- gateways as subprocesses -----------------------------------------------------------------


_LISTEN = re.compile(r"(events|config) API (?:listening )?on (https?://[^\s,]+)")


@dataclass
class GatewayProcess:
    """``python -m gateway serve`` in a subprocess, its log in ``log_path``; made by :func:`launch_gateway`."""

    process: subprocess.Popen[bytes]
    log_path: Path
    events_url: str = ""
    config_url: str = ""

    @property
    def events_port(self) -> int:
        return int(self.events_url.rsplit(":", 1)[1])

    @property
    def config_port(self) -> int:
        return int(self.config_url.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout)

    wait_exit = wait

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the log names both APIs' addresses, the Config API answers ``/v1/status`` and the
        Events API accepts connections; fails the test if the process exits or the time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gateway exited with {self.process.returncode}; log:\n{self.log()}")
            found = {api: url for api, url in _LISTEN.findall(self.log())}
            if "events" in found and "config" in found:
                self.events_url, self.config_url = found["events"], found["config"]
                try:
                    if httpx.get(self.config_url + "/v1/status", timeout=2).status_code == 200:
                        with socket.create_connection(("127.0.0.1", self.events_port), timeout=1):
                            return
                except (httpx.HTTPError, OSError):
                    pass
            time.sleep(0.1)
        self.process.kill()
        raise AssertionError(f"gateway not ready within {timeout}s; log:\n{self.log()}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; a gateway that does not stop in time is killed and fails the test."""
        if self.process.poll() is not None:
            return self.process.returncode
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"gateway did not stop within {timeout}s; log:\n{self.log()}") from None


def launch_gateway(*args: str, log_path: Path, cwd: Path | None = None, env: dict[str, str] | None = None,
                   wait: bool = True, ready_timeout: float = 60.0) -> GatewayProcess:
    """The one way the tests start a gateway process: ``python -m gateway serve --events-port 0
    --config-port 0 <args>`` (exactly what an operator runs), output in ``log_path``, working directory
    ``cwd`` (default: the log's directory), the ports read back from the log. ``wait``: until it serves
    (:meth:`GatewayProcess.wait_ready`); without it, e.g. to see a start-up refused."""
    command = [sys.executable, "-m", "gateway", "serve", "--events-port", "0", "--config-port", "0", *args]
    python_path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=cwd or log_path.parent, stdout=log_file, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONPATH": python_path, **(env or {})})
    handle = GatewayProcess(process, log_path)
    if wait:
        handle.wait_ready(ready_timeout)
    return handle


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """``gateway_process(*args, env=..., wait=True, cwd=REPO_ROOT)``: :func:`launch_gateway` with its log
    in the test's tmp_path; every process still running at the end of the test is killed."""
    processes: list[GatewayProcess] = []

    def spawn(*args: str, env: dict[str, str] | None = None, ready_timeout: float = 60.0, wait: bool = True,
              cwd: Path = REPO_ROOT) -> GatewayProcess:
        log_path = tmp_path / f"gateway-{len(processes)}.log"
        handle = launch_gateway(*args, log_path=log_path, cwd=cwd, env=env, wait=False)
        processes.append(handle)
        if wait:
            handle.wait_ready(ready_timeout)
        return handle

    yield spawn
    for handle in processes:
        if handle.process.poll() is None:
            handle.process.kill()
            handle.process.wait()


# -- the function server ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class ScriptedResponse:
    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering (timeouts, drains).
    delay: float = 0.0


class FunctionServer:
    """A real HTTP function: records requests, answers as scripted (default 200 ``{"ok": true}``)."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._default = ScriptedResponse(200, {"ok": True})
        self._script: list[ScriptedResponse] = []
        self._arrived = asyncio.Condition()
        self.url = ""
        self.app = self._build_app()
        self._server = AsgiServer(self.app)

    def respond(self, status: int = 200, body: Any = None, headers: dict[str, str] | None = None,
                delay: float = 0.0) -> None:
        """Answer every later request this way (after any scripted ones)."""
        self._default = ScriptedResponse(status, body, headers or {}, delay)

    def script(self, responses: list[ScriptedResponse]) -> None:
        """Answer the next requests with these, in order, then fall back to :meth:`respond`'s."""
        self._script = list(responses)

    async def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Wait until ``count`` requests arrived (fails the test on timeout)."""
        async def enough() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.requests) >= count)
        try:
            await asyncio.wait_for(enough(), timeout)
        except TimeoutError:
            raise AssertionError(f"function server got {len(self.requests)} requests, expected {count} "
                                 f"within {timeout}s") from None
        return self.requests[:count]

    def _build_app(self) -> Quart:
        app = Quart("function_server")

        @app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
        @app.route("/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
        async def record(path: str) -> Response:
            recorded = RecordedRequest(request.method, request.path, request.query_string.decode(),
                                       dict(request.headers), await request.get_data())
            answer = self._script.pop(0) if self._script else self._default
            async with self._arrived:
                self.requests.append(recorded)
                self._arrived.notify_all()
            if answer.delay:
                await asyncio.sleep(answer.delay)
            body = answer.body
            headers = dict(answer.headers)
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
                headers.setdefault("Content-Type", "application/json")
            return Response(body if body is not None else b"", status=answer.status, headers=headers)

        return app

    async def start(self) -> None:
        self.url = await self._server.start()

    async def stop(self) -> None:
        await self._server.stop()


@pytest.fixture
async def function_server_factory() -> AsyncIterator[Callable[[], Any]]:
    servers: list[FunctionServer] = []

    async def make() -> FunctionServer:
        server = FunctionServer()
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


@pytest.fixture
async def function_server(function_server_factory: Callable[[], Any]) -> FunctionServer:
    return await function_server_factory()
