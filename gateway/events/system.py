"""Builders of the ``eventgateway.*`` system events, in the shapes ABI v1 defines.

System events are CloudEvents 1.0 maps whatever the version of the event they describe; ``data.event``
is that event in its own wire format. ``result`` carries what the function really answered and
``error`` a readable reason: the upstream gateway put the request payload in ``result`` and serialized
``error`` as ``{}``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from gateway.events.json_body import loads
from wasm_abi.events import (
    EVENT_RECEIVED,
    FUNCTION_INVOCATION_FAILED,
    FUNCTION_INVOKED,
    FUNCTION_INVOKING,
)

__all__ = [
    "EVENT_RECEIVED",
    "FUNCTION_INVOCATION_FAILED",
    "FUNCTION_INVOKED",
    "FUNCTION_INVOKING",
    "SOURCE",
    "SYSTEM_EVENT_TYPES",
    "decode_result",
    "event_received",
    "function_invocation_failed",
    "function_invoked",
    "function_invoking",
]

#: ``source`` of every system event (the same constant the Wasm host uses).
SOURCE = "https://serverless.com/event-gateway"
SYSTEM_EVENT_TYPES = frozenset({EVENT_RECEIVED, FUNCTION_INVOKING, FUNCTION_INVOKED, FUNCTION_INVOCATION_FAILED})


def _envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": event_type,
        "source": SOURCE,
        "id": str(uuid.uuid4()),
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data,
    }


def event_received(event: dict[str, Any], path: str, headers: dict[str, str]) -> dict[str, Any]:
    return _envelope(EVENT_RECEIVED, {"event": event, "path": path, "headers": headers})


def function_invoking(space: str, function_id: str, event: dict[str, Any]) -> dict[str, Any]:
    return _envelope(FUNCTION_INVOKING, {"space": space, "functionId": function_id, "event": event})


def function_invoked(space: str, function_id: str, event: dict[str, Any], result: Any) -> dict[str, Any]:
    return _envelope(FUNCTION_INVOKED, {"space": space, "functionId": function_id, "event": event, "result": result})


def function_invocation_failed(space: str, function_id: str, event: dict[str, Any], error: str) -> dict[str, Any]:
    return _envelope(
        FUNCTION_INVOCATION_FAILED, {"space": space, "functionId": function_id, "event": event, "error": error})


def decode_result(body: bytes) -> Any:
    """A function's response body as ``result``: decoded JSON when it is JSON, else a string."""
    try:
        return loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")
