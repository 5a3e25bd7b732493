"""What the event pipeline answers: a plain :class:`Reply` the HTTP edge turns into a response."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.common import error_json
from gateway.plugins.contract import Rejection

__all__ = ["CALL_FAILED", "Reply", "error_reply", "rejection_reply"]

_JSON = {"Content-Type": "application/json"}
CALL_FAILED = "Function call failed. Please check logs."


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def error_reply(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {**(headers or {}), **_JSON}, error_json(message))


def rejection_reply(rejection: Rejection, headers: dict[str, str] | None = None) -> Reply:
    return error_reply(rejection.status, rejection.message or f"rejected by plugin {rejection.plugin}", headers)
