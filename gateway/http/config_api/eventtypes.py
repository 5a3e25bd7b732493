"""``/v1/spaces/<space>/eventtypes``: the event types a space accepts, with optional authorizers."""

from __future__ import annotations

from quart import Blueprint, Response

from ._common import document_response, filters, list_response, observed, read_json, service

blueprint = Blueprint("eventtypes", __name__, url_prefix="/v1/spaces/<space>/eventtypes")
LABEL = "Event Type"


@blueprint.get("")
@observed("eventtype", "list")
async def list_event_types(space: str) -> Response:
    return list_response("eventTypes", await service().list_event_types(space, filters()))


@blueprint.post("")
@observed("eventtype", "create")
async def create_event_type(space: str) -> Response:
    return document_response(await service().create_event_type(space, await read_json(LABEL)), 201)


@blueprint.get("/<name>")
@observed("eventtype", "get")
async def get_event_type(space: str, name: str) -> Response:
    return document_response(await service().get_event_type(space, name))


@blueprint.put("/<name>")
@observed("eventtype", "update")
async def update_event_type(space: str, name: str) -> Response:
    return document_response(await service().update_event_type(space, name, await read_json(LABEL)))


@blueprint.delete("/<name>")
@observed("eventtype", "delete")
async def delete_event_type(space: str, name: str) -> Response:
    await service().delete_event_type(space, name)
    return Response(status=204)
