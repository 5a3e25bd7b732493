"""The event pipeline: everything between a parsed HTTP request on the Events API and the functions it
reaches (it never imports the HTTP edge).

:class:`EventPlane` wires the pieces and is what the composition root (``gateway.runtime``) starts,
drains and closes; the root also builds the Events API app (``gateway.http.events_api``) around
:meth:`EventPlane.handle`. The pieces, by job:

- :mod:`.pipeline`: the request pipeline (parse -> ``event.received`` -> route -> invoke -> reply);
- :mod:`.dispatch`: the async dispatch (deliver what the queue holds, drop what it gives up);
- :mod:`.deliveries` and :mod:`.async_queue`: what waits in the queue, and the queue with its retries;
- :mod:`.invoke`: one function call wrapped in its system events; :mod:`.emitter`: one system event;
- :mod:`.authorizer`, :mod:`.sync_response`, :mod:`.reply`: the contracts at the ends.
"""

from __future__ import annotations

from gateway.common import MAX_PAYLOAD_BYTES
from gateway.config.view import ConfigView
from gateway.events.parse import RawRequest
from gateway.metrics import Metrics
from gateway.plugins.contract import CurrentPlugins
from gateway.providers import ProviderPool
from gateway.routing.table import RouteTable

from .async_queue import AsyncQueue
from .deliveries import DeliveryQueue
from .dispatch import Dispatcher
from .emitter import SystemEmitter
from .invoke import Invoker
from .pipeline import RequestPipeline
from .reply import Reply

__all__ = ["EventPlane", "Reply"]


class EventPlane:
    """The event pipeline of one gateway: the provider pool, the async queue and what feeds and drains it."""

    def __init__(self, view: ConfigView, plugins: CurrentPlugins, metrics: Metrics, *, workers: int = 100,
                 backlog: int = 200, max_response_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        self.metrics = metrics
        self.draining = False
        self.routes = RouteTable(view)
        self.providers = ProviderPool(max_connections=max(100, workers * 2), max_response_bytes=max_response_bytes)
        self.queue = AsyncQueue(
            workers=workers, backlog=backlog, on_depth=metrics.events_backlog.set,
            on_retry=lambda d: metrics.async_retries.labels(d.space, d.function_id).inc())
        sink = DeliveryQueue(view, self.queue)
        self.emitter = SystemEmitter(self.routes, metrics, sink)
        self.invoker = Invoker(view, self.providers, self.emitter, metrics)
        self.dispatcher = Dispatcher(self.invoker, self.emitter, metrics)
        self.pipeline = RequestPipeline(view, plugins, metrics, self.routes, self.invoker, self.emitter, sink)

    async def handle(self, request: RawRequest, space: str) -> Reply:
        return await self.pipeline.handle(request, space)

    async def start(self) -> None:
        self.queue.start(self.dispatcher.deliver, self.dispatcher.drop)

    async def drain(self, timeout: float) -> bool:
        """Refuse new events (503) and wait for queued deliveries; False when ``timeout`` ran out."""
        self.draining = True
        return await self.queue.drain(timeout)

    async def close(self) -> None:
        self.draining = True
        await self.queue.close()
        await self.providers.close()
