"""Real servers for the plugin operations tests: the gateway as a subprocess (``python -m gateway serve``,
exactly what an operator runs) and a recording HTTP function on Hypercorn in the test process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from quart import Quart, request

from tests.asgi_server import serving

REPO_ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class GatewayProcess:
    """``python -m gateway serve ARGS`` on free ports; ``stop()`` sends SIGTERM and waits."""

    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    events_port: int = field(default_factory=free_port)
    config_port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    log_path: Path | None = None

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.events_port}"

    @property
    def config_url(self) -> str:
        return f"http://127.0.0.1:{self.config_port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gateway", "serve", "--events-port", str(self.events_port),
                "--config-port", str(self.config_port), *self.args]

    def start(self, log_path: Path, wait: bool = True, timeout: float = 30.0) -> None:
        self.log_path = log_path
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **self.env}
        log = open(log_path, "w")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, text=True,
                                        env=env, cwd=log_path.parent)
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.config_url}/v1/status", timeout=1).status_code == 200:
                    with socket.create_connection(("127.0.0.1", self.events_port), timeout=1):
                        return
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway not ready after {timeout}s:\n{self.log()}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


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
