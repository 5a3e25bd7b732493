"""Decoding the list a plugin returns from `subscriptions()`."""

from __future__ import annotations

from typing import NamedTuple

from .errors import PluginFault, PluginLoadError
from .events import SYSTEM_EVENT_TYPES
from .reaction import short_repr, unpack_output

MODES = ("sync", "async")


class PluginSubscription(NamedTuple):
    """One (system event type, "sync" | "async") pair a plugin subscribes to; compares equal to a plain
    tuple. (Not the gateway's ``gateway.config.models.Subscription``, a function's subscription to an
    event type in the configuration.)"""

    event_type: str
    mode: str


#: Deprecated: the older name of the same class (it clashed with the gateway's configuration
#: ``Subscription``); use `PluginSubscription`.
Subscription = PluginSubscription


def decode_subscriptions(plugin: str, raw: bytes | None) -> list[PluginSubscription]:
    if raw is None:
        return []
    try:
        value = unpack_output(plugin, raw, "subscriptions")
    except PluginFault as fault:
        raise PluginLoadError(plugin, fault.message, "bad_subscriptions") from None
    if value is None:
        return []
    if not isinstance(value, list):
        raise PluginLoadError(plugin, f"subscriptions must be a msgpack array, got {type(value).__name__}",
                              "bad_subscriptions")
    result: list[PluginSubscription] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise PluginLoadError(plugin, f"subscriptions[{i}] must be a map, got {type(item).__name__}",
                                  "bad_subscriptions")
        event_type, mode = item.get("eventType"), item.get("type")
        if event_type not in SYSTEM_EVENT_TYPES:
            raise PluginLoadError(
                plugin, f"subscriptions[{i}].eventType is {short_repr(event_type)}; expected one of "
                f"{', '.join(sorted(SYSTEM_EVENT_TYPES))}", "bad_subscriptions",
            )
        if mode not in MODES:
            raise PluginLoadError(plugin, f"subscriptions[{i}].type is {short_repr(mode)}; expected 'sync' or 'async'",
                                  "bad_subscriptions")
        sub = PluginSubscription(event_type, mode)
        if sub not in result:
            result.append(sub)
    return result
