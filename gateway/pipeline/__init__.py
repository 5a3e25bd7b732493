"""The event pipeline: everything between a parsed HTTP request on the Events API and the functions it
reaches (it never imports the HTTP edge).

:class:`EventPlane` wires the pieces and is what the composition root (``gateway.runtime``) starts,
drains and closes; the root also builds the Events API app (``gateway.http.events_api``) around
:meth:`EventPlane.handle`. The pieces, by job:

- :mod:`.pipeline`: the request pipeline (parse -> ``event.received`` -> route -> queue / invoke -> reply);
- :mod:`.delivery_worker`: the async deliveries, leased from the delivery queue (:mod:`gateway.queue`),
  retried, acked or kept as dead letters;
- :mod:`.invoke`: one function call wrapped in its system events; :mod:`.emitter`: one system event;
- :mod:`.authorizer`, :mod:`.sync_response`, :mod:`.reply`: the contracts at the ends.
"""

from __future__ import annotations

import logging

from gateway.common import MAX_PAYLOAD_BYTES
from gateway.config.view import ConfigView
from gateway.events.parse import RawRequest
from gateway.metrics import Metrics
from gateway.observe.observation import Observer
from gateway.plugins.contract import CurrentPlugins
from gateway.providers import ProviderPool
from gateway.queue.base import DeadLetter, DeliveryQueue, QueueUnavailable
from gateway.queue.memory import MemoryQueue
from gateway.routing.table import RouteTable

from .delivery_worker import DeliveryWorker
from .emitter import SystemEmitter
from .invoke import Invoker
from .pipeline import RequestPipeline
from .reply import Reply

__all__ = ["EventPlane", "Reply"]

log = logging.getLogger("gateway.pipeline")


class EventPlane:
    """The event pipeline of one gateway: the provider pool, the delivery queue (``queue``, default a
    :class:`~gateway.queue.memory.MemoryQueue`; started and closed here) and what feeds and drains it."""

    def __init__(self, view: ConfigView, plugins: CurrentPlugins, metrics: Metrics, *,
                 queue: DeliveryQueue | None = None, workers: int = 100,
                 max_response_bytes: int = MAX_PAYLOAD_BYTES, observer: Observer | None = None) -> None:
        self.metrics = metrics
        #: What watches events (the live tail, traces); by default nothing.
        self.observer = observer if observer is not None else Observer()
        self.draining = False
        self.queue: DeliveryQueue = queue if queue is not None else MemoryQueue()
        self.routes = RouteTable(view)
        self.providers = ProviderPool(max_connections=max(100, workers * 2), max_response_bytes=max_response_bytes)
        self.emitter = SystemEmitter(self.routes, metrics, self.queue)
        self.invoker = Invoker(view, self.providers, self.emitter, metrics)
        self.worker = DeliveryWorker(self.queue, view, plugins, self.invoker, self.emitter, metrics, workers=workers,
                                     observer=self.observer)
        self.pipeline = RequestPipeline(view, plugins, metrics, self.routes, self.invoker, self.emitter, self.queue,
                                        observer=self.observer)

    async def handle(self, request: RawRequest, space: str) -> Reply:
        return await self.pipeline.handle(request, space)

    async def start(self) -> None:
        try:
            await self.queue.start()
        except QueueUnavailable as exc:
            # The gateway serves all the same: async events get 503 until the queue can be reached.
            log.warning("delivery queue %s cannot be opened now: %s (async events get 503 until it can)",
                        self.queue.description, exc)
        await self.worker.start()

    async def settle(self, timeout: float) -> bool:
        """Wait until every accepted delivery is made (or a dead letter) and nothing is in flight; False
        when ``timeout`` ran out. (Tests; a queue shared with other gateways may never be empty.)"""
        return await self.worker.settle(timeout)

    async def drain(self, timeout: float) -> bool:
        """Refuse new events (503) and stop delivering (see :meth:`DeliveryWorker.drain`: a memory queue is
        emptied first, a durable one keeps what was not started); False when ``timeout`` ran out."""
        self.draining = True
        return await self.worker.drain(timeout)

    async def close(self) -> None:
        self.draining = True
        await self.worker.close()
        await self.emitter.close()
        await self.queue.close()
        await self.providers.close()

    # -- dead letters (the Config API's /v1/spaces/<space>/deadletters) ----------------------------------

    async def dead_letters(self, space: str, function_id: str | None = None) -> list[DeadLetter]:
        return await self.queue.dead_letters(space, function_id)

    async def redeliver(self, space: str, *, id: str | None = None, function_id: str | None = None) -> int:
        """Dead letters made deliveries again (fresh attempt count, same id and event); how many."""
        count = await self.queue.redeliver(space, id=id, function_id=function_id)
        if count:
            self.worker.refresh_soon()
        return count

    async def delete_dead(self, space: str, id: str) -> bool:
        deleted = await self.queue.delete_dead(space, id)
        if deleted:
            self.worker.refresh_soon()
        return deleted
