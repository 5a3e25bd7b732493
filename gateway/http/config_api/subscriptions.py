"""``/v1/spaces/<space>/subscriptions``: which function an event type reaches, sync or async, on which
method and path. Ids are deterministic (see :mod:`gateway.config.ids`)."""

from __future__ import annotations

from quart import Blueprint, Response

from ._common import document_response, filters, list_response, observed, read_json, service

blueprint = Blueprint("subscriptions", __name__, url_prefix="/v1/spaces/<space>/subscriptions")
LABEL = "Subscription"


@blueprint.get("")
@observed("subscription", "list")
async def list_subscriptions(space: str) -> Response:
    return list_response("subscriptions", await service().list_subscriptions(space, filters()))


@blueprint.post("")
@observed("subscription", "create")
async def create_subscription(space: str) -> Response:
    return document_response(await service().create_subscription(space, await read_json(LABEL)), 201)


@blueprint.get("/<subscription_id>")
@observed("subscription", "get")
async def get_subscription(space: str, subscription_id: str) -> Response:
    return document_response(await service().get_subscription(space, subscription_id))


@blueprint.put("/<subscription_id>")
@observed("subscription", "update")
async def update_subscription(space: str, subscription_id: str) -> Response:
    return document_response(await service().update_subscription(space, subscription_id, await read_json(LABEL)))


@blueprint.delete("/<subscription_id>")
@observed("subscription", "delete")
async def delete_subscription(space: str, subscription_id: str) -> Response:
    await service().delete_subscription(space, subscription_id)
    return Response(status=204)
