"""Conflicting subscription creates raced on two gateways sharing one store (etcd, or one SQLite file): what
tests/cluster/test_conflict_index_etcd.py and tests/gateway/store/test_sqlite_create_guard.py both prove."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gateway.config.service import InvalidConfig
from gateway.store.base import Kind

#: A sync subscription of event type ``e`` to function ``f`` (its ``path`` set by each test).
SYNC = {"type": "sync", "eventType": "e", "functionId": "f", "method": "POST"}


async def space_with_event_type_and_function(client: httpx.AsyncClient, *others: Any) -> None:
    """The event type and function the subscriptions use, created through ``client`` and applied by the views
    of the ``others`` gateways too (so that their checks start from the same state)."""
    assert (await client.post("/eventtypes", json={"name": "e"})).status_code == 201
    assert (await client.post("/functions", json={"functionId": "f", "type": "http",
                                                  "provider": {"url": "http://127.0.0.1:9/"}})).status_code == 201
    for running in others:
        assert await running.gateway.view.wait_until(
            lambda running=running: running.gateway.view.function("default", "f") is not None)


async def assert_conflicting_creates_race(a: Any, b: Any, rounds: int) -> None:
    """Gateways ``a`` and ``b`` (running, one store) each check a conflicting create against their own views at
    the same instant, ``rounds`` times: the second transaction fails, its create is checked again and refused
    with the single-gateway answer, every time; then two creates that do not conflict are both stored."""
    async with httpx.AsyncClient(base_url=a.config_url + "/v1/spaces/default", timeout=10) as on_a:
        await space_with_event_type_and_function(on_a, b)
    for round_ in range(rounds):
        results = await asyncio.gather(
            a.gateway.config.create_subscription("default", {**SYNC, "path": f"/r{round_}/:id"}),
            b.gateway.config.create_subscription("default", {**SYNC, "path": f"/r{round_}/:name"}),
            return_exceptions=True)
        assert sorted(type(result).__name__ for result in results) == ["InvalidConfig", "Subscription"], results
        refusal = next(result for result in results if isinstance(result, InvalidConfig))
        assert str(refusal).startswith("Subscription path conflict: ") and "already defined" in str(refusal)
    assert len(await a.gateway.store.list(Kind.SUBSCRIPTIONS, "default")) == rounds
    # Every round, the guard decided: one transaction failed and its create was checked again.
    assert a.gateway.config.create_checks["retried"] + b.gateway.config.create_checks["retried"] == rounds
    both = await asyncio.gather(a.gateway.config.create_subscription("default", {**SYNC, "path": "/both/a"}),
                                b.gateway.config.create_subscription("default", {**SYNC, "path": "/both/b"}))
    assert sorted(s.path for s in both) == ["/both/a", "/both/b"]
    assert a.gateway.config.create_checks["retried"] + b.gateway.config.create_checks["retried"] == rounds + 1
    assert len(await b.gateway.store.list(Kind.SUBSCRIPTIONS, "default")) == rounds + 2
