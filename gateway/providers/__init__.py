"""Function providers and the pool that builds and caches them.

A provider is built once per function configuration and reused: the HTTP provider shares one
connection-pooling aiohttp session, the AWS providers share aiobotocore clients per region and
credentials. A changed function (new provider config) simply gets a new cache key.
"""

from __future__ import annotations

import json
from typing import Any

from .aws import AWSClients, FirehoseProvider, KinesisProvider, LambdaProvider, SQSProvider
from .base import Provider, ProviderConfigError, ProviderError
from .http import DEFAULT_MAX_RESPONSE_BYTES, HTTPProvider, HTTPSession

__all__ = ["PROVIDER_TYPES", "Provider", "ProviderConfigError", "ProviderError", "ProviderPool"]

_AWS = {"awslambda": LambdaProvider, "awskinesis": KinesisProvider, "awsfirehose": FirehoseProvider,
        "awssqs": SQSProvider}
PROVIDER_TYPES = frozenset({"http", *_AWS})


class ProviderPool:
    """Builds providers from function documents (``{"type": ..., "provider": {...}}``) and caches them."""

    def __init__(self, *, max_connections: int = 200, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self._http = HTTPSession(max_connections)
        self._max_response_bytes = max_response_bytes
        self._aws = AWSClients()
        self._cache: dict[str, Provider] = {}

    def get(self, function_type: str, config: dict[str, Any]) -> Provider:
        key = function_type + "\0" + json.dumps(config, sort_keys=True, default=str)
        provider = self._cache.get(key)
        if provider is None:
            provider = self._build(function_type, config)
            if len(self._cache) > 10_000:  # configs churned a lot: start over rather than grow forever
                self._cache.clear()
            self._cache[key] = provider
        return provider

    def _build(self, function_type: str, config: dict[str, Any]) -> Provider:
        if function_type == "http":
            return HTTPProvider(config, self._http, max_response_bytes=self._max_response_bytes)
        aws = _AWS.get(function_type)
        if aws is None:
            raise ProviderConfigError(
                f"unknown function type {function_type!r} (known: {', '.join(sorted(PROVIDER_TYPES))})")
        return aws(config, self._aws)

    async def close(self) -> None:
        await self._http.close()
        await self._aws.close()
        self._cache.clear()
