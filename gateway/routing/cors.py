"""CORS for the Events API, from the space's CORS configurations (upstream semantics, rs/cors style).

A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered here and never becomes an
event; a simple request gets its ``Access-Control-Allow-*`` headers added to whatever the event path
answers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_preflight", "preflight_headers", "simple_headers"]


def is_preflight(method: str, headers: dict[str, str]) -> bool:
    return method == "OPTIONS" and bool(headers.get("Access-Control-Request-Method"))


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


def _requested_headers(headers: dict[str, str]) -> list[str]:
    return [h.strip() for h in headers.get("Access-Control-Request-Headers", "").split(",") if h.strip()]


def preflight_problem(config: Any, headers: dict[str, str]) -> str | None:
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


def preflight_headers(config: Any, headers: dict[str, str]) -> dict[str, str] | None:
    """Headers of a successful preflight answer, or ``None`` when the preflight is refused."""
    if preflight_problem(config, headers) is not None:
        return None
    origin = headers.get("Origin", "")
    method = headers.get("Access-Control-Request-Method", "").upper()
    requested = _requested_headers(headers)
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


def simple_headers(config: Any, headers: dict[str, str]) -> dict[str, str]:
    """``Access-Control-Allow-*`` headers for a non-preflight request (empty when the origin is not allowed)."""
    origin = headers.get("Origin", "")
    if not origin or not _origin_allowed(config, origin):
        return {}
    answer = {"Access-Control-Allow-Origin": _allow_origin(config, origin), "Vary": "Origin"}
    if config.allow_credentials:
        answer["Access-Control-Allow-Credentials"] = "true"
    return answer
