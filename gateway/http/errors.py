"""The one error shape of both APIs, ``{"errors": [{"message": "..."}]}``, and the handlers that make
every failure (ours, Quart's 404/405, a store outage, an unexpected exception) answer with it.

Upstream clients parse ``errors[0].message``; an HTML error page or an empty body would break them.
"""

from __future__ import annotations

import logging

from quart import Quart, Response, current_app, request
from werkzeug.exceptions import HTTPException

from gateway.common import error_body, error_json
from gateway.config.service import (
    ConfigConflict,
    ConfigError,
    ConfigInUse,
    ConfigNotFound,
    InvalidConfig,
    StoredDocumentInvalid,
)
from gateway.store.base import AlreadyExists, NotFound, RevisionConflict, StoreError, StoreUnavailable

__all__ = ["ApiError", "describe_error", "error_body", "error_response", "install_error_handlers", "status_of"]

log = logging.getLogger(__name__)

_STATUS: list[tuple[type[Exception], int]] = [
    (InvalidConfig, 400),
    (ConfigInUse, 400),
    (ConfigNotFound, 404),
    (ConfigConflict, 409),
    (StoredDocumentInvalid, 500),
    (NotFound, 404),
    (AlreadyExists, 409),
    (RevisionConflict, 409),
    (StoreUnavailable, 503),
]


class ApiError(Exception):
    """Raise from a handler to answer ``status`` with ``message`` in the standard shape."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(status: int, *messages: str, headers: dict[str, str] | None = None) -> Response:
    # As upstream's json.Encoder wrote it: compact, then a newline.
    response = Response(error_json(*messages), status=status, content_type="application/json")
    response.headers.update(headers or {})
    return response


def status_of(error: Exception) -> int:
    """The HTTP status of a domain or store error (500 for anything unknown)."""
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    return 500


def describe_error(error: Exception) -> tuple[int, str, dict[str, str]]:
    """(status, message, extra headers) of the answer the handlers below give ``error``, for an ASGI path
    that answers without Quart (the Events API's, see gateway.http.events_api); logs as they do."""
    if isinstance(error, ApiError):
        return error.status, error.message, error.headers
    if isinstance(error, ConfigError):
        return status_of(error), str(error), {}
    if isinstance(error, StoreError):
        status = status_of(error)
        if status == 500:
            log.error("configuration store error: %s", error)
        return status, f"Configuration store error: {error}", {}
    log.error("unhandled error", exc_info=error)
    return 500, "Internal server error.", {}


def install_error_handlers(app: Quart) -> None:
    @app.errorhandler(ApiError)
    async def _api_error(error: ApiError) -> Response:
        return error_response(error.status, error.message, headers=error.headers)

    @app.errorhandler(ConfigError)
    async def _config_error(error: ConfigError) -> Response:
        return error_response(status_of(error), str(error))

    @app.errorhandler(StoreError)
    async def _store_error(error: StoreError) -> Response:
        status = status_of(error)
        if status == 500:
            log.error("configuration store error: %s", error)
        return error_response(status, f"Configuration store error: {error}")

    @app.errorhandler(HTTPException)
    async def _http_exception(error: HTTPException) -> Response:
        response = error_response(error.code or 500, _describe_http_error(error))
        if error.code == 405:
            allowed = error.get_headers()
            response.headers.update({k: v for k, v in allowed if k.lower() == "allow"})
        return response

    @app.errorhandler(Exception)
    async def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "Internal server error.")


def _describe_http_error(error: HTTPException) -> str:
    """Werkzeug's stock descriptions ("The requested URL was not found on the server...") name neither
    the method nor the path; say which request was refused and why."""
    if error.description and error.description != type(error).description:
        return error.description  # raised with a message of its own
    where = f"{request.method} {request.path}"
    if error.code == 404:
        return f"no such endpoint: {where}"
    if error.code == 405:
        allowed = next((v for k, v in error.get_headers() if k.lower() == "allow"), "")
        return f"method {request.method} is not allowed on {request.path}" + (f" (allowed: {allowed})" if allowed else "")
    if error.code == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return f"request body of {where} is too large" + (f": the limit is {limit} bytes" if limit else "")
    return error.description or error.name
