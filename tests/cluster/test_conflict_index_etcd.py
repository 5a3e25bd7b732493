"""The incremental path-conflict check on etcd (issue 16): the store's fingerprint, and gateways sharing one
etcd seeing each other's subscriptions in their checks at once."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.store.base import Kind

SYNC = {"type": "sync", "eventType": "e", "functionId": "f", "method": "POST"}


def _sub(path: str) -> dict[str, Any]:
    from gateway.config.models import Subscription
    return Subscription.model_validate({"space": "default", **SYNC, "path": path}).to_json()


async def test_fingerprint_counts_and_tracks_the_highest_revision(shared_etcd, store_factory, unique_prefix):
    store = await store_factory(shared_etcd.endpoint, unique_prefix)
    other = await store_factory(shared_etcd.endpoint, unique_prefix + "elsewhere/")
    assert await store.fingerprint(Kind.SUBSCRIPTIONS, "default") == (0, 0)
    first = await store.create(Kind.SUBSCRIPTIONS, "default", "a", _sub("/a"))
    second = await store.create(Kind.SUBSCRIPTIONS, "default", "b", _sub("/b"))
    await store.create(Kind.SUBSCRIPTIONS, "defaults", "c", _sub("/c"))  # another space, a longer name
    await store.create(Kind.FUNCTIONS, "default", "f", {"x": 1})
    await other.create(Kind.SUBSCRIPTIONS, "default", "z", _sub("/z"))  # another prefix
    assert await store.fingerprint(Kind.SUBSCRIPTIONS, "default") == (2, second.revision)
    await store.delete(Kind.SUBSCRIPTIONS, "default", "b")
    assert await store.fingerprint(Kind.SUBSCRIPTIONS, "default") == (1, first.revision)
    updated = await store.update(Kind.SUBSCRIPTIONS, "default", "a", _sub("/a"))
    assert await store.fingerprint(Kind.SUBSCRIPTIONS, "default") == (1, updated.revision)


async def test_two_gateways_check_against_each_others_writes(shared_etcd, gateway_server, unique_prefix):
    db = f"etcd://{shared_etcd.endpoint}{unique_prefix}"
    a = await gateway_server(db=db)
    b = await gateway_server(db=db)
    noise = await gateway_server(db=f"etcd://{shared_etcd.endpoint}{unique_prefix}noise/")
    async with (httpx.AsyncClient(base_url=a.config_url + "/v1/spaces/default", timeout=10) as on_a,
                httpx.AsyncClient(base_url=b.config_url + "/v1/spaces/default", timeout=10) as on_b,
                httpx.AsyncClient(base_url=noise.config_url + "/v1/spaces/default", timeout=10) as on_noise):
        assert (await on_a.post("/eventtypes", json={"name": "e"})).status_code == 201
        assert (await on_a.post("/functions", json={"functionId": "f", "type": "http",
                                                    "provider": {"url": "http://127.0.0.1:9/"}})).status_code == 201
        assert (await on_noise.post("/eventtypes", json={"name": "e"})).status_code == 201
        for round_ in range(5):
            created = await on_a.post("/subscriptions", json={**SYNC, "path": f"/r{round_}/:id"})
            assert created.status_code == 201, created.text
            # Writes under another prefix move etcd's revision without reaching these gateways' views.
            await on_noise.post("/eventtypes", json={"name": f"n{round_}"})
            refused = await on_b.post("/subscriptions", json={**SYNC, "path": f"/r{round_}/:name"})
            assert refused.status_code == 400 and "already defined" in refused.text, refused.text
            assert (await on_a.delete(f"/subscriptions/{created.json()['subscriptionId']}")).status_code == 204
            taken = await on_b.post("/subscriptions", json={**SYNC, "path": f"/r{round_}/:name"})
            assert taken.status_code == 201, taken.text
        # Nothing here needed the slow path: each gateway's view kept up through the watch.
        assert a.gateway.config.incremental_conflicts and b.gateway.config.incremental_conflicts
