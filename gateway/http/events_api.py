"""The Events API (:4000): a thin Quart app that turns a request into a ``RawRequest`` for the processor."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from quart import Quart, Response, request

from gateway.events.parse import RawRequest

if TYPE_CHECKING:
    from gateway.delivery import EventPlane

__all__ = ["DEFAULT_SPACE", "SPACE_HEADER", "create_app"]

SPACE_HEADER = "Space"
DEFAULT_SPACE = "default"
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def create_app(plane: EventPlane) -> Quart:
    app = Quart("gateway.events_api")
    app.config["MAX_CONTENT_LENGTH"] = 6 * 1024 * 1024  # what Lambda accepts as a payload

    async def handle(path: str = "") -> Response:
        if plane.draining:
            body = json.dumps({"errors": [{"message": "Service Unavailable"}]})
            return Response(body, status=503, content_type="application/json")
        raw_path = request.scope.get("raw_path")
        query: dict[str, list[str]] = {key: request.args.getlist(key) for key in request.args}
        raw = RawRequest(
            method=request.method,
            path=raw_path.decode("latin-1").split("?", 1)[0] if raw_path else request.path,
            host=request.host,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]],
            query=query,
            body=await request.get_data(cache=False, as_text=False),
        )
        space = request.headers.get(SPACE_HEADER) or DEFAULT_SPACE
        reply = await plane.processor.handle(raw, space)
        response = Response(reply.body, status=reply.status)
        response.headers.clear()
        for name, value in reply.headers.items():
            response.headers[name] = value
        return response

    app.add_url_rule("/", "root", handle, methods=_METHODS, provide_automatic_options=False)
    app.add_url_rule("/<path:path>", "path", handle, methods=_METHODS, provide_automatic_options=False)
    return app
