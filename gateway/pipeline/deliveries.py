"""What waits in the async queue (:class:`Delivery`) and the one way in (:class:`Sink`).

The request pipeline and the system event emitter only *put* deliveries; the dispatcher
(:mod:`.dispatch`) takes them out and delivers them. Nobody calls back into whoever produced them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway.config.models import DEFAULT_RETRY_POLICY
from gateway.plugins.contract import PluginSet

from .async_queue import AsyncQueue

__all__ = ["Delivery", "DeliveryQueue", "FunctionLookup", "Sink"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """An async delivery waiting in the queue."""

    space: str
    function_id: str
    event: dict[str, Any]
    plugins: PluginSet
    system: bool = False  # a system event: delivered without emitting system events


class Sink(Protocol):
    def put(self, delivery: Delivery) -> None:
        """Queue ``delivery`` without waiting (a full backlog drops it, counted and logged)."""


class FunctionLookup(Protocol):
    def function(self, space: str, id: str) -> Any | None: ...


class DeliveryQueue:
    """The :class:`Sink` over the async queue: each delivery is retried per its function's policy."""

    def __init__(self, view: FunctionLookup, queue: AsyncQueue) -> None:
        self._view = view
        self.queue = queue

    def put(self, delivery: Delivery) -> None:
        function = self._view.function(delivery.space, delivery.function_id)
        self.queue.submit(delivery, function.retry_policy if function is not None else DEFAULT_RETRY_POLICY)
