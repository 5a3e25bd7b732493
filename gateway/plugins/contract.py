"""What the event path needs from the plugin system, and nothing more.

The event pipeline (``gateway.pipeline``) depends only on these types; the plugin manager
(``gateway.plugins.manager``) implements them. Keeping the seam this narrow is what lets plugins be
added, reloaded or quarantined while events flow: the core asks for the current :class:`PluginSet`
once per incoming event and uses that same set for every stage of that event, so an event never sees a
half-updated set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Rejection:
    """A sync plugin stopped the event. ``status`` is what the Events API answers (default 403;
    503 when a fail-closed plugin faulted)."""

    plugin: str
    status: int
    message: str


@dataclass(frozen=True, slots=True)
class StageOutcome:
    """The result of running every sync subscriber of one system event, in plugin order.

    ``event`` is the incoming event as rewritten by the plugins (a CloudEvent map in its original
    wire format), or ``None`` when no plugin rewrote it. A rejection stops the stage at once.
    """

    rejection: Rejection | None = None
    event: dict[str, Any] | None = None


CONTINUE = StageOutcome()


class PluginSet(Protocol):
    """An immutable set of loaded plugins."""

    def wants(self, event_type: str) -> bool:
        """True when any plugin subscribes (sync or async) to this system event type: lets the core
        skip building system events nobody listens to."""

    async def react_sync(self, system_event: dict[str, Any]) -> StageOutcome:
        """Run the sync subscribers of ``system_event["type"]`` in order and combine their reactions."""

    def react_async(self, system_event: dict[str, Any]) -> None:
        """Hand the event to the async subscribers; returns at once, never raises, never blocks."""


class CurrentPlugins(Protocol):
    def current(self) -> PluginSet:
        """The plugin set new events start with."""
