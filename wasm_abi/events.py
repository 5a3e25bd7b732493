"""System event names and the CloudEvents 1.0 envelope the host hands to `react`."""

from __future__ import annotations

import time as _time
import uuid
from datetime import UTC, datetime
from typing import Any

EVENT_RECEIVED = "eventgateway.event.received"
FUNCTION_INVOKING = "eventgateway.function.invoking"
FUNCTION_INVOKED = "eventgateway.function.invoked"
FUNCTION_INVOCATION_FAILED = "eventgateway.function.invocationFailed"

#: Every system event type of ABI v1, with the fields of its `data` map.
SYSTEM_EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    EVENT_RECEIVED: ("event", "path", "headers"),
    FUNCTION_INVOKING: ("space", "event", "functionId"),
    FUNCTION_INVOKED: ("space", "event", "functionId", "result"),
    FUNCTION_INVOCATION_FAILED: ("space", "event", "functionId", "error"),
}
SYSTEM_EVENT_TYPES: frozenset[str] = frozenset(SYSTEM_EVENT_FIELDS)

#: System events whose sync reaction may replace the event being processed.
REPLACEABLE_EVENT_TYPES: frozenset[str] = frozenset({EVENT_RECEIVED, FUNCTION_INVOKING})

SYSTEM_EVENT_PREFIX = "eventgateway."
DEFAULT_SOURCE = "https://serverless.com/event-gateway"


def system_event(
    event_type: str,
    data: dict[str, Any],
    *,
    source: str = DEFAULT_SOURCE,
    event_id: str | None = None,
    time: str | None = None,
) -> dict[str, Any]:
    """Build the CloudEvents 1.0 envelope of a system event, checking `data` has exactly
    the fields ABI v1 defines for the type (a gateway bug here would silently break plugins)."""
    fields = SYSTEM_EVENT_FIELDS.get(event_type)
    if fields is None:
        raise ValueError(f"unknown system event type {event_type!r}; known: {sorted(SYSTEM_EVENT_TYPES)}")
    if set(data) != set(fields):
        raise ValueError(
            f"system event {event_type!r} needs data fields {sorted(fields)}, got {sorted(data)}"
        )
    return {
        "specversion": "1.0",
        "type": event_type,
        "source": source,
        "id": event_id or str(uuid.uuid4()),
        "time": time or datetime.fromtimestamp(_time.time(), UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/msgpack",
        "data": data,
    }
