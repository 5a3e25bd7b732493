"""``/v1/spaces/<space>/cors``: CORS settings per method and path of the Events API.

A CORS id is ``METHOD + PathEscape(path)`` (``GET%2Fusers``). The server decodes ``%2F`` before routing,
so the id arrives as ``GET/users``; :func:`_cors_id` turns it back into the stored form.
"""

from __future__ import annotations

from quart import Blueprint, Response

from gateway.config.ids import cors_id as make_cors_id

from ._common import document_response, filters, list_response, observed, read_json, service

blueprint = Blueprint("cors", __name__, url_prefix="/v1/spaces/<space>/cors")
LABEL = "CORS configuration"


def _cors_id(raw: str) -> str:
    method, slash, path = raw.partition("/")
    return make_cors_id(method, "/" + path) if slash else raw


@blueprint.get("")
@observed("cors", "list")
async def list_cors(space: str) -> Response:
    return list_response("cors", await service().list_cors(space, filters()))


@blueprint.post("")
@observed("cors", "create")
async def create_cors(space: str) -> Response:
    return document_response(await service().create_cors(space, await read_json(LABEL)), 201)


@blueprint.get("/<path:cors_id>")
@observed("cors", "get")
async def get_cors(space: str, cors_id: str) -> Response:
    return document_response(await service().get_cors(space, _cors_id(cors_id)))


@blueprint.put("/<path:cors_id>")
@observed("cors", "update")
async def update_cors(space: str, cors_id: str) -> Response:
    return document_response(await service().update_cors(space, _cors_id(cors_id), await read_json(LABEL)))


@blueprint.delete("/<path:cors_id>")
@observed("cors", "delete")
async def delete_cors(space: str, cors_id: str) -> Response:
    await service().delete_cors(space, _cors_id(cors_id))
    return Response(status=204)
