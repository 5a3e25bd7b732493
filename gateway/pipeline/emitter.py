"""Emitting one system event: plugins first (sync, then async), then async subscriptions on ``POST /``.

The deliveries to subscriptions go to the delivery queue as system deliveries (``NewDelivery.system``),
which emit no system events of their own (see :mod:`.delivery_worker`): no recursion, and no call back
into the request pipeline. They are queued in the background: a system event is not part of what a
client's 202 promises, so no request waits for its queueing; a queue that refuses them (full,
unreachable) costs those deliveries only -- logged (at most every 30 s, with the count) and counted in
``eventgateway_events_dropped``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from gateway.metrics import Metrics
from gateway.observe.observation import current
from gateway.plugins.contract import CONTINUE, PluginSet, StageOutcome
from gateway.queue.base import DeliveryQueue, NewDelivery, QueueError
from gateway.routing.table import RouteTable

__all__ = ["SYSTEM_METHOD", "SYSTEM_PATH", "SystemEmitter"]

log = logging.getLogger("gateway.pipeline")

SYSTEM_PATH = "/"
SYSTEM_METHOD = "POST"
_WARN_SECONDS = 30.0


class SystemEmitter:
    def __init__(self, routes: RouteTable, metrics: Metrics, queue: DeliveryQueue) -> None:
        self._routes = routes
        self._metrics = metrics
        self._queue = queue
        self._enqueuing: set[asyncio.Task[None]] = set()
        self._refused = 0
        self._warned_at = -_WARN_SECONDS

    @property
    def pending(self) -> int:
        """System deliveries being queued right now (background tasks)."""
        return len(self._enqueuing)

    def wanted(self, space: str, event_type: str, plugins: PluginSet) -> bool:
        """Whether anything listens: lets the event path skip building events nobody reads."""
        if plugins.wants(event_type):
            return True
        return self._routes.space(space).async_subscriptions(SYSTEM_METHOD, SYSTEM_PATH, event_type) is not None

    async def emit(self, space: str, system_event: dict[str, Any], plugins: PluginSet, *,
                   sync: bool = True) -> StageOutcome:
        """Run the plugins on ``system_event`` and queue it for subscriptions. ``sync=False`` skips the sync
        plugin stage's verdict (the caller cannot act on it) but still runs the plugins."""
        event_type = system_event["type"]
        self._metrics.child(self._metrics.events_received, space, event_type).inc()
        obs = current()
        stage = obs.begin_stage(event_type) if obs is not None else None
        outcome = CONTINUE
        if plugins.wants(event_type):
            outcome = await plugins.react_sync(system_event)
            plugins.react_async(system_event)
        if obs is not None and stage is not None:
            rejection = outcome.rejection
            obs.end_stage(stage, rejected=None if rejection is None else (rejection.plugin, rejection.status,
                                                                          rejection.message),
                          rewritten=outcome.event is not None)
        if outcome.rejection is None:
            match = self._routes.space(space).async_subscriptions(SYSTEM_METHOD, SYSTEM_PATH, event_type)
            if match is not None:
                deliveries = [NewDelivery(space, s.function_id, s.subscription_id, system_event, system=True)
                              for s in match.subscriptions]
                task = asyncio.create_task(self._enqueue(deliveries), name="system-event-enqueue")
                self._enqueuing.add(task)
                task.add_done_callback(self._enqueuing.discard)
        self._metrics.child(self._metrics.events_processed, space, event_type).inc()
        return outcome if sync else CONTINUE

    async def _enqueue(self, deliveries: list[NewDelivery]) -> None:
        try:
            await self._queue.enqueue(deliveries)
        except QueueError as exc:
            self._refused_deliveries(deliveries, str(exc))
        except Exception as exc:  # a bug must not go unseen in a background task
            log.exception("queueing a system event failed")
            self._refused_deliveries(deliveries, repr(exc))

    def _refused_deliveries(self, deliveries: list[NewDelivery], reason: str) -> None:
        first = deliveries[0]
        self._metrics.events_dropped.labels(first.space, first.event["type"]).inc(len(deliveries))
        self._refused += len(deliveries)
        now = time.monotonic()
        if now - self._warned_at >= _WARN_SECONDS:
            self._warned_at = now
            log.warning("system event %s not delivered to %d subscription(s) (%d refused since the last "
                        "warning): the delivery queue refused it: %s", first.event["type"], len(deliveries),
                        self._refused, reason)
            self._refused = 0

    async def close(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout``) for the system deliveries being queued, before the queue closes."""
        if self._enqueuing:
            await asyncio.wait(set(self._enqueuing), timeout=timeout)
