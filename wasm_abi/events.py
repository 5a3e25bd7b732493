"""System events of ABI v1: their identity (types, prefix, fields, source, content type) and the one
builder of their CloudEvents 1.0 envelope, used by the gateway and by `event-gateway plugin react`.

Everything that names or builds a system event imports it from here (ABI.md section 5 describes the
same envelope). The builders are on the gateway's hot path (up to three system events per incoming
event), so ids and timestamps are made without a uuid4 (a getrandom call) or a datetime each.
"""

from __future__ import annotations

import itertools
import time as _time
import uuid
from typing import Any, Final, TypeGuard

EVENT_RECEIVED: Final = "eventgateway.event.received"
FUNCTION_INVOKING: Final = "eventgateway.function.invoking"
FUNCTION_INVOKED: Final = "eventgateway.function.invoked"
FUNCTION_INVOCATION_FAILED: Final = "eventgateway.function.invocationFailed"

#: Every system event type of ABI v1, with the fields of its `data` map.
SYSTEM_EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    EVENT_RECEIVED: ("event", "path", "headers"),
    FUNCTION_INVOKING: ("space", "functionId", "event"),
    FUNCTION_INVOKED: ("space", "functionId", "event", "result"),
    FUNCTION_INVOCATION_FAILED: ("space", "functionId", "event", "error"),
}
SYSTEM_EVENT_TYPES: frozenset[str] = frozenset(SYSTEM_EVENT_FIELDS)

#: System events whose sync reaction may replace the event being processed.
REPLACEABLE_EVENT_TYPES: frozenset[str] = frozenset({EVENT_RECEIVED, FUNCTION_INVOKING})

#: Every type starting with this is reserved for system events: an incoming event may not claim one,
#: and a plugin's replacement event may not become one.
SYSTEM_EVENT_PREFIX: Final = "eventgateway."
#: ``source`` of every system event.
SOURCE: Final = "https://serverless.com/event-gateway"
DEFAULT_SOURCE: Final = SOURCE  # the older name
#: ``datacontenttype`` of every system event: ``data`` is a JSON-compatible map. msgpack is only how the
#: whole envelope travels to a plugin (as JSON is how it travels to a function), not the data's type.
DATACONTENTTYPE: Final = "application/json"
SPECVERSION: Final = "1.0"


def is_system_event_type(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a type reserved for system events (a string starting ``eventgateway.``)."""
    return isinstance(value, str) and value.startswith(SYSTEM_EVENT_PREFIX)


# An id is unique within the process by its counter and across processes and restarts by the random
# prefix, which is what CloudEvents asks of source + id.
_ID_PREFIX = uuid.uuid4().hex[:16]
_next_number = itertools.count(1).__next__  # atomic under the GIL
_second: tuple[int, str] = (-1, "")


def new_event_id() -> str:
    """A fresh system event id, e.g. ``"3f2a9c0d4b1e8a77-42"``."""
    return f"{_ID_PREFIX}-{_next_number()}"


def timestamp() -> str:
    """Now as RFC 3339 UTC with milliseconds, e.g. ``2026-12-01T13:15:37.123Z``."""
    global _second
    now = _time.time()
    second = int(now)
    cached = _second
    if cached[0] != second:
        cached = _second = (second, _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(second)))
    return f"{cached[1]}.{int((now - second) * 1000):03d}Z"


def envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The CloudEvents 1.0 envelope of a system event, unchecked (the typed builders below fill ``data``)."""
    return {
        "specversion": SPECVERSION,
        "type": event_type,
        "source": SOURCE,
        "id": f"{_ID_PREFIX}-{_next_number()}",
        "time": timestamp(),
        "datacontenttype": DATACONTENTTYPE,
        "data": data,
    }


def event_received(event: dict[str, Any], path: str, headers: dict[str, Any]) -> dict[str, Any]:
    return envelope(EVENT_RECEIVED, {"event": event, "path": path, "headers": headers})


def function_invoking(space: str, function_id: str, event: dict[str, Any]) -> dict[str, Any]:
    return envelope(FUNCTION_INVOKING, {"space": space, "functionId": function_id, "event": event})


def function_invoked(space: str, function_id: str, event: dict[str, Any], result: Any) -> dict[str, Any]:
    return envelope(FUNCTION_INVOKED, {"space": space, "functionId": function_id, "event": event, "result": result})


def function_invocation_failed(space: str, function_id: str, event: dict[str, Any], error: str) -> dict[str, Any]:
    return envelope(FUNCTION_INVOCATION_FAILED,
                    {"space": space, "functionId": function_id, "event": event, "error": error})


def system_event(
    event_type: str,
    data: dict[str, Any],
    *,
    source: str = SOURCE,
    event_id: str | None = None,
    time: str | None = None,
) -> dict[str, Any]:
    """`envelope`, checking that ``event_type`` is a system event type and that ``data`` has exactly
    the fields ABI v1 defines for it (for callers that build ``data`` themselves: tools and tests)."""
    fields = SYSTEM_EVENT_FIELDS.get(event_type)
    if fields is None:
        raise ValueError(f"unknown system event type {event_type!r}; known: {sorted(SYSTEM_EVENT_TYPES)}")
    if set(data) != set(fields):
        raise ValueError(
            f"system event {event_type!r} needs data fields {sorted(fields)}, got {sorted(data)}"
        )
    built = envelope(event_type, data)
    if source != SOURCE:
        built["source"] = source
    if event_id is not None:
        built["id"] = event_id
    if time is not None:
        built["time"] = time
    return built
