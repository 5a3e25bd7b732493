"""``GET /v1/events/tail``: the live tail as Server-Sent Events (issue 15).

One ``data: <json>`` message per finished event the gateway handles from the moment the client connects (the
record of `gateway.observe.record`), ``data: {"dropped": n}`` where records were dropped because the client
read too slowly (its buffer holds 1,000), and a comment (``: keep-alive``) every 15 s when nothing else was
sent, so that proxies and clients see a live connection. Filters: ``?space=&type=&status=`` (``status``:
``error``, ``ok``, a code such as ``404`` or a class such as ``5xx``).

Event data can be sensitive, so this read is guarded like a write: with ``--config-token`` set it needs
``Authorization: Bearer <token>`` (401 otherwise); without one it is served only to loopback peers (403
otherwise), whatever ``--config-host`` says. At most 64 clients at once per gateway process (503 past it).
The stream ends when the gateway starts draining (clients reconnect to the next one).

Each process of ``--processes N`` has its own tail: a client sees the events of the process it reached.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from quart import Blueprint, Response, current_app, request

from gateway.http.auth import is_loopback, token_matches
from gateway.http.errors import ApiError
from gateway.observe.tail import FilterError, TailFilters, TailHub, TooManyClients

from . import openapi as _openapi
from ._common import gateway

__all__ = ["HEARTBEAT_SECONDS", "blueprint", "hub_of", "require_tail_reader"]

log = logging.getLogger("gateway.tail")

blueprint = Blueprint("tail", __name__, url_prefix="/v1/events")

#: Seconds between keep-alive comments on a quiet stream.
HEARTBEAT_SECONDS = 15.0
#: How often a waiting stream looks whether the gateway drains.
_POLL_SECONDS = 0.25


def hub_of(app: Any) -> TailHub:
    """The live tail of the gateway ``app`` serves (made by `create_config_app`)."""
    hub: TailHub = app.extensions["tail"]
    return hub


def require_tail_reader() -> None:
    """The tail's guard: the config token when one is set, else a loopback peer."""
    token = gateway().settings.config_token
    if token:
        header = request.headers.get("Authorization")
        if not token_matches(header, token):
            reason = "missing" if not header else "invalid"
            log.info("Config API: refused the live tail to %s: %s bearer token", request.remote_addr, reason)
            raise ApiError(401, f"Config API: {reason} bearer token; the live tail shows event data: send "
                                "'Authorization: Bearer <token>'")
        return
    if not is_loopback(request.remote_addr or ""):
        log.info("Config API: refused the live tail to %s: not loopback and no --config-token", request.remote_addr)
        raise ApiError(403, "the live tail shows event data: without --config-token it is only served to "
                            "clients on this machine (loopback)")


@blueprint.get("/tail")
async def tail() -> Response:
    require_tail_reader()
    try:
        filters = TailFilters.parse(request.args.get("space"), request.args.get("type"), request.args.get("status"))
    except FilterError as exc:
        raise ApiError(400, str(exc)) from None
    hub = hub_of(current_app)
    try:
        subscription = hub.subscribe(filters)
    except TooManyClients as exc:
        raise ApiError(503, f"{exc}; try again later") from None
    except RuntimeError as exc:
        raise ApiError(503, str(exc)) from None
    served = gateway()

    def stopping() -> bool:
        return bool(served.draining)

    response = Response(_stream(subscription, stopping), status=200, content_type="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each message on at once
    response.timeout = None  # a stream, not a slow answer: Quart's response timeout does not apply
    return response


async def _stream(subscription: Any, stopping: Callable[[], bool]) -> AsyncIterator[bytes]:
    try:
        # Something at once: the client knows the stream is open, and how long to wait before reconnecting.
        yield b": event-gateway live tail\nretry: 2000\n\n"
        quiet = 0.0
        while not stopping() and not subscription.closed:
            line = await subscription.get(_POLL_SECONDS)
            if line is None:
                quiet += _POLL_SECONDS
                if quiet >= HEARTBEAT_SECONDS:
                    quiet = 0.0
                    yield b": keep-alive\n\n"
                continue
            quiet = 0.0
            # Several waiting lines go out in one write.
            chunk = [b"data: ", line.encode(), b"\n\n"]
            for _ in range(63):
                more = subscription._take()
                if more is None:
                    break
                chunk += (b"data: ", more.encode(), b"\n\n")
            yield b"".join(chunk)
    except asyncio.CancelledError:
        raise
    finally:
        subscription.close()


def _openapi_paths() -> dict[str, dict[str, Any]]:
    errors = {"$ref": "#/components/schemas/Errors"}

    def error(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": errors}}}

    def query(name: str, description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": description,
                "schema": {"type": "string"}}

    plugin = {"type": "object", "required": ["plugin", "mode", "verdict", "durationMs"], "properties": {
        "plugin": {"type": "string"}, "mode": {"enum": ["sync", "async"]},
        "verdict": {"enum": ["continue", "reject", "rewrite", "fault", "skipped"]},
        "durationMs": {"type": "number"}, "status": {"type": "integer"}, "message": {"type": "string"},
        "faultKind": {"type": "string"}, "fuel": {"type": "integer"}}}
    stage = {"type": "object", "required": ["name", "durationMs", "plugins"], "properties": {
        "name": {"type": "string"}, "durationMs": {"type": "number"},
        "plugins": {"type": "array", "items": plugin}, "note": {"type": "string"}}}
    call = {"type": "object", "required": ["functionId", "provider", "mode", "ok", "durationMs", "attempt"],
            "properties": {"functionId": {"type": "string"}, "provider": {"type": "string"},
                           "mode": {"enum": ["sync", "async"]}, "ok": {"type": "boolean"},
                           "durationMs": {"type": "number"}, "attempt": {"type": "integer"},
                           "status": {"type": "integer"}, "error": {"type": "string"}}}
    record = {"type": "object", "description": "One finished event (each SSE 'data:' line); or {\"dropped\": n} "
                                               "where n records were dropped for this slow client",
              "properties": {"id": {"type": "string"}, "type": {"type": "string"}, "space": {"type": "string"},
                             "source": {"type": "string"}, "kind": {"enum": ["request", "delivery"]},
                             "receivedAt": {"type": "string", "format": "date-time"},
                             "status": {"type": ["integer", "null"]}, "durationMs": {"type": ["number", "null"]},
                             "error": {"type": "boolean"}, "traceId": {"type": ["string", "null"]},
                             "stages": {"type": "array", "items": stage}, "calls": {"type": "array", "items": call},
                             "dropped": {"type": "integer"}}}
    return {
        "/v1/events/tail": {"get": {
            "summary": "The live tail: every finished event as Server-Sent Events (data: <JSON record>)",
            "tags": ["Live tail"], "security": [{"bearer": []}],
            "parameters": [query("space", "only events of this space"), query("type", "only this event type"),
                           query("status", "error, ok, a status code (404) or a class (5xx)")],
            "responses": {
                "200": {"description": "an event stream: 'data: <record>' per event, ': keep-alive' every 15 s",
                        "content": {"text/event-stream": {"schema": record}}},
                "400": error("an invalid filter"),
                "401": error("a config token is set and was not sent"),
                "403": error("no config token is set and the client is not on loopback"),
                "503": error("64 clients already watch, or the gateway stops")}}},
    }


_openapi.EXTRA_PATHS.update(_openapi_paths())
