"""The gateway's side of the ``eventgateway.*`` system events: what plugins see of them and how a
function's answer becomes ``result``.

Their identity (types, ``SOURCE``) and the one envelope builder live in `wasm_abi.events`; the builders
are re-exported here so the event pipeline names everything about system events through one module.

System events are CloudEvents 1.0 maps whatever the version of the event they describe; ``data.event``
is that event in its own wire format. ``result`` carries what the function really answered and
``error`` a readable reason: the upstream gateway put the request payload in ``result`` and serialized
``error`` as ``{}``.
"""

from __future__ import annotations

from typing import Any

from gateway.events.json_body import loads
from wasm_abi.events import (
    EVENT_RECEIVED,
    FUNCTION_INVOCATION_FAILED,
    FUNCTION_INVOKED,
    FUNCTION_INVOKING,
    SOURCE,
    SYSTEM_EVENT_TYPES,
    event_received,
    function_invocation_failed,
    function_invoked,
    function_invoking,
)

__all__ = [
    "WITHHELD_HEADERS",
    "EVENT_RECEIVED",
    "FUNCTION_INVOCATION_FAILED",
    "FUNCTION_INVOKED",
    "FUNCTION_INVOKING",
    "SOURCE",
    "SYSTEM_EVENT_TYPES",
    "decode_result",
    "event_received",
    "for_plugins",
    "restore_withheld",
    "function_invocation_failed",
    "function_invoked",
    "function_invoking",
]


def decode_result(body: bytes) -> Any:
    """A function's response body as ``result``: decoded JSON when it is JSON, else a string."""
    try:
        return loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")


# -- what plugins see of request headers -----------------------------------------------------------------

#: Request headers a plugin does not see unless its ``capabilities.sensitiveHeaders`` grants them: they
#: carry credentials (the Events API's own ``--events-token`` travels in ``Authorization``). Lower case.
WITHHELD_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_HTTP_REQUEST = "http.request"


def _strip(headers: Any, withheld: frozenset[str]) -> Any:
    """``headers`` without the withheld names (the same object when there is nothing to remove)."""
    if not isinstance(headers, dict) or not any(isinstance(k, str) and k.lower() in withheld for k in headers):
        return headers
    return {k: v for k, v in headers.items() if not (isinstance(k, str) and k.lower() in withheld)}


def _is_http_request(event: Any) -> bool:
    return (isinstance(event, dict) and event.get("eventType") == _HTTP_REQUEST and "specversion" not in event
            and isinstance(event.get("data"), dict))


def for_plugins(system_event: dict[str, Any], granted: Any = ()) -> dict[str, Any]:
    """``system_event`` as a plugin granted ``granted`` (header names) sees it: the withheld request
    headers it was not granted are removed from ``data.headers`` (the request's, in event.received) and
    from the headers of an ``http.request`` event in ``data.event``. The same object when nothing is
    removed, so the common case costs a scan of the header names and no copy."""
    withheld = WITHHELD_HEADERS.difference(name.lower() for name in granted) if granted else WITHHELD_HEADERS
    data = system_event.get("data")
    if not isinstance(data, dict) or not withheld:
        return system_event
    changes: dict[str, Any] = {}
    headers = _strip(data.get("headers"), withheld)
    if headers is not data.get("headers"):
        changes["headers"] = headers
    event: Any = data.get("event")
    if _is_http_request(event):
        inner = _strip(event["data"].get("headers"), withheld)
        if inner is not event["data"].get("headers"):
            changes["event"] = {**event, "data": {**event["data"], "headers": inner}}
    if not changes:
        return system_event
    return {**system_event, "data": {**data, **changes}}


def restore_withheld(before: Any, replacement: dict[str, Any], granted: Any = ()) -> dict[str, Any]:
    """A plugin's replacement of the ``http.request`` event ``before``, with the withheld headers the
    plugin was not granted (so never saw, and cannot have meant to drop) put back as they were: functions
    keep receiving them as upstream sent them. A replacement that sets one itself keeps its own value."""
    if not _is_http_request(before) or not _is_http_request(replacement):
        return replacement
    original = before["data"].get("headers")
    headers = replacement["data"].get("headers")
    if not isinstance(original, dict) or not isinstance(headers, dict):
        return replacement
    withheld = WITHHELD_HEADERS.difference(name.lower() for name in granted)
    present = {k.lower() for k in headers if isinstance(k, str)}
    missing = {k: v for k, v in original.items()
               if isinstance(k, str) and k.lower() in withheld and k.lower() not in present}
    if not missing:
        return replacement
    return {**replacement, "data": {**replacement["data"], "headers": {**headers, **missing}}}
