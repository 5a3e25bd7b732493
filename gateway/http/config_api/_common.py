"""What every Config API resource module shares: the gateway behind the app, body parsing, metrics."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from quart import Response, current_app, jsonify, request

from gateway.config.models import Model
from gateway.config.service import ConfigService, metadata_filters, redact
from gateway.config.view import ConfigView
from gateway.events.json_body import GO_EOF, GO_UNEXPECTED_EOF, loads_first_value
from gateway.http.errors import ApiError
from gateway.metrics import Metrics
from gateway.pipeline import EventPlane
from gateway.plugins.manager import PluginManager
from gateway.store.base import Store

__all__ = ["ConfigApiGateway", "ConfigApiSettings", "document_response", "filters", "gateway", "list_response",
           "observed", "read_json", "service"]

P = ParamSpec("P")
R = TypeVar("R")


class ConfigApiSettings(Protocol):
    """The settings the Config API reads."""

    @property
    def config_token(self) -> str | None: ...


class ConfigApiGateway(Protocol):
    """What the Config API uses of the gateway it serves (:class:`gateway.runtime.Gateway` is one)."""

    @property
    def settings(self) -> ConfigApiSettings: ...
    @property
    def config(self) -> ConfigService: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def store(self) -> Store: ...
    @property
    def plugins(self) -> PluginManager: ...
    @property
    def events(self) -> EventPlane: ...
    @property
    def draining(self) -> bool: ...
    @property
    def view(self) -> ConfigView: ...


def gateway() -> ConfigApiGateway:
    """The gateway this app serves (what `create_config_app` was given)."""
    return cast(ConfigApiGateway, current_app.extensions["gateway"])


def service() -> ConfigService:
    return gateway().config


async def read_json(label: str) -> Any:
    """The request body's JSON value, read as upstream's ``json.Decoder.Decode`` did (anything after the
    first value is ignored); a 400 naming the resource when there is none."""
    raw = await request.get_data()
    try:
        return loads_first_value(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        # Go's words for an empty or truncated body are upstream's whole message (its tests pin
        # "... Validation error: unexpected EOF"); other problems are named in this project's words.
        reason = str(exc) if str(exc) in (GO_EOF, GO_UNEXPECTED_EOF) else f"request body is not valid JSON: {exc}"
        raise ApiError(400, f"{label} doesn't validate. Validation error: {reason}") from None


def filters() -> dict[str, str]:
    return metadata_filters(request.args)


def document_response(document: Model, status: int = 200) -> Response:
    response = jsonify(redact(document))
    response.status_code = status
    return response


def list_response(key: str, documents: list[Any]) -> Response:
    return jsonify({key: [redact(d) for d in documents]})


def observed(resource: str, operation: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Count the request and time it in ``config_requests`` / ``config_request_duration_seconds``
    (upstream's labels: space, resource, operation), whatever its outcome."""
    def decorate(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(handler)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                return await handler(*args, **kwargs)
            finally:
                metrics = gateway().metrics
                space = str(kwargs.get("space", ""))
                metrics.config_requests.labels(space, resource, operation).inc()
                metrics.config_request_duration_seconds.labels(space, resource, operation).observe(
                    time.perf_counter() - started)
        return wrapper
    return decorate
