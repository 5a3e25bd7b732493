"""Builders of the ``eventgateway.*`` system events, in the shapes ABI v1 defines.

System events are CloudEvents 1.0 maps whatever the version of the event they describe; ``data.event``
is that event in its own wire format. ``result`` carries what the function really answered and
``error`` a readable reason: the upstream gateway put the request payload in ``result`` and serialized
``error`` as ``{}``.
"""

from __future__ import annotations

import itertools
import time
import uuid
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


# Up to three system events per incoming event: their ids and timestamps are made without a
# uuid4 (a getrandom call) or a datetime each. An id is unique within the process by its counter and
# across processes and restarts by the random prefix, which is what CloudEvents asks of source + id.
_ID_PREFIX = uuid.uuid4().hex[:16]
_next_number = itertools.count(1).__next__  # atomic under the GIL
_second: tuple[int, str] = (-1, "")


def _event_id() -> str:
    return f"{_ID_PREFIX}-{_next_number()}"


def _timestamp() -> str:
    """RFC 3339 UTC with milliseconds, e.g. 2026-12-01T13:15:37.123Z."""
    global _second
    now = time.time()
    second = int(now)
    cached = _second
    if cached[0] != second:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{int((now - second) * 1000):03d}Z"


def _envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": event_type,
        "source": SOURCE,
        "id": _event_id(),
        "time": _timestamp(),
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
