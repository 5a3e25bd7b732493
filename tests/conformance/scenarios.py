"""The inputs every language's examples get, and what they must answer (docs/writing-plugins.md).

Events are built with the host's own `system_event`, so they have exactly the shape the gateway sends.
"""

from __future__ import annotations

from typing import Any

from wasm_abi import system_event
from wasm_abi.events import EVENT_RECEIVED, FUNCTION_INVOCATION_FAILED, FUNCTION_INVOKED, FUNCTION_INVOKING


def cloudevent_v1(event_type: str, data: Any = None, *, event_id: str = "evt-1") -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "type": event_type,
        "id": event_id,
        "source": "https://example.com/app",
        "time": "2026-11-28T03:00:00Z",
        "datacontenttype": "application/json",
    }
    if data is not None:
        event["data"] = data
    return event


def cloudevent_v01(event_type: str, data: Any = None, *, event_id: str = "legacy-1") -> dict[str, Any]:
    event: dict[str, Any] = {
        "cloudEventsVersion": "0.1",
        "eventType": event_type,
        "eventID": event_id,
        "source": "/legacy",
        "eventTime": "2026-11-28T03:00:00Z",
        "contentType": "application/json",
    }
    if data is not None:
        event["data"] = data
    return event


def received(event: dict[str, Any]) -> dict[str, Any]:
    return system_event(EVENT_RECEIVED, {"event": event, "path": "/hello", "headers": {"X-Test": "1"}})


def invoking(event: dict[str, Any], function_id: str = "fn-hello") -> dict[str, Any]:
    return system_event(FUNCTION_INVOKING, {"space": "default", "event": event, "functionId": function_id})


def invoked(event: dict[str, Any], function_id: str = "fn-hello") -> dict[str, Any]:
    return system_event(
        FUNCTION_INVOKED, {"space": "default", "event": event, "functionId": function_id, "result": {"ok": True}}
    )


def invocation_failed(event: dict[str, Any], error: str, function_id: str = "fn-hello") -> dict[str, Any]:
    return system_event(
        FUNCTION_INVOCATION_FAILED, {"space": "default", "event": event, "functionId": function_id, "error": error}
    )


def enriched(event: dict[str, Any], function_id: str, fields: dict[str, str] | None = None) -> dict[str, Any]:
    """What the enricher must turn `event` into (its data gains traceId, functionId and the fields)."""
    trace_id = event.get("id", event.get("eventID"))
    return {**event, "data": {**event["data"], "traceId": trace_id, "functionId": function_id, **(fields or {})}}


GUARD_CONFIG: dict[str, Any] = {
    "denyTypes": ["user.deleted", "legacy.purge"],
    "denyData": {"role": "root", "user": "mallory"},
}

#: (config, key the error message must name)
GUARD_INVALID_CONFIGS: list[tuple[dict[str, Any], str]] = [
    ({"denyTypes": "user.deleted"}, "denyTypes"),
    ({"denyTypes": ["ok", 7]}, "denyTypes"),
    ({"denyTypes": {"a": "b"}}, "denyTypes"),
    ({"denyData": ["role", "root"]}, "denyData"),
    ({"denyData": {"role": 1}}, "denyData"),
    ({"status": "403"}, "status"),
    ({"status": [403]}, "status"),
]
