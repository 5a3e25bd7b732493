"""Function providers and the pool that builds and caches them.

A provider is built once per function configuration and reused: the HTTP provider shares one
connection-pooling aiohttp session, the AWS providers share aiobotocore clients per region and
credentials. A changed function (new provider config) simply gets a new cache key.

On the event path the pool is asked by function document (:meth:`ProviderPool.for_function`), and
answers from a cache keyed by that document's identity: documents are frozen and the configuration view
swaps in a new object when one changes, so the object stands for its configuration and the per-call
``model_dump`` and JSON key of :meth:`ProviderPool.get` are paid once per document, not per call.
"""

from __future__ import annotations

import functools
import json
import weakref
from typing import Any

from gateway.common import FUNCTION_TYPES

from .aws import AWSClients, FirehoseProvider, KinesisProvider, LambdaProvider, SQSProvider
from .base import Provider, ProviderConfigError, ProviderError
from .http import DEFAULT_MAX_RESPONSE_BYTES, HTTPProvider, HTTPSession

__all__ = ["PROVIDER_TYPES", "Provider", "ProviderConfigError", "ProviderError", "ProviderPool", "provider_config"]

_AWS: dict[str, type[LambdaProvider | KinesisProvider | FirehoseProvider | SQSProvider]] = {"awslambda": LambdaProvider, "awskinesis": KinesisProvider, "awsfirehose": FirehoseProvider,
        "awssqs": SQSProvider}
PROVIDER_TYPES = frozenset(FUNCTION_TYPES)
assert PROVIDER_TYPES == {"http", *_AWS}, "a provider per function type"


def provider_config(function: Any) -> dict[str, Any]:
    """The function's provider settings with upstream (camelCase) keys, secrets included."""
    provider = function.provider
    if hasattr(provider, "model_dump"):
        return provider.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dict(provider)


class ProviderPool:
    """Builds providers from function documents (``{"type": ..., "provider": {...}}``) and caches them."""

    def __init__(self, *, max_connections: int = 200, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self._http = HTTPSession(max_connections)
        self._max_response_bytes = max_response_bytes
        self._aws = AWSClients()
        self._cache: dict[str, Provider] = {}
        #: id(function document) -> (weak reference to it, its provider). The weak reference proves the
        #: id still names the same object (ids are reused after collection) and drops the entry with it.
        self._by_function: dict[int, tuple[weakref.ref[Any], Provider]] = {}

    def for_function(self, function: Any) -> Provider:
        """The provider of a function document (``.type``, ``.provider``), cached per document object.

        Only valid for immutable documents (the configuration models are frozen): a document changed in
        place would keep its old provider. Objects that cannot be weakly referenced are not cached.
        """
        key = id(function)
        entry = self._by_function.get(key)
        if entry is not None and entry[0]() is function:
            return entry[1]
        provider = self.get(function.type, provider_config(function))
        try:
            ref: weakref.ref[Any] = weakref.ref(function, functools.partial(self._forget, key))
        except TypeError:
            return provider
        self._by_function[key] = (ref, provider)
        return provider

    def _forget(self, key: int, dead: weakref.ref[Any]) -> None:
        """A cached document was collected: drop its entry unless the id already names a newer one."""
        entry = self._by_function.get(key)
        if entry is not None and entry[0] is dead:
            del self._by_function[key]

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
        self._by_function.clear()
