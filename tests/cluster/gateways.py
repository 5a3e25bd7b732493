"""Gateway processes of a cluster test: ``python -m gateway serve --db etcd://...`` on free ports, plus a
recording HTTP function in the test process. Also used by ``bench/bench_cluster.py``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from quart import Quart, request

from tests.asgi_server import serving

from .etcd_server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENT_TYPE = "user.created"


def cloudevent(event_type: str = EVENT_TYPE, data: Any = None) -> dict[str, Any]:
    return {"specversion": "1.0", "type": event_type, "source": "/cluster-test", "id": str(uuid.uuid4()),
            "datacontenttype": "application/json", "data": data if data is not None else {"n": 1}}


@dataclass
class GatewayNode:
    """One gateway process; its Config API and Events API on their own free ports."""

    name: str
    db: str
    workdir: Path
    extra_args: list[str] = field(default_factory=list)
    events_port: int = field(default_factory=free_port)
    config_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.events_port}"

    @property
    def config_url(self) -> str:
        return f"http://127.0.0.1:{self.config_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"gateway-{self.name}.log"

    def start(self) -> None:
        command = [sys.executable, "-m", "gateway", "serve", "--db", self.db,
                   "--events-port", str(self.events_port), "--config-port", str(self.config_port),
                   "--log-level", "info", *self.extra_args]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"gateway {self.name} exited with {self.process.returncode}:\n{self.log()}")
                try:
                    if (await client.get(f"{self.config_url}/v1/status")).status_code == 200:
                        await client.get(f"{self.events_url}/")
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"gateway {self.name} not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    # -- Config API helpers (upstream's resource shapes) ----------------------------------------------

    async def config(self, client: httpx.AsyncClient, method: str, path: str, body: Any = None,
                     expect: int | tuple[int, ...] = (200, 201, 204)) -> httpx.Response:
        response = await client.request(method, f"{self.config_url}/v1/spaces/default{path}", json=body)
        expected = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in expected, (
            f"{method} {path} on gateway {self.name}: {response.status_code} {response.text}")
        return response

    async def setup_function(self, client: httpx.AsyncClient, function_id: str, url: str) -> None:
        """The event type (if missing) and an HTTP function."""
        await self.config(client, "POST", "/eventtypes", {"name": EVENT_TYPE}, expect=(200, 201, 409))
        await self.config(client, "POST", "/functions",
                          {"functionId": function_id, "type": "http", "provider": {"url": url}})

    async def subscribe(self, client: httpx.AsyncClient, function_id: str, path: str,
                        kind: str = "sync") -> str:
        response = await self.config(client, "POST", "/subscriptions", {
            "type": kind, "eventType": EVENT_TYPE, "functionId": function_id, "path": path, "method": "POST"})
        return response.json()["subscriptionId"]

    # -- Events API ------------------------------------------------------------------------------------

    async def emit(self, client: httpx.AsyncClient, path: str, event: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        return await client.post(f"{self.events_url}{path}", content=json.dumps(event or cloudevent()),
                                 headers={"content-type": "application/cloudevents+json", **(headers or {})})

    async def routes(self, client: httpx.AsyncClient, path: str) -> bool:
        """True once this gateway's view routes ``path`` to a sync subscriber (the function answered)."""
        return (await self.emit(client, path)).status_code == 200


async def start_cluster(db: str, count: int, workdir: Path, extra_args: list[str] | None = None) -> list[GatewayNode]:
    nodes = [GatewayNode(name="ABCDEFGH"[i], db=db, workdir=workdir, extra_args=list(extra_args or []))
             for i in range(count)]
    for node in nodes:
        node.start()
    try:
        await asyncio.gather(*(node.wait_ready() for node in nodes))
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return nodes


@dataclass
class RecordingFunction:
    """HTTP functions on one server: ``/fn/<name>`` answers ``<name>`` and records the event; ``/deny``
    is an authorizer that refuses everything."""

    base_url: str
    received: dict[str, list[dict[str, Any]]]

    def url(self, name: str) -> str:
        return f"{self.base_url}/fn/{name}"

    @property
    def deny_url(self) -> str:
        return f"{self.base_url}/deny"


@asynccontextmanager
async def function_server() -> AsyncIterator[RecordingFunction]:
    app = Quart("cluster-function")
    received: dict[str, list[dict[str, Any]]] = {}

    @app.post("/fn/<name>")
    async def call(name: str) -> Any:
        received.setdefault(name, []).append(json.loads(await request.get_data(as_text=True)))
        return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": name}

    @app.post("/deny")
    async def deny() -> Any:
        return {"error": {"message": "denied by the cluster test authorizer"}}

    @app.get("/ping")
    async def ping() -> str:
        return "ok"

    async with serving(app) as base_url:
        yield RecordingFunction(base_url=base_url, received=received)
