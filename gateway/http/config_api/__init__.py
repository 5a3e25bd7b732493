"""The Config API (port 4001): one Quart app, one module per resource.

Handlers are thin: they parse the request, call :class:`gateway.config.service.ConfigService` and shape
the response; every rule lives in the service, every error shape in :mod:`gateway.http.errors`.
"""

from __future__ import annotations

from typing import Any

from quart import Quart

from gateway.common import space_problem
from gateway.http.auth import MUTATING_METHODS, install_bearer_auth
from gateway.http.errors import ApiError, install_error_handlers

from gateway.http.console import console_blueprint
from gateway.observe.tail import TailHub

from . import cors, deadletters, eventtypes, functions, metrics_summary, openapi, spaces, status, subscriptions, tail
from ._common import ConfigApiGateway, ConfigApiSettings
from .plugins import plugins_blueprint

__all__ = ["ConfigApiGateway", "ConfigApiSettings", "create_config_app"]


def create_config_app(gateway: ConfigApiGateway) -> Quart:
    """The Config API app over ``gateway``: its ``config`` service, ``metrics``, ``store``, ``plugins``,
    ``events`` (dead letters), ``draining`` state and ``settings.config_token`` (`ConfigApiGateway`),
    nothing else; its ``tail`` (`TailHub`, the live tail the pipeline publishes to) when it has one, else
    the app makes its own (``app.extensions["tail"]``)."""
    app = Quart("gateway.config_api")
    app.extensions["gateway"] = gateway
    hub = getattr(gateway, "tail", None)
    app.extensions["tail"] = hub if isinstance(hub, TailHub) else TailHub()
    # Keep upstream's key order in responses ("space" first) rather than sorting keys.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # A trailing slash reaches the same endpoint (upstream's router redirected to it; a plain match spares
    # clients that do not follow a redirected POST). Set before any rule is registered.
    app.url_map.strict_slashes = False
    token = gateway.settings.config_token
    install_bearer_auth(app, token, api="Config", methods=MUTATING_METHODS)
    install_error_handlers(app)

    @app.url_value_preprocessor
    def _check_space(endpoint: str | None, values: dict[str, Any] | None) -> None:
        # A space that can never exist (too short, bad characters) is a client mistake on every method, not
        # an empty list or a "not found" that sends the client looking for the document.
        space = (values or {}).get("space")
        if space is not None and space_problem(space) is not None:
            raise ApiError(400, f"space {space!r} in the URL is invalid: it must be at least 3 characters of "
                                "letters, digits, '.', '-' and '_'")

    for module in (status, openapi, eventtypes, functions, subscriptions, cors, deadletters, tail,
                   metrics_summary, spaces):
        app.register_blueprint(module.blueprint)
    app.register_blueprint(plugins_blueprint(gateway.plugins, gateway.store, token))
    app.register_blueprint(console_blueprint())
    return app
