"""``/v1/openapi.json``: an OpenAPI 3.1 description of the Config API.

Built from the same pydantic models that validate requests, so the document cannot drift from what
the server accepts. Plugin endpoints add themselves through :data:`EXTRA_PATHS`.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic.json_schema import models_json_schema
from quart import Blueprint, Response, jsonify

from gateway.config.models import CORS, EventType, Function, Subscription

blueprint = Blueprint("openapi", __name__, url_prefix="/v1")

#: Other modules (e.g. /v1/plugins) may add ``{path: path-item}`` entries here at import time.
EXTRA_PATHS: dict[str, dict[str, Any]] = {}

_RESOURCES: list[tuple[str, str, str, type, str, str]] = [
    # (url segment, list key, tag, model, id parameter, id description)
    ("eventtypes", "eventTypes", "Event types", EventType, "name", "event type name"),
    ("functions", "functions", "Functions", Function, "id", "function id"),
    ("subscriptions", "subscriptions", "Subscriptions", Subscription, "id", "subscription id (deterministic)"),
    ("cors", "cors", "CORS", CORS, "id", "CORS id: METHOD + PathEscape(path), e.g. GET%2Fusers"),
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Errors")}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


@functools.cache
def document() -> dict[str, Any]:
    _, schemas = models_json_schema([(resource[3], "validation") for resource in _RESOURCES],
                                    by_alias=True, ref_template="#/components/schemas/{model}")
    components: dict[str, Any] = dict(schemas.get("$defs", {}))
    components["Errors"] = {
        "type": "object", "required": ["errors"],
        "properties": {"errors": {"type": "array", "items": {
            "type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}}}},
    }
    space = {"name": "space", "in": "path", "required": True, "description": "space (min 3 chars, [a-zA-Z0-9._-])",
             "schema": {"type": "string", "minLength": 3}}
    metadata_filter = {"name": "metadata.{key}", "in": "query", "required": False,
                       "description": "keep documents whose metadata[key] equals the value (several: AND)",
                       "schema": {"type": "string"}}
    paths: dict[str, Any] = {
        "/v1/status": {"get": {"summary": "Liveness: 200 while serving, 503 while draining", "tags": ["Status"],
                               "responses": {"200": {"description": "serving"},
                                             "503": {"description": "draining"}}}},
        "/v1/metrics": {"get": {"summary": "Prometheus metrics", "tags": ["Status"],
                                "responses": {"200": {"description": "text exposition format",
                                                      "content": {"text/plain": {}}}}}},
        "/v1/openapi.json": {"get": {"summary": "This document", "tags": ["Status"],
                                     "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    }
    for segment, key, tag, model, id_name, id_description in _RESOURCES:
        name = model.__name__
        collection = f"/v1/spaces/{{space}}/{segment}"
        item = f"{collection}/{{{id_name}}}"
        body = {"required": True, "content": {"application/json": {"schema": _ref(name)}}}
        id_param = {"name": id_name, "in": "path", "required": True, "description": id_description,
                    "schema": {"type": "string"}}
        paths[collection] = {
            "parameters": [space],
            "get": {"summary": f"List {tag.lower()}", "tags": [tag], "parameters": [metadata_filter],
                    "responses": {"200": _json("the documents", {"type": "object", "properties": {
                        key: {"type": "array", "items": _ref(name)}}})}},
            "post": {"summary": f"Create (one of the {tag.lower()})", "tags": [tag], "requestBody": body,
                     "responses": {"201": _json("created", _ref(name)),
                                   "400": _error("invalid body or missing reference"),
                                   "409": _error("already exists")}},
        }
        paths[item] = {
            "parameters": [space, id_param],
            "get": {"summary": "Get one", "tags": [tag],
                    "responses": {"200": _json("the document", _ref(name)), "404": _error("not found")}},
            "put": {"summary": "Replace one", "tags": [tag], "requestBody": body,
                    "responses": {"200": _json("updated", _ref(name)), "400": _error("invalid update"),
                                  "404": _error("not found")}},
            "delete": {"summary": "Delete one", "tags": [tag],
                       "responses": {"204": {"description": "deleted"}, "400": _error("still in use"),
                                     "404": _error("not found")}},
        }
    paths.update(EXTRA_PATHS)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Event Gateway Config API", "version": "1",
                 "description": "Compatible with the Serverless Event Gateway Config API. Errors are "
                                "{\"errors\":[{\"message\":...}]}. Provider secrets are never returned: "
                                "they read as \"*****\", and sending that marker back keeps the stored secret."},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "required on writes when --config-token is set"}}},
    }


@blueprint.get("/openapi.json")
async def openapi() -> Response:
    return jsonify(document())
