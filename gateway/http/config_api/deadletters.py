"""``/v1/spaces/<space>/deadletters``: async deliveries whose attempts are all spent (issue 14).

- ``GET /v1/spaces/{space}/deadletters[?functionId=]`` -> ``{"deadLetters": [...]}`` (oldest first, at most
  1000; a space with none, or that does not exist, lists nothing);
- ``POST /v1/spaces/{space}/deadletters/{id}/redeliver`` -> 202 ``{"redelivered": 1}``;
- ``POST /v1/spaces/{space}/deadletters/redeliver?functionId=`` -> 202 ``{"redelivered": n}``;
- ``DELETE /v1/spaces/{space}/deadletters/{id}`` -> 204.

Writes follow the Config API's token rule (``install_bearer_auth`` on every mutating method) and reads are
open like the other reads. Input is checked before the queue is asked: an id that is not 32 lowercase hex
characters (what every backend makes) is a 404, a ``functionId`` that cannot name a function a 400. The
queue's own failures (`QueueError`: NATS unreachable, an unreadable file) are 503s with its message.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any, TypeVar

from quart import Blueprint, Response, jsonify, request

from gateway.common import NAME_PATTERN, go_quote
from gateway.http.errors import ApiError
from gateway.queue.base import QueueError

from . import openapi as _openapi
from ._common import gateway, observed

__all__ = ["blueprint"]

blueprint = Blueprint("deadletters", __name__, url_prefix="/v1/spaces/<space>/deadletters")

T = TypeVar("T")

#: The ids every queue backend makes: uuid4 hex.
_ID = re.compile(r"[0-9a-f]{32}\Z")
_FUNCTION_ID = re.compile(NAME_PATTERN)
#: The longest ``functionId`` filter taken (function ids are far shorter).
MAX_FUNCTION_ID = 1000


def _not_found(id: str) -> ApiError:
    shown = id if len(id) <= 64 else id[:64] + "..."
    return ApiError(404, f"Dead letter {go_quote(shown)} not found.")


def _function_filter(*, required: bool) -> str | None:
    value = request.args.get("functionId")
    if value is None:
        if required:
            raise ApiError(400, "functionId is required: redeliver?functionId=<function id> redelivers every dead "
                                "letter of that function")
        return None
    if len(value) > MAX_FUNCTION_ID or not _FUNCTION_ID.match(value):
        shown = value if len(value) <= 64 else value[:64] + "..."
        raise ApiError(400, f"functionId {go_quote(shown)} is invalid: a function id is 1 to {MAX_FUNCTION_ID} "
                            "letters, digits, '.', '-' and '_'")
    return value


async def _queue_call(call: Awaitable[T]) -> T:
    try:
        return await call
    except QueueError as exc:
        raise ApiError(503, str(exc)) from None


@blueprint.get("")
@observed("deadletter", "list")
async def list_dead_letters(space: str) -> Response:
    function_id = _function_filter(required=False)
    letters = await _queue_call(gateway().events.dead_letters(space, function_id))
    return jsonify({"deadLetters": [letter.to_json() for letter in letters]})


@blueprint.post("/redeliver")
@observed("deadletter", "redeliver")
async def redeliver_function(space: str) -> Response:
    function_id = _function_filter(required=True)
    count = await _queue_call(gateway().events.redeliver(space, function_id=function_id))
    response = jsonify({"redelivered": count})
    response.status_code = 202
    return response


@blueprint.post("/<id>/redeliver")
@observed("deadletter", "redeliver")
async def redeliver_one(space: str, id: str) -> Response:
    if not _ID.match(id) or not await _queue_call(gateway().events.redeliver(space, id=id)):
        raise _not_found(id)
    response = jsonify({"redelivered": 1})
    response.status_code = 202
    return response


@blueprint.delete("/<id>")
@observed("deadletter", "delete")
async def delete_dead_letter(space: str, id: str) -> Response:
    if not _ID.match(id) or not await _queue_call(gateway().events.delete_dead(space, id)):
        raise _not_found(id)
    return Response(status=204)


def _openapi_paths() -> dict[str, dict[str, Any]]:
    errors = {"$ref": "#/components/schemas/Errors"}

    def error(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": errors}}}

    space = {"name": "space", "in": "path", "required": True, "description": "space (min 3 chars, [a-zA-Z0-9._-])",
             "schema": {"type": "string", "minLength": 3}}
    id_param = {"name": "id", "in": "path", "required": True, "description": "dead-letter id (32 lowercase hex)",
                "schema": {"type": "string"}}

    def function_id(required: bool) -> dict[str, Any]:
        return {"name": "functionId", "in": "query", "required": required,
                "description": "a function id", "schema": {"type": "string", "maxLength": MAX_FUNCTION_ID}}

    time = {"type": "string", "format": "date-time"}
    letter = {"type": "object", "description": "An async delivery whose attempts are all spent.",
              "required": ["id", "functionId", "subscriptionId", "event", "attempts", "lastError",
                           "firstAttemptAt", "lastAttemptAt"],
              "properties": {"id": {"type": "string"}, "functionId": {"type": "string"},
                             "subscriptionId": {"type": "string"},
                             "event": {"type": "object", "description": "the event as accepted (a CloudEvent)"},
                             "attempts": {"type": "integer"}, "lastError": {"type": "string"},
                             "firstAttemptAt": time, "lastAttemptAt": time}}
    redelivered = {"description": "queued again, due now, with a fresh attempt count", "content": {
        "application/json": {"schema": {"type": "object", "properties": {"redelivered": {"type": "integer"}}}}}}
    security: list[dict[str, list[str]]] = [{"bearer": []}]
    tags = ["Dead letters"]
    unavailable = error("the delivery queue cannot be reached")
    return {
        "/v1/spaces/{space}/deadletters": {
            "parameters": [space],
            "get": {"summary": "List dead letters (oldest first, at most 1000)", "tags": tags,
                    "parameters": [function_id(False)],
                    "responses": {"200": {"description": "the dead letters", "content": {"application/json": {
                        "schema": {"type": "object", "properties": {
                            "deadLetters": {"type": "array", "items": letter}}}}}},
                        "400": error("invalid functionId"), "503": unavailable}},
        },
        "/v1/spaces/{space}/deadletters/redeliver": {
            "parameters": [space],
            "post": {"summary": "Redeliver every dead letter of a function", "tags": tags, "security": security,
                     "parameters": [function_id(True)],
                     "responses": {"202": redelivered, "400": error("missing or invalid functionId"),
                                   "503": unavailable}},
        },
        "/v1/spaces/{space}/deadletters/{id}/redeliver": {
            "parameters": [space, id_param],
            "post": {"summary": "Redeliver one dead letter", "tags": tags, "security": security,
                     "responses": {"202": redelivered, "404": error("no such dead letter"), "503": unavailable}},
        },
        "/v1/spaces/{space}/deadletters/{id}": {
            "parameters": [space, id_param],
            "delete": {"summary": "Forget one dead letter", "tags": tags, "security": security,
                       "responses": {"204": {"description": "deleted"}, "404": error("no such dead letter"),
                                     "503": unavailable}},
        },
    }


_openapi.EXTRA_PATHS.update(_openapi_paths())
