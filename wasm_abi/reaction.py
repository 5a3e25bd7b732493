"""Decoding and checking what a plugin returns from `react` / `init`.

Everything here treats the plugin's bytes as hostile: any shape ABI v1 does not allow becomes
a `bad_output` fault with a message that says what was wrong, never an exception from deep
inside the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from .errors import MAX_MESSAGE_CHARS, PluginFault, cap_text
from .events import SYSTEM_EVENT_PREFIX


@dataclass(slots=True)
class Reaction:
    """What a plugin decided about one system event.

    `error` set: reject (with `status` 400..599 if the plugin gave one).  `event` set: replace
    the event (sync reactions to `event.received` / `function.invoking` only).  All `None`:
    continue.  `fuel_used` is for metrics and is left out of equality so that
    `Reaction(error, status, event)` compares as the ABI describes.  (Treat it as immutable;
    it is not frozen only because frozen dataclasses cost twice as much to build on the hot path.)
    """

    error: str | None = None
    status: int | None = None
    event: dict[str, Any] | None = None
    fuel_used: int = field(default=0, compare=False)

    @property
    def rejected(self) -> bool:
        return self.error is not None


CONTINUE = Reaction()
_CONTINUE_BYTES = (b"\x80", b"\xc0")  # msgpack {} and nil: the common answer, decoded without msgpack

#: Longest `error` a reaction keeps, in characters (longer ones are cut and marked).
MAX_ERROR_CHARS = MAX_MESSAGE_CHARS


def short_repr(value: Any, limit: int = 200) -> str:
    """`repr(value)` for an error message, cut to about `limit` characters: values come from plugins."""
    if isinstance(value, (str, bytes)) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value) - limit} more)"
    return cap_text(repr(value), limit)


def _fault(plugin: str, message: str) -> PluginFault:
    return PluginFault(plugin, "bad_output", message)


def unpack_output(plugin: str, raw: bytes, what: str) -> Any:
    """Decode one msgpack value, refusing trailing bytes and non-string map keys."""
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=True, use_list=True)
    except msgpack.ExtraData:
        raise _fault(plugin, f"{what} has trailing bytes after the msgpack value") from None
    except msgpack.StackError:
        raise _fault(plugin, f"{what} is nested too deeply to decode (msgpack's limit is about 1000 levels)"
                     ) from None
    except ValueError as exc:
        if "not allowed for map key" in str(exc):
            key_type = str(exc).split(" is not allowed", 1)[0]
            raise _fault(plugin, f"{what} has a map key of type {key_type}: map keys must be strings "
                         "(events and reactions travel on as JSON)") from None
        raise _fault(plugin, f"{what} is not valid msgpack ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types for bad input
        raise _fault(plugin, f"{what} is not valid msgpack ({type(exc).__name__}: {exc})") from None


def event_type_of(event: dict[str, Any]) -> Any:
    """The type of a (CloudEvents 0.1 or 1.x) event: `type` in 1.x, `eventType` in 0.1."""
    return event.get("type", event.get("eventType"))


#: Deepest nesting a replacement event may have. The gateway re-encodes events as JSON for
#: functions, and Python's json gives up (RecursionError) near 1000 levels; real events nest a
#: handful of levels.
MAX_EVENT_DEPTH = 100


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether maps/arrays in `value` nest deeper than `limit` (iterative: no recursion to blow)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def check_replacement_event(plugin: str, event: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise _fault(plugin, f"reaction 'event' must be a map, got {type(event).__name__}")
    if _depth_exceeds(event, MAX_EVENT_DEPTH):
        raise _fault(plugin, f"reaction 'event' nests maps/arrays deeper than {MAX_EVENT_DEPTH} levels")
    etype = event_type_of(event)
    if not isinstance(etype, str) or not etype:
        raise _fault(plugin, "reaction 'event' has no string 'type' (or 'eventType'): not a valid event")
    if etype.startswith(SYSTEM_EVENT_PREFIX):
        raise _fault(plugin, f"reaction 'event' may not become a system event type ({short_repr(etype)})")
    return event


def decode_reaction(
    plugin: str, raw: bytes | None, *, may_replace: bool, what: str = "reaction", fuel_used: int = 0
) -> Reaction:
    """Turn the bytes a plugin returned into a `Reaction`.

    `may_replace` is False for async reactions and for system events other than
    `event.received` / `function.invoking`: an `event` there is ignored (it cannot take effect),
    though its type is still checked.
    """
    if raw is None or raw in _CONTINUE_BYTES:
        return Reaction(None, None, None, fuel_used)
    value = unpack_output(plugin, raw, what)
    if value is None:
        return Reaction(fuel_used=fuel_used)
    if not isinstance(value, dict):
        raise _fault(plugin, f"{what} must be a msgpack map or nil, got {type(value).__name__}")
    if not value:
        return Reaction(fuel_used=fuel_used)
    error = value.get("error")
    status = value.get("status")
    event = value.get("event")
    if error is not None and not isinstance(error, str):
        raise _fault(plugin, f"{what} 'error' must be a string, got {type(error).__name__}")
    if status is not None:
        if isinstance(status, bool) or not isinstance(status, int):
            raise _fault(plugin, f"{what} 'status' must be an integer, got {type(status).__name__}")
        if not 400 <= status <= 599:
            raise _fault(plugin, f"{what} 'status' must be between 400 and 599, got {status}")
    if event is not None:
        event = check_replacement_event(plugin, event)
    if error is not None:
        # The error goes back to the client and into logs: capped like every plugin-supplied text.
        return Reaction(error=cap_text(error, MAX_ERROR_CHARS), status=status, fuel_used=fuel_used)
    if event is not None and may_replace:
        return Reaction(event=event, fuel_used=fuel_used)
    return Reaction(fuel_used=fuel_used)
