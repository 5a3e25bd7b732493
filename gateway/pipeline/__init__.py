"""The event plane: everything between an HTTP request on the Events API and the functions it reaches.

:class:`EventPlane` is what the runtime (``gateway.runtime``) builds, starts, drains and closes; it owns
the provider pool, the async queue and the Quart app of the Events API.
"""

from __future__ import annotations

from typing import Any

from gateway.providers import ProviderPool
from gateway.providers.http import DEFAULT_MAX_RESPONSE_BYTES
from gateway.routing.table import RouteTable

from .async_queue import AsyncQueue
from .invoke import Invoker
from .processor import Processor
from .emitter import SystemEmitter

__all__ = ["EventPlane"]


class EventPlane:
    """Built from the runtime's gateway object (``.settings``, ``.view``, ``.metrics``, ``.plugins``)."""

    def __init__(self, gateway: Any) -> None:
        settings = gateway.settings
        workers = int(getattr(settings, "workers", 100) or 100)
        backlog = int(getattr(settings, "workers_backlog", 200) or 200)
        self.metrics = gateway.metrics
        self.draining = False
        self.routes = RouteTable(gateway.view)
        self.providers = ProviderPool(
            max_connections=max(100, workers * 2),
            max_response_bytes=int(getattr(settings, "max_function_response_bytes", DEFAULT_MAX_RESPONSE_BYTES)))
        processor_ref: list[Processor] = []

        def deliver_system(space: str, subscription: Any, event: dict[str, Any], plugins: Any) -> None:
            processor_ref[0].enqueue_system(space, subscription, event, plugins)

        self.emitter = SystemEmitter(self.routes, self.metrics, deliver_system)
        self.invoker = Invoker(gateway.view, self.providers, self.emitter, self.metrics)

        def queue_factory(handler: Any, on_drop: Any) -> AsyncQueue:
            return AsyncQueue(
                handler, on_drop, workers=workers, backlog=backlog,
                on_depth=self.metrics.events_backlog.set,
                on_retry=lambda d: self.metrics.async_retries.labels(d.space, d.function_id).inc())

        self.processor = Processor(gateway.view, gateway.plugins, self.metrics, self.routes, self.invoker,
                                   self.emitter, queue_factory)
        processor_ref.append(self.processor)
        from gateway.http.events_api import create_app  # the HTTP layer sits on top of this package

        self.app = create_app(self)

    async def start(self) -> None:
        self.processor.queue.start()

    async def drain(self, timeout: float) -> bool:
        """Refuse new events (503) and wait for queued deliveries; False when ``timeout`` ran out."""
        self.draining = True
        return await self.processor.queue.drain(timeout)

    async def close(self) -> None:
        self.draining = True
        await self.processor.queue.close()
        await self.providers.close()
