"""``/v1/plugins``: upload, list, show, update, enable, disable and delete plugins on a running gateway.

Uploads are checked by loading the module under its real limits (ABI exports, imports, ``init`` with
its config) before anything is stored, so a broken module is refused with the host's reason instead of
being half-installed. Accepted plugins go to the store (see :mod:`gateway.plugins.documents`); every
gateway sharing the store reloads from its view, and this gateway answers only once its own plugin set
includes the change, so the client's next event already meets it.

Plugins configured by ``--plugin`` or plugins.toml are listed too, but only their file or flag can
change them: the API refuses to edit, disable or delete them (409), naming where they come from.

Upload forms:

- ``POST /v1/plugins?name=NAME`` with the module as the body (``Content-Type: application/wasm`` or
  ``application/octet-stream``) and optional ``settings`` query parameter (URL-encoded JSON);
- ``POST /v1/plugins`` as ``multipart/form-data`` with a ``module`` file part and a ``settings`` part
  (JSON; it may carry ``name``), or a ``name`` part.

``PUT /v1/plugins/NAME`` with a JSON body replaces the settings (keys left out take their defaults);
with a module body (raw or multipart, as above) it replaces the module, keeping the settings unless new
ones are given.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePosixPath
from typing import Any

from quart import Blueprint, Response, jsonify, request

from gateway.config.models import SECRET_MARKER
from gateway.http.auth import token_matches
from gateway.http.errors import ApiError
from gateway.plugins.loading import PluginSpec
from gateway.plugins.documents import delete_plugin, read_plugin, write_plugin
from gateway.plugins.manager import PluginManager
from gateway.plugins.plugin_settings import (
    NAME_PATTERN,
    PluginSettings,
    PluginSource,
    PluginSettingsError,
    check_name,
    parse_settings,
)
from gateway.store.base import AlreadyExists, NotFound, RevisionConflict, Store
from wasm_abi import PluginError

from . import openapi as _openapi
from ._common import observed

__all__ = ["plugins_blueprint"]

_MODULE_TYPES = ("application/wasm", "application/octet-stream")


def plugins_blueprint(plugins: PluginManager, store: Store, config_token: str | None = None) -> Blueprint:
    """The ``/v1/plugins`` routes over one gateway's plugin manager and store; ``config_token`` (the
    Config API's write token) also unmasks plugin configs on reads."""
    blueprint = Blueprint("plugins", __name__, url_prefix="/v1/plugins")

    def manager() -> PluginManager:
        return plugins

    def shown(status_json: dict[str, Any]) -> dict[str, Any]:
        """A plugin's init config may hold credentials (an API key for the service it calls): when a
        config token is set, reads without it get the config's keys with every value masked."""
        token = config_token
        if token and not token_matches(request.headers.get("Authorization"), token):
            return _masked_config(status_json)
        return status_json

    @blueprint.get("")
    @observed("plugin", "list")
    async def list_plugins() -> Response:
        return jsonify({"plugins": [shown(status.to_json()) for status in manager().statuses()]})

    @blueprint.get("/<name>")
    @observed("plugin", "get")
    async def show_plugin(name: str) -> Response:
        return jsonify(shown(_status_json(manager(), name)))

    @blueprint.post("")
    @observed("plugin", "create")
    async def create_plugin() -> tuple[Response, int]:
        name, wasm, settings_data = await _read_upload(request.args.get("name"))
        if wasm is None:
            raise ApiError(400, "no module: send it as the request body (Content-Type: application/wasm) "
                                "or as the 'module' part of a multipart/form-data request")
        if name is None:
            raise ApiError(400, "the plugin needs a name: ?name=NAME, a 'name' form field or 'name' in settings")
        name = _valid_name(name)
        _refuse_static(manager(), name, "create")
        if manager().stored_document(name) is not None:
            raise ApiError(409, f"plugin {name!r} already exists; PUT /v1/plugins/{name} replaces it")
        settings = _valid_settings(settings_data or {})
        await _check_module(manager(), name, wasm, settings)
        try:
            revision = await write_plugin(store, name, settings, wasm, None)
        except AlreadyExists:
            raise ApiError(409, f"plugin {name!r} already exists; PUT /v1/plugins/{name} replaces it") from None
        await manager().wait_applied(revision)
        return jsonify(_status_json(manager(), name)), 201

    async def stored(name: str, action: str) -> tuple[dict[str, Any], int]:
        """The plugin as the store has it now, with its revision; 404 or 409 (flag/file plugin)."""
        _refuse_static(manager(), name, action)
        found = await read_plugin(store, name)
        if found is None:
            raise ApiError(404, f"plugin {name!r} not found")
        return found

    async def write(name: str, settings: PluginSettings, wasm: bytes | None, existing: dict[str, Any],
                    revision: int) -> int:
        try:
            return await write_plugin(store, name, settings, wasm, existing, revision)
        except RevisionConflict:
            raise ApiError(409, f"plugin {name!r} was changed by another request while this one was "
                                "being applied; read it again and retry") from None
        except NotFound:
            raise ApiError(404, f"plugin {name!r} not found (deleted meanwhile)") from None

    @blueprint.put("/<name>")
    @observed("plugin", "update")
    async def update_plugin(name: str) -> Response:
        existing, revision = await stored(name, "update")
        if await _is_module_upload():
            _, wasm, settings_data = await _read_upload(name)
            if settings_data is None:
                settings_data = existing.get("settings", {})
        else:
            wasm = None
            settings_data = await _json_body()
        settings = _valid_settings(settings_data)
        if wasm is not None:
            await _check_module(manager(), name, wasm, settings)
        else:
            current = manager().status(name)
            stored_wasm = _module_of(manager(), existing)
            if stored_wasm is not None and (current is None or current.settings != settings):
                await _check_module(manager(), name, stored_wasm, settings)
        revision = await write(name, settings, wasm, existing, revision)
        await manager().wait_applied(revision)
        return jsonify(_status_json(manager(), name))

    @blueprint.post("/<name>/enable")
    @observed("plugin", "enable")
    async def enable_plugin(name: str) -> Response:
        return await _set_enabled(name, True)

    @blueprint.post("/<name>/disable")
    @observed("plugin", "disable")
    async def disable_plugin(name: str) -> Response:
        return await _set_enabled(name, False)

    async def _set_enabled(name: str, enabled: bool) -> Response:
        existing, revision = await stored(name, "enable" if enabled else "disable")
        settings = _valid_settings({**existing.get("settings", {}), "enabled": enabled})
        if enabled:
            wasm = _module_of(manager(), existing)
            if wasm is not None:
                await _check_module(manager(), name, wasm, settings)
        revision = await write(name, settings, None, existing, revision)
        await manager().wait_applied(revision)
        return jsonify(_status_json(manager(), name))

    @blueprint.delete("/<name>")
    @observed("plugin", "delete")
    async def remove_plugin(name: str) -> Response:
        existing, _ = await stored(name, "delete")
        try:
            await delete_plugin(store, existing)
        except NotFound:
            raise ApiError(404, f"plugin {name!r} not found") from None
        await manager().wait_until(lambda: manager().stored_document(name) is None)
        return Response(status=204)

    return blueprint


