"""Fixtures of tests/gateway/pipeline: a real event plane on a real Hypercorn server, on the real store/view/plugin manager, plus a real
HTTP function server that records what it receives and answers what a test scripts."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Quart, Response, request

from gateway.config.models import CORS, EventType, Function, Subscription
from gateway.http.events_api import create_app as create_events_app
from gateway.pipeline import EventPlane
from gateway.metrics import Metrics
from gateway.plugins.manager import PluginManager
from gateway.queue.memory import MemoryQueue
from gateway.store.base import Kind
from gateway.store.memory import MemoryStore
from gateway.config.view import ConfigView
from tests.asgi_server import AsgiServer


@dataclass
class FunctionServer:
    """``POST /<name>`` records the request; the answer is scripted per name."""

    url: str = ""
    received: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    answers: dict[str, tuple[int, bytes, str]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    _changed: asyncio.Condition | None = None

    def target(self, name: str) -> str:
        return f"{self.url}/{name}"

    def answer(self, name: str, body: Any, status: int = 200, content_type: str = "application/json") -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers[name] = (status, raw, content_type)

    async def wait_for(self, name: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        assert self._changed is not None
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.received[name]) >= count), timeout)
        return self.received[name]

    def app(self) -> Quart:
        app = Quart("function_server")

        @app.route("/<name>", methods=["POST", "GET"])
        async def call(name: str) -> Response:
            body = await request.get_data()
            try:
                payload = json.loads(body)
            except ValueError:
                payload = body.decode()
            if name in self.delays:
                await asyncio.sleep(self.delays[name])
            assert self._changed is not None
            async with self._changed:
                self.received[name].append({"headers": dict(request.headers), "body": payload})
                self._changed.notify_all()
            if self.failures.get(name, 0) > 0:
                self.failures[name] -= 1
                return Response("temporarily broken", status=500)
            status, raw, content_type = self.answers.get(
                name, (200, json.dumps({"statusCode": 200, "body": "ok"}).encode(), "application/json"))
            return Response(raw, status=status, content_type=content_type)

        return app


@pytest.fixture
async def recorder() -> AsyncIterator[FunctionServer]:
    server = FunctionServer()
    server._changed = asyncio.Condition()
    http = AsgiServer(server.app(), log_errors=False)
    server.url = await http.start()
    yield server
    await http.stop()


@dataclass
class EventGateway:
    """A running event plane: its URL, a client, and helpers that write configuration to its store."""

    url: str
    client: httpx.AsyncClient
    store: MemoryStore
    view: ConfigView
    plane: EventPlane
    metrics: Metrics

    async def _write(self, kind: Kind, space: str, id: str, doc: dict[str, Any]) -> None:
        existing = await self.store.get(kind, space, id)
        entry = (await self.store.update(kind, space, id, doc) if existing
                 else await self.store.create(kind, space, id, doc))
        assert await self.view.wait_for_revision(entry.revision)

    async def event_type(self, name: str, space: str = "default", **fields: Any) -> None:
        model = EventType.model_validate({"name": name, "space": space, **fields})
        await self._write(Kind.EVENT_TYPES, space, name, model.to_json())

    async def function(self, function_id: str, url: str, space: str = "default", **fields: Any) -> None:
        provider = {"url": url, **fields.pop("provider", {})}
        model = Function.model_validate(
            {"functionId": function_id, "space": space, "type": "http", "provider": provider, **fields})
        await self._write(Kind.FUNCTIONS, space, function_id, model.to_json())

    async def typed_function(self, function_id: str, type: str, provider: dict[str, Any],
                             space: str = "default") -> None:
        model = Function.model_validate({"functionId": function_id, "space": space, "type": type,
                                         "provider": provider})
        await self._write(Kind.FUNCTIONS, space, function_id, model.to_json())

    async def subscribe(self, type: str, event_type: str, function_id: str, path: str = "/",
                        method: str = "POST", space: str = "default") -> None:
        model = Subscription.model_validate({"type": type, "eventType": event_type, "functionId": function_id,
                                             "path": path, "method": method, "space": space})
        await self._write(Kind.SUBSCRIPTIONS, space, model.subscription_id, model.to_json())

    async def cors(self, space: str = "default", **fields: Any) -> None:
        model = CORS.model_validate({"space": space, **fields})
        await self._write(Kind.CORS, space, model.cors_id, model.to_json())

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


GatewayFactory = Callable[..., Awaitable[EventGateway]]


@pytest.fixture
async def event_gateway(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    started: list[Callable[[], Awaitable[None]]] = []

    async def start(plugins: list[bytes] = (), workers: int = 8, max_events: int = 1000) -> EventGateway:  # type: ignore[assignment]
        paths = []
        for index, wasm in enumerate(plugins):
            path = tmp_path / f"plugin{len(started)}_{index}.wasm"
            path.write_bytes(wasm)
            paths.append(str(path))
        store = MemoryStore()
        await store.open()
        metrics = Metrics()
        view = ConfigView(store, metrics)
        await view.start()
        plugins = PluginManager(view=view, metrics=metrics, plugin_paths=paths)
        await plugins.start()
        plane = EventPlane(view, plugins, metrics, queue=MemoryQueue(max_events), workers=workers)
        await plane.start()
        server = AsgiServer(create_events_app(plane), log_errors=False, backlog=512)
        url = await server.start()
        client = httpx.AsyncClient(base_url=url, timeout=15)

        async def stop() -> None:
            await client.aclose()
            await server.stop()
            await plane.drain(5)
            await plane.close()
            await plugins.close()
            await view.close()
            await store.close()

        started.append(stop)
        return EventGateway(url, client, store, view, plane, metrics)

    yield start
    for stop in reversed(started):
        await stop()
