"""The async dispatch: delivering what the async queue holds, and dropping what it gives up.

A delivery of an ordinary event goes through the four-stage system event protocol
(:meth:`~gateway.pipeline.invoke.Invoker.invoke`); a delivery of a system event is a plain call
(system events never emit system events). A delivery the queue gives up (backlog full, attempts
exhausted) is counted and logged; on a full backlog ``function.invocationFailed`` is emitted (exhausted
retries already emitted it on their last attempt).
"""

from __future__ import annotations

import logging

from gateway.events import cloudevents as ce
from gateway.events import system_events
from gateway.metrics import Metrics

from .async_queue import Attempt
from .deliveries import Delivery
from .emitter import SystemEmitter
from .invoke import Invoker

__all__ = ["Dispatcher"]

log = logging.getLogger("gateway.pipeline")


class Dispatcher:
    """The async queue's handler (:meth:`deliver`) and drop handler (:meth:`drop`)."""

    def __init__(self, invoker: Invoker, emitter: SystemEmitter, metrics: Metrics) -> None:
        self._invoker = invoker
        self._emitter = emitter
        self._metrics = metrics

    async def deliver(self, delivery: Delivery, attempt: Attempt) -> bool:
        if delivery.system:
            result = await self._invoker.call(delivery.space, delivery.function_id, ce.to_json(delivery.event),
                                              "async")
            if not result.ok:
                log.info("system event delivery to %s/%s failed: %s", delivery.space, delivery.function_id,
                         result.error)
            return result.ok
        note = (f" (attempt {attempt.number}, the last: event dropped)" if attempt.last
                else f" (attempt {attempt.number}, will retry)")
        result = await self._invoker.invoke(delivery.space, delivery.function_id, delivery.event, delivery.plugins,
                                            mode="async", attempt_note=note)
        if result.rejection is not None:
            self._metrics.events_dropped.labels(delivery.space, ce.event_type(delivery.event)).inc()
            log.warning("async delivery to %s/%s dropped: plugin %s blocked it (%s)", delivery.space,
                        delivery.function_id, result.rejection.plugin, result.rejection.message)
            return True
        return result.ok

    async def drop(self, delivery: Delivery, reason: str) -> None:
        event_type = ce.event_type(delivery.event)
        self._metrics.events_dropped.labels(delivery.space, event_type).inc()
        log.warning("async delivery of %s %s to %s/%s dropped: %s", event_type, ce.event_id(delivery.event),
                    delivery.space, delivery.function_id, reason)
        if delivery.system or not reason.startswith("async backlog full"):
            return  # exhausted retries already emitted invocationFailed on the last attempt
        if self._emitter.wanted(delivery.space, system_events.FUNCTION_INVOCATION_FAILED, delivery.plugins):
            await self._emitter.emit(
                delivery.space,
                system_events.function_invocation_failed(delivery.space, delivery.function_id, delivery.event,
                                                         f"not delivered: {reason}"),
                delivery.plugins, sync=False)
