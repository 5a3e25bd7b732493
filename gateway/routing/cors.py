"""CORS for the Events API, from the space's CORS configurations (upstream semantics, rs/cors style).

A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered here (:func:`preflight`)
and never becomes an event; a simple request gets its ``Access-Control-Allow-*`` headers
(:func:`response_headers`) added to whatever the event path answers. ``headers`` is anything with
``get(name, default)`` by canonical header name (the request's ``Headers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Preflight", "canonical_header_list", "is_preflight", "preflight", "preflight_headers", "response_headers", "simple_headers"]


class _Headers(Protocol):
    def get(self, name: str, default: Any = None) -> Any: ...


class _Routes(Protocol):
    def cors_config(self, method: str, path: str) -> Any | None: ...


@dataclass(frozen=True, slots=True)
class Preflight:
    """The answer to a preflight: ``headers`` when allowed (200), else ``problem`` (403)."""

    headers: dict[str, str] | None
    problem: str = ""


def is_preflight(method: str, headers: _Headers) -> bool:
    return method == "OPTIONS" and bool(headers.get("Access-Control-Request-Method"))


def preflight(routes: _Routes, method: str, path: str, headers: _Headers) -> Preflight | None:
    """The answer to a preflight for ``path`` in a space's routes; None when the request is no preflight
    or no CORS configuration covers the requested method and path (it then goes on as an event)."""
    if not is_preflight(method, headers):
        return None
    config = routes.cors_config(headers.get("Access-Control-Request-Method").upper(), path)
    if config is None:
        return None
    allowed = preflight_headers(config, headers)
    if allowed is None:
        return Preflight(None, preflight_problem(config, headers) or "CORS preflight refused")
    return Preflight(allowed)


def response_headers(routes: _Routes, method: str, path: str, headers: _Headers) -> dict[str, str]:
    """The ``Access-Control-Allow-*`` headers of the answer to a request with an ``Origin`` (else none; and
    none for a preflight no configuration answered, which goes on as an event)."""
    if not headers.get("Origin") or is_preflight(method, headers):
        return {}
    config = routes.cors_config(method, path)
    return simple_headers(config, headers) if config is not None else {}


def _origin_allowed(config: Any, origin: str) -> bool:
    for allowed in config.allowed_origins:
        if allowed == "*" or allowed == origin:
            return True
        if "*" in allowed:
            prefix, _, suffix = allowed.partition("*")
            if origin.startswith(prefix) and origin.endswith(suffix):
                return True
    return False


def _allow_origin(config: Any, origin: str) -> str:
    return "*" if "*" in config.allowed_origins and not config.allow_credentials else origin


def _requested_headers(headers: _Headers) -> list[str]:
    return [h.strip() for h in headers.get("Access-Control-Request-Headers", "").split(",") if h.strip()]


def canonical_header_list(value: str) -> list[str]:
    """rs/cors v1.2's ``parseHeaderList`` (what upstream answered a preflight with): the names of an
    ``Access-Control-Request-Headers`` list, split on ``,`` and spaces, canonicalised (``x-api-key`` ->
    ``X-Api-Key``: upper case at the start and after ``-`` or ``_``, lower case elsewhere); characters
    other than letters, digits, ``-`` and ``_`` are left out."""
    names: list[str] = []
    current: list[str] = []
    upper = True
    for index, char in enumerate(value):
        if "a" <= char <= "z" or "A" <= char <= "Z":
            current.append(char.upper() if upper else char.lower())
        elif char in "-_" or "0" <= char <= "9":
            current.append(char)
        if char in " ," or index == len(value) - 1:
            if current:
                names.append("".join(current))
                current = []
                upper = True
        else:
            upper = char in "-_"
    return names


def preflight_problem(config: Any, headers: _Headers) -> str | None:
    """Why a preflight is refused (for the answer's error message), or ``None`` when it is allowed."""
    origin = headers.get("Origin", "")
    method = headers.get("Access-Control-Request-Method", "").upper()
    if not origin:
        return "CORS preflight without an Origin header"
    if not _origin_allowed(config, origin):
        return f"CORS preflight refused: origin {origin!r} is not allowed"
    if method not in {m.upper() for m in config.allowed_methods}:
        return f"CORS preflight refused: method {method!r} is not allowed"
    allowed_headers = {h.lower() for h in config.allowed_headers}
    if "*" not in allowed_headers:
        refused = [h for h in _requested_headers(headers) if h.lower() not in allowed_headers]
        if refused:
            return f"CORS preflight refused: header(s) {', '.join(refused)} not allowed"
    return None


def preflight_headers(config: Any, headers: _Headers) -> dict[str, str] | None:
    """Headers of a successful preflight answer, or ``None`` when the preflight is refused."""
    if preflight_problem(config, headers) is not None:
        return None
    origin = headers.get("Origin", "")
    method = headers.get("Access-Control-Request-Method", "").upper()
    requested = canonical_header_list(headers.get("Access-Control-Request-Headers", ""))
    answer = {
        "Access-Control-Allow-Origin": _allow_origin(config, origin),
        "Access-Control-Allow-Methods": method,
        "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    }
    if requested:
        answer["Access-Control-Allow-Headers"] = ", ".join(requested)
    if config.allow_credentials:
        answer["Access-Control-Allow-Credentials"] = "true"
    return answer


def simple_headers(config: Any, headers: _Headers) -> dict[str, str]:
    """``Access-Control-Allow-*`` headers for a non-preflight request (empty when the origin is not allowed)."""
    origin = headers.get("Origin", "")
    if not origin or not _origin_allowed(config, origin):
        return {}
    answer = {"Access-Control-Allow-Origin": _allow_origin(config, origin), "Vary": "Origin"}
    if config.allow_credentials:
        answer["Access-Control-Allow-Credentials"] = "true"
    return answer
