"""What a function provider is: something that takes the event payload and answers bytes or fails."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["Provider", "ProviderConfigError", "ProviderError"]


class ProviderError(Exception):
    """A call failed. The message is what ``function.invocationFailed`` carries in ``error``, so it says
    what happened in words (status code, AWS error code), never an empty ``{}`` as upstream did.

    ``client_message``: what a sync subscription's client is told instead of the generic "Function call
    failed. Please check logs." (upstream's words for Lambda credential errors), or ``None``."""

    def __init__(self, message: str, client_message: str | None = None) -> None:
        super().__init__(message)
        self.client_message = client_message


class ProviderConfigError(ProviderError):
    """The function's provider configuration cannot work (unknown type, missing field)."""


class Provider(Protocol):
    """One configured function target. Instances are cached and shared by concurrent calls."""

    async def call(self, payload: bytes, *, attempt: int | None = None,
                   headers: Mapping[str, str] | None = None) -> bytes:
        """Deliver ``payload`` (a JSON CloudEvent, or an authorizer request) and return the response body.
        ``attempt``: which attempt of an async delivery this is (1, 2, ...), None for a sync call; the http
        provider sends it as ``Event-Gateway-Delivery-Attempt``, the AWS ones have nowhere to put it.
        ``headers``: trace context (``traceparent``, ``tracestate``) the http provider sends along; the AWS
        ones have nowhere to put it either (the event's distributed-tracing extension carries the trace)."""

    async def close(self) -> None: ...


def require(config: dict[str, Any], key: str, provider: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not value:
        raise ProviderConfigError(f"{provider} provider: '{key}' is required")
    return value
