"""``GET /v1/spaces``: the spaces holding any event type, function, subscription or CORS setting.

Upstream had no such list (a client had to know its spaces); the web console uses it to offer them. Read
from this gateway's configuration view, like the Events API; open like every read.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify

from . import openapi as _openapi
from ._common import gateway

__all__ = ["blueprint"]

blueprint = Blueprint("spaces", __name__, url_prefix="/v1")


@blueprint.get("/spaces")
async def list_spaces() -> Response:
    return jsonify({"spaces": sorted(gateway().view.spaces())})


def _openapi_paths() -> dict[str, dict[str, Any]]:
    return {"/v1/spaces": {"get": {
        "summary": "The spaces holding any configuration (sorted)", "tags": ["Status"],
        "responses": {"200": {"description": "space names", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"spaces": {"type": "array", "items": {"type": "string"}}}}}}}}}}}


_openapi.EXTRA_PATHS.update(_openapi_paths())
