"""The Config API (port 4001): one Quart app, one module per resource.

Handlers are thin: they parse the request, call :class:`gateway.config.service.ConfigService` and shape
the response; every rule lives in the service, every error shape in :mod:`gateway.http.errors`.
"""

from __future__ import annotations

from typing import Any

from quart import Quart

from gateway.http.auth import MUTATING_METHODS, install_bearer_auth
from gateway.http.errors import install_error_handlers

from . import cors, eventtypes, functions, openapi, status, subscriptions
from .plugins import plugins_blueprint

__all__ = ["create_config_app"]


def create_config_app(gateway: Any) -> Quart:
    app = Quart("gateway.config_api")
    app.extensions["gateway"] = gateway
    # Keep upstream's key order in responses ("space" first) rather than sorting keys.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    install_bearer_auth(app, getattr(gateway.settings, "config_token", None), api="Config", methods=MUTATING_METHODS)
    install_error_handlers(app)
    for module in (status, openapi, eventtypes, functions, subscriptions, cors):
        app.register_blueprint(module.blueprint)
    app.register_blueprint(plugins_blueprint(gateway))
    return app
