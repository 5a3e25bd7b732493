"""Bearer tokens for the Config API and the Events API.

Operators who run third-party plugins must not let just anyone upload one, so the Config API takes a
token (``--config-token`` / ``EVENT_GATEWAY_CONFIG_TOKEN``) that every mutating call must present;
reads stay open so dashboards and ``/v1/metrics`` scrapers need no secret. The Events API can require
its own token (``--events-token`` / ``EVENT_GATEWAY_EVENTS_TOKEN``) on every request except CORS
preflights, which browsers send without credentials.

The Config API binds to loopback unless the operator names another host with ``--config-host``, token
or not: an unauthenticated plugin upload endpoint must never be reachable by accident, and even with a
token its reads (configuration, plugin list and settings, ``/v1/metrics``) stay open to whoever can
reach it, so setting a token alone must not expose them.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from quart import Quart, Response, request

from gateway.common import error_json

__all__ = [
    "LOOPBACK",
    "MUTATING_METHODS",
    "config_bind_host",
    "install_bearer_auth",
    "is_loopback",
    "token_matches",
]

log = logging.getLogger("gateway.auth")

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK = "127.0.0.1"


def token_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token``; constant-time, so the comparison does not
    leak how much of a guess was right."""
    if not header:
        return False
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def _unauthorized(message: str) -> Response:
    # Built by hand rather than through the app's error handlers so that the refusal is the same
    # whatever error handling the app registers, and happens before any body is read.
    body = error_json(message)
    return Response(body, status=401, content_type="application/json",
                    headers={"WWW-Authenticate": 'Bearer realm="event-gateway"'})


def install_bearer_auth(app: Quart, token: str | None, *, api: str, methods: frozenset[str] | None) -> None:
    """Require ``Authorization: Bearer <token>`` on ``app`` for ``methods`` (``None``: every method
    except ``OPTIONS``). A ``None`` or empty token installs nothing: the API stays open."""
    if not token:
        return

    @app.before_request
    async def _require_token() -> Response | None:
        method = request.method.upper()
        if method == "OPTIONS":
            return None
        if methods is not None and method not in methods:
            return None
        header = request.headers.get("Authorization")
        if token_matches(header, token):
            return None
        reason = "missing" if not header else "invalid"
        log.info("%s API: refused %s %s: %s bearer token", api, method, request.path, reason)
        return _unauthorized(f"{api} API: {reason} bearer token; send 'Authorization: Bearer <token>'")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, as bound or as a peer's) is this machine's loopback;
    an IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) counts as its IPv4 address."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


def config_bind_host(explicit_host: str | None, token: str | None) -> str:
    """Where the Config API listens: ``--config-host`` when given (a warning is logged when that exposes
    an unauthenticated API), else loopback, whether or not a token is set (reads need no token)."""
    if explicit_host:
        if not token and not is_loopback(explicit_host):
            log.warning("Config API bound to %s without --config-token: anyone who can reach it can "
                        "change the configuration and upload plugins", explicit_host)
        return explicit_host
    return LOOPBACK
