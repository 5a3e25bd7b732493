"""``/v1/spaces/<space>/functions``: the functions events are delivered to. Provider secrets are stored
but never returned (see :func:`gateway.config.service.redact`)."""

from __future__ import annotations

from quart import Blueprint, Response

from ._common import document_response, filters, list_response, observed, read_json, service

blueprint = Blueprint("functions", __name__, url_prefix="/v1/spaces/<space>/functions")
LABEL = "Function"


@blueprint.get("")
@observed("function", "list")
async def list_functions(space: str) -> Response:
    return list_response("functions", await service().list_functions(space, filters()))


@blueprint.post("")
@observed("function", "create")
async def create_function(space: str) -> Response:
    return document_response(await service().create_function(space, await read_json(LABEL)), 201)


@blueprint.get("/<function_id>")
@observed("function", "get")
async def get_function(space: str, function_id: str) -> Response:
    return document_response(await service().get_function(space, function_id))


@blueprint.put("/<function_id>")
@observed("function", "update")
async def update_function(space: str, function_id: str) -> Response:
    return document_response(await service().update_function(space, function_id, await read_json(LABEL)))


@blueprint.delete("/<function_id>")
@observed("function", "delete")
async def delete_function(space: str, function_id: str) -> Response:
    await service().delete_function(space, function_id)
    return Response(status=204)
