"""Cost of finding a function's provider on every call: the old key (``model_dump`` of the provider
settings + a sorted JSON dump) against the per-document cache of :meth:`ProviderPool.for_function`.

Best of 5 runs of 200,000 lookups of an already-built provider, wall time per lookup, for an ``http``
and an ``awslambda`` function. Run: ``python -m bench.bench_provider_lookup``.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

from gateway.config.models import Function
from gateway.providers import ProviderPool, provider_config

LOOKUPS = 200_000


def main() -> None:
    documents = {
        "http": Function.model_validate({"functionId": "fn", "type": "http",
                                         "provider": {"url": "http://127.0.0.1:9/fn", "timeout": 2}}),
        "awslambda": Function.model_validate({"functionId": "l", "type": "awslambda", "provider": {
            "arn": "arn:aws:lambda:us-east-1:1:function:f", "region": "us-east-1",
            "awsAccessKeyId": "AK", "awsSecretAccessKey": "SK"}}),
    }
    pool = ProviderPool()
    ways: dict[str, Callable[[Any], Any]] = {
        "model_dump + JSON key": lambda f: pool.get(f.type, provider_config(f)),
        "per-document cache": pool.for_function,
    }
    print(f"{'function':10s} {'lookup':24s} us/lookup")
    for label, function in documents.items():
        for name, lookup in ways.items():
            lookup(function)
            best = min(timeit.repeat(lambda lookup=lookup, function=function: lookup(function),
                                     number=LOOKUPS, repeat=5))
            print(f"{label:10s} {name:24s} {best / LOOKUPS * 1e6:9.2f}")


if __name__ == "__main__":
    main()