# -- request parsing ----------------------------------------------------------------------------------


_WASM_MAGIC = b"\0asm"


async def _is_raw_module() -> bool:
    """A module sent as the body: declared (application/wasm, application/octet-stream), or a Wasm binary
    under whatever type the client defaulted to (``curl --data-binary`` says form-urlencoded)."""
    mimetype = request.mimetype or ""
    if mimetype in _MODULE_TYPES:
        return True
    if mimetype in ("multipart/form-data", "application/json"):
        return False
    return (await request.get_data())[:4] == _WASM_MAGIC


async def _is_module_upload() -> bool:
    return request.mimetype == "multipart/form-data" or await _is_raw_module()


async def _json_body() -> Any:
    try:
        return json.loads(await request.get_data(as_text=True) or "{}")
    except ValueError as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None


def _settings_from_text(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ApiError(400, f"{where} is not valid JSON: {exc}") from None


async def _read_upload(name: str | None) -> tuple[str | None, bytes | None, dict[str, Any] | None]:
    """(name, module bytes, settings dict) from a raw or multipart upload."""
    mimetype = request.mimetype or ""
    settings: Any = None
    wasm: bytes | None = None
    if mimetype == "multipart/form-data":
        form = await request.form
        files = await request.files
        part = files.get("module")
        if part is None and len(files) == 1:
            part = next(iter(files.values()))  # one file part, whatever the client named it
        if part is not None:
            wasm = part.read()
        elif "module" in form:
            raise ApiError(400, "the 'module' part must be a file part (filename=...), not a text field")
        elif len(files) > 1:
            raise ApiError(400, f"several file parts ({', '.join(sorted(files))}) and none named 'module': "
                                "send the module as the 'module' part")
        if "settings" in form:
            settings = _settings_from_text(form["settings"], "the 'settings' part")
        name = form.get("name") or name
        named_in_settings = isinstance(settings, dict) and settings.get("name") is not None
        if name is None and part is not None and part.filename and not named_in_settings:
            stem = PurePosixPath(part.filename.replace("\\", "/")).stem  # like --plugin: the file's stem
            name = stem if NAME_PATTERN.match(stem) else None
    elif await _is_raw_module():
        wasm = bytes(await request.get_data(as_text=False))  # type: ignore[arg-type]  # bytes when not as_text
        if "settings" in request.args:
            settings = _settings_from_text(request.args["settings"], "the 'settings' query parameter")
    else:
        raise ApiError(415, f"unsupported Content-Type {mimetype or '(none)'!r} and the body is not a Wasm "
                            "binary: send the module as application/wasm (or application/octet-stream) or "
                            "multipart/form-data")
    if settings is not None:
        if not isinstance(settings, dict):
            raise ApiError(400, "settings must be a JSON object")
        settings = dict(settings)
        in_settings = settings.pop("name", None)
        if in_settings is not None and name is not None and in_settings != name:
            raise ApiError(400, f"settings name {in_settings!r} does not match the plugin name {name!r}")
        name = name or in_settings
    if wasm is not None and not wasm:
        raise ApiError(400, "the module is empty")
    return name, wasm, settings


def _valid_name(name: str) -> str:
    try:
        return check_name(name)
    except PluginSettingsError as exc:
        raise ApiError(400, str(exc)) from None


def _valid_settings(data: Any) -> PluginSettings:
    try:
        return parse_settings(data)
    except PluginSettingsError as exc:
        raise ApiError(400, f"invalid plugin settings: {exc}") from None


# -- checks -------------------------------------------------------------------------------------------


def _refuse_static(manager: PluginManager, name: str, action: str) -> None:
    origin = manager.static_origin(name)
    if origin is not None:
        raise ApiError(409, f"cannot {action} plugin {name!r}: it is configured by {origin}; change it there")


def _module_of(manager: PluginManager, stored: dict[str, Any]) -> bytes | None:
    """The module of a stored plugin as this gateway has it, if its view already holds that module."""
    spec = manager.stored_spec(str(stored.get("name")))
    return spec.wasm if spec is not None and spec.sha256 == stored.get("sha256") else None


async def _check_module(manager: PluginManager, name: str, wasm: bytes, settings: PluginSettings) -> None:
    """Refuse a pin mismatch or a module that cannot load under its settings (400, with the reason)."""
    digest = hashlib.sha256(wasm).hexdigest()
    if settings.sha256 is not None and settings.sha256 != digest:
        raise ApiError(400, f"module sha256 is {digest}, not the pinned {settings.sha256}; refusing it")
    spec = PluginSpec(name=name, source=PluginSource.API, settings=settings, sha256=digest, wasm=wasm,
                      origin="uploaded module")
    try:
        await manager.check_loadable(spec)
    except PluginError as exc:
        kind = f" ({exc.kind})" if exc.kind else ""
        raise ApiError(400, f"plugin {name!r} cannot be loaded{kind}: {exc.message}") from None


def _masked_config(status_json: dict[str, Any]) -> dict[str, Any]:
    settings = status_json.get("settings") or {}
    config = settings.get("config")
    if not config:
        return status_json
    return {**status_json, "settings": {**settings, "config": {key: SECRET_MARKER for key in config}}}


def _status_json(manager: PluginManager, name: str) -> dict[str, Any]:
    status = manager.status(name)
    if status is None:
        raise ApiError(404, f"plugin {name!r} not found")
    return status.to_json()


# -- OpenAPI ------------------------------------------------------------------------------------------


def _inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its local ``$defs`` (nested models: capabilities) written in place, so it stays
    valid wherever the OpenAPI document embeds it."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(schema)


def _openapi_paths() -> dict[str, dict[str, Any]]:
    """The /v1/plugins entries of ``/v1/openapi.json`` (settings schema straight from the model)."""
    errors = {"$ref": "#/components/schemas/Errors"}

    def error(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": errors}}}

    settings = _inline_defs(PluginSettings.model_json_schema())
    capability_names = {"type": "string", "enum": ["kv", "http", "metrics"]}
    plugin = {"type": "object", "description": "A plugin as listed: name, source (flag|file|api), origin, "
              "sha256, size, state (active|quarantined|disabled|failed), settings, capabilities (what it is "
              "granted: settings.capabilities), importedCapabilities (the capabilities its module imports; null "
              "when not loaded), subscriptions, lastFault, retryAt, retryInSeconds, quarantineReason, counters, "
              "createdAt, updatedAt",
              "properties": {"name": {"type": "string"}, "state": {"type": "string"},
                             "sha256": {"type": "string"}, "settings": settings,
                             "capabilities": settings["properties"]["capabilities"],
                             "importedCapabilities": {"type": ["array", "null"], "items": capability_names,
                                                      "description": "capabilities the module imports "
                                                      "(ABI.md 7.1); null when the plugin is not loaded"}}}
    one = {"description": "the plugin", "content": {"application/json": {"schema": plugin}}}
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    upload_body: dict[str, Any] = {"required": True, "content": {
        "application/wasm": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "module": {"type": "string", "format": "binary"},
            "settings": {"type": "string", "description": "JSON settings; may carry name"},
            "name": {"type": "string"}}}}}}
    security: list[dict[str, list[str]]] = [{"bearer": []}]
    tags = ["Plugins"]
    return {
        "/v1/plugins": {
            "get": {"summary": "List plugins in run order", "tags": tags, "responses": {"200": {
                "description": "every plugin", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"plugins": {"type": "array", "items": plugin}}}}}}}},
            "post": {"summary": "Upload a plugin (checked by loading it first)", "tags": tags, "security": security,
                     "parameters": [
                         {"name": "name", "in": "query", "schema": {"type": "string"}},
                         {"name": "settings", "in": "query", "schema": {"type": "string"},
                          "description": "JSON settings (raw uploads)"}],
                     "requestBody": upload_body,
                     "responses": {"201": one, "400": error("bad module, settings or sha256 pin"),
                                   "401": error("token missing or wrong"), "409": error("name taken")}},
        },
        "/v1/plugins/{name}": {
            "get": {"summary": "Show one plugin", "tags": tags, "parameters": [name],
                    "responses": {"200": one, "404": error("no such plugin")}},
            "put": {"summary": "Replace settings (JSON body) or module (raw/multipart body)", "tags": tags,
                    "security": security, "parameters": [name],
                    "requestBody": {"required": True, "content": {
                        "application/json": {"schema": settings}, **upload_body["content"]}},
                    "responses": {"200": one, "400": error("invalid"), "401": error("token"),
                                  "404": error("no such plugin"), "409": error("configured by flag or file")}},
            "delete": {"summary": "Delete a plugin", "tags": tags, "security": security, "parameters": [name],
                       "responses": {"204": {"description": "deleted"}, "401": error("token"),
                                     "404": error("no such plugin"), "409": error("configured by flag or file")}},
        },
        "/v1/plugins/{name}/enable": {"post": {
            "summary": "Enable a plugin", "tags": tags, "security": security, "parameters": [name],
            "responses": {"200": one, "400": error("cannot load"), "404": error("no such plugin")}}},
        "/v1/plugins/{name}/disable": {"post": {
            "summary": "Disable a plugin (kept, not loaded)", "tags": tags, "security": security,
            "parameters": [name], "responses": {"200": one, "404": error("no such plugin")}}},
    }


_openapi.EXTRA_PATHS.update(_openapi_paths())
