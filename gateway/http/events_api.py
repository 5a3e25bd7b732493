"""The Events API (:4000): a thin Quart app that turns a request into a ``RawRequest`` for the event
pipeline and its ``Reply`` into a response.

Every answer the app itself gives (draining, a body over the limit, a method no subscription can use, a
path that is not valid percent-encoding, an unexpected error) has the upstream error shape
``{"errors":[{"message":...}]}``, never an HTML page: clients of the upstream gateway parse that shape.
"""

from __future__ import annotations

import re
from typing import Protocol

from quart import Quart, Response, request

from gateway.common import DEFAULT_SPACE, MAX_PAYLOAD_BYTES, space_problem
from gateway.events.parse import DEFAULT_MAX_BATCH_EVENTS, RawRequest
from gateway.http.errors import error_response, install_error_handlers
from gateway.pipeline.reply import Reply

__all__ = ["DEFAULT_SPACE", "MAX_BODY_BYTES", "SPACE_HEADER", "EventHandler", "create_app"]

SPACE_HEADER = "Space"
#: What Lambda accepts as a payload: a larger event could not reach an ``awslambda`` function anyway.
MAX_BODY_BYTES = MAX_PAYLOAD_BYTES
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# A '%' not followed by two hex digits: Go's net/http (upstream) refused such a request line with 400.
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Statuses whose answers carry no body and no Content-Length (RFC 9110 sections 8.6, 15.3.5, 15.4.5).
_NO_BODY = (204, 304)


class EventHandler(Protocol):
    """What the app serves: the event pipeline (``gateway.pipeline.EventPlane``)."""

    @property
    def draining(self) -> bool: ...

    async def handle(self, request: RawRequest, space: str) -> Reply: ...


def create_app(plane: EventHandler, *, max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS) -> Quart:
    app = Quart("gateway.events_api")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["MAX_BATCH_EVENTS"] = max_batch_events
    install_error_handlers(app)

    async def handle(path: str = "") -> Response:
        if plane.draining:
            return error_response(503, "Service Unavailable")
        raw_path = request.scope.get("raw_path")
        target = raw_path.decode("latin-1").split("?", 1)[0] if raw_path else request.path
        if _BAD_ESCAPE.search(target):
            return error_response(400, f"request path {target!r} is not valid percent-encoding "
                               "('%' must be followed by two hex digits)")
        query: dict[str, list[str]] = {key: request.args.getlist(key) for key in request.args}
        raw = RawRequest(
            method=request.method,
            path=target,
            host=request.host,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]],
            query=query,
            body=await request.get_data(cache=False, as_text=False, parse_form_data=False),
            max_batch_events=app.config.get("MAX_BATCH_EVENTS", DEFAULT_MAX_BATCH_EVENTS),
        )
        space = request.headers.get(SPACE_HEADER) or DEFAULT_SPACE
        problem = space_problem(space)
        if problem is not None:
            # No configuration can live in such a space: accepting the event would lose it silently.
            return error_response(400, f"{SPACE_HEADER} header {space!r} is invalid: {problem}")
        reply = await plane.handle(raw, space)
        no_body = reply.status in _NO_BODY
        response = Response(b"" if no_body else reply.body, status=reply.status)
        # Only the reply's headers: no default Content-Type for a body the function typed (or left untyped).
        response.headers.clear()
        for name, value in reply.headers.items():
            response.headers[name] = value
        if not no_body:
            # Framed by length rather than chunked, as upstream's Go server did for these small bodies.
            response.headers["Content-Length"] = str(len(reply.body))
        return response

    app.add_url_rule("/", "root", handle, methods=_METHODS, provide_automatic_options=False)
    app.add_url_rule("/<path:path>", "path", handle, methods=_METHODS, provide_automatic_options=False)
    return app
