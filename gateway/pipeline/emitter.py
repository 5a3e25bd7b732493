"""Emitting one system event: plugins first (sync, then async), then async subscriptions on ``POST /``.

The emitter hands the deliveries to subscriptions to a :class:`~gateway.pipeline.deliveries.Sink` (the
async queue); they are delivered as system events (``Delivery.system``), which emit no system events of
their own (see :mod:`.dispatch`): no recursion, and no call back into the request pipeline.
"""

from __future__ import annotations

from typing import Any

from gateway.metrics import Metrics
from gateway.plugins.contract import CONTINUE, PluginSet, StageOutcome
from gateway.routing.table import RouteTable

from .deliveries import Delivery, Sink

__all__ = ["SYSTEM_METHOD", "SYSTEM_PATH", "SystemEmitter"]

SYSTEM_PATH = "/"
SYSTEM_METHOD = "POST"


class SystemEmitter:
    def __init__(self, routes: RouteTable, metrics: Metrics, sink: Sink) -> None:
        self._routes = routes
        self._metrics = metrics
        self._sink = sink

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
        outcome = CONTINUE
        if plugins.wants(event_type):
            outcome = await plugins.react_sync(system_event)
            plugins.react_async(system_event)
        if outcome.rejection is None:
            match = self._routes.space(space).async_subscriptions(SYSTEM_METHOD, SYSTEM_PATH, event_type)
            if match is not None:
                for subscription in match.subscriptions:
                    self._sink.put(Delivery(space, subscription.function_id, system_event, plugins, True))
        self._metrics.child(self._metrics.events_processed, space, event_type).inc()
        return outcome if sync else CONTINUE
