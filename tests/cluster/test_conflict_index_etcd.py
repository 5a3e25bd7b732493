"""The incremental path-conflict check on etcd (issue 16): the store's fingerprint, guarded creates, and
gateways sharing one etcd seeing each other's subscriptions in their checks at once, never both passing two
conflicting creates."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import httpx
import pytest

from gateway.store.base import AlreadyExists, CreateGuard, Entry, GuardFailed, Kind
from tests.gateway.config.racing_creates import SYNC, assert_conflicting_creates_race, space_with_event_type_and_function



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
    noise = await gateway_server(db=f"etcd://{shared_etcd.endpoint}/noise{unique_prefix}")
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


async def test_unchanged_since_is_the_store_revision_under_any_prefix(shared_etcd, store_factory, unique_prefix):
    store = await store_factory(shared_etcd.endpoint, unique_prefix)
    other = await store_factory(shared_etcd.endpoint, unique_prefix + "elsewhere/")
    first = await store.create(Kind.SUBSCRIPTIONS, "default", "a", _sub("/a"))
    assert not await store.unchanged_since(first.revision - 1)
    # Another test may write to the shared etcd at any moment: then the answer is False, never wrongly True.
    later = await other.create(Kind.EVENT_TYPES, "default", "e", {"name": "e"})  # another prefix moves it too
    assert not await store.unchanged_since(first.revision)
    assert not await store.unchanged_since(later.revision - 1)
    assert not await store.unchanged_since(0)


async def test_unchanged_since_on_a_quiet_store(etcd_factory, store_factory, unique_prefix):
    server = etcd_factory()
    store = await store_factory(server.endpoint, unique_prefix)
    entry = await store.create(Kind.SUBSCRIPTIONS, "default", "a", _sub("/a"))
    assert await store.unchanged_since(entry.revision)
    assert await store.unchanged_since(entry.revision + 5)
    await store.delete(Kind.SUBSCRIPTIONS, "default", "a")  # a delete moves the revision as well
    assert not await store.unchanged_since(entry.revision)


class _FingerprintReads:
    """Counts the fingerprints a real store is asked for (the slow way of the check on etcd)."""

    def __init__(self, store: Any) -> None:
        self.count = 0
        real = store.fingerprint

        async def counted(*args: Any) -> tuple[int, int]:
            self.count += 1
            return await real(*args)

        store.fingerprint = counted


async def test_creates_need_no_fingerprint_while_the_view_keeps_up(etcd_factory, gateway_server, unique_prefix):
    """On an etcd nobody else writes to, the check sees at once (one point read) that the view is current,
    also right after another gateway's write once this gateway's view has it; a write the view has not
    applied yet is waited for, never missed."""
    server = etcd_factory()
    db = f"etcd://{server.endpoint}{unique_prefix}"
    a = await gateway_server(db=db)
    b = await gateway_server(db=db)
    reads = _FingerprintReads(a.gateway.store)
    async with (httpx.AsyncClient(base_url=a.config_url + "/v1/spaces/default", timeout=10) as on_a,
                httpx.AsyncClient(base_url=b.config_url + "/v1/spaces/default", timeout=10) as on_b):
        assert (await on_a.post("/eventtypes", json={"name": "e"})).status_code == 201
        assert (await on_a.post("/functions", json={"functionId": "f", "type": "http",
                                                    "provider": {"url": "http://127.0.0.1:9/"}})).status_code == 201
        for i in range(5):
            assert (await on_a.post("/subscriptions", json={**SYNC, "path": f"/a{i}"})).status_code == 201
        # The existence checks are answered by the view then, in upstream's order, as the store would.
        duplicate = await on_a.post("/subscriptions", json={**SYNC, "path": "/a0"})
        assert duplicate.status_code == 409 and "already exists" in duplicate.text, duplicate.text
        no_type = await on_a.post("/subscriptions", json={**SYNC, "eventType": "nope", "path": "/t"})
        assert no_type.status_code == 400 and no_type.json()["errors"][0]["message"] == 'Event Type "nope" not found.'
        no_function = await on_a.post("/subscriptions", json={**SYNC, "functionId": "nope", "path": "/t"})
        assert no_function.status_code == 400 and no_function.json()["errors"][0]["message"] == 'Function "nope" not found.'
        # A stored function the view refuses as invalid (written by an older version) still exists.
        old = await a.gateway.store.create(Kind.FUNCTIONS, "default", "old", {"functionId": "old", "type": "nope"})
        assert await a.gateway.view.wait_for_revision(old.revision)
        assert a.gateway.view.function("default", "old") is None
        on_old = await on_a.post("/subscriptions", json={**SYNC, "functionId": "old", "path": "/old"})
        assert on_old.status_code == 201, on_old.text
        assert reads.count == 0
        for i in range(5):
            # B's write, then at once A's conflicting create: A's view may not have B's write yet.
            assert (await on_b.post("/subscriptions", json={**SYNC, "path": f"/b{i}/:id"})).status_code == 201
            refused = await on_a.post("/subscriptions", json={**SYNC, "path": f"/b{i}/:name"})
            assert refused.status_code == 400 and "already defined" in refused.text, refused.text


REQUIRES = ((Kind.EVENT_TYPES, "e"), (Kind.FUNCTIONS, "f"))


async def test_guarded_create_on_etcd(shared_etcd, store_factory, unique_prefix, caplog):
    """What a guarded create compares, and why it says it failed; its guard keys are no documents."""
    caplog.set_level(logging.WARNING, logger="gateway.store.etcd")
    store = await store_factory(shared_etcd.endpoint, unique_prefix)
    other = await store_factory(shared_etcd.endpoint, unique_prefix)  # another gateway on the same prefix
    start = await store.current_revision()
    with pytest.raises(GuardFailed) as missing:
        await store.create_guarded(Kind.SUBSCRIPTIONS, "default", "a", _sub("/a"), CreateGuard(start, REQUIRES))
    assert missing.value.created_after is None
    assert str(missing.value) == "subscriptions 'a' requires eventtypes 'e', functions 'f' in space 'default', not found"
    await store.create(Kind.EVENT_TYPES, "default", "e", {"name": "e"})
    with pytest.raises(GuardFailed, match="requires functions 'f' in space"):
        await store.create_guarded(Kind.SUBSCRIPTIONS, "default", "a", _sub("/a"), CreateGuard(start, REQUIRES))
    await store.create(Kind.FUNCTIONS, "default", "f", {"functionId": "f"})
    first = await store.create_guarded(Kind.SUBSCRIPTIONS, "default", "a", _sub("/a"), CreateGuard(start, REQUIRES))
    # A create checked before that one, through any store on the prefix, loses and says which create beat it.
    with pytest.raises(GuardFailed) as beaten:
        await other.create_guarded(Kind.SUBSCRIPTIONS, "default", "b", _sub("/b"),
                                   CreateGuard(first.revision - 1, REQUIRES))
    assert beaten.value.created_after == first.revision
    assert f"'a' was created in space 'default' at revision {first.revision}" in str(beaten.value)
    with pytest.raises(AlreadyExists):  # the key taken is said first
        await other.create_guarded(Kind.SUBSCRIPTIONS, "default", "a", _sub("/a"), CreateGuard(start, REQUIRES))
    second = await other.create_guarded(Kind.SUBSCRIPTIONS, "default", "b", _sub("/b"),
                                        CreateGuard(first.revision, REQUIRES))
    # Another space (a longer name sharing the first one's characters) has its own guard.
    third = await other.create_guarded(Kind.SUBSCRIPTIONS, "defaults", "c", _sub("/c"), CreateGuard(start))
    # The guard keys hold no document: reads, the fingerprint and the watch skip them, without a warning.
    snapshot = await store.snapshot()
    assert sorted((e.kind.value, e.space, e.id) for e in snapshot.entries) == [
        ("eventtypes", "default", "e"), ("functions", "default", "f"),
        ("subscriptions", "default", "a"), ("subscriptions", "default", "b"), ("subscriptions", "defaults", "c")]
    assert await store.fingerprint(Kind.SUBSCRIPTIONS, "default") == (2, second.revision)
    seen = []
    async for change in store.watch(start):
        seen.append((change.kind.value, change.space, change.id, change.revision))
        if change.revision == third.revision:
            break
    assert [id for _, _, id, _ in seen] == ["e", "f", "a", "b", "c"]
    assert not [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]


async def test_guarded_creates_racing_on_two_stores(shared_etcd, store_factory, unique_prefix):
    """Two stores (two gateways' connections) sending guarded creates checked at the same revision at the same
    moment: exactly one applies, every time."""
    a = await store_factory(shared_etcd.endpoint, unique_prefix)
    b = await store_factory(shared_etcd.endpoint, unique_prefix)
    await a.create(Kind.EVENT_TYPES, "default", "e", {"name": "e"})
    await a.create(Kind.FUNCTIONS, "default", "f", {"functionId": "f"})
    for round_ in range(40):
        checked_at = await a.current_revision()
        results = await asyncio.gather(
            a.create_guarded(Kind.SUBSCRIPTIONS, "default", f"a{round_}", _sub(f"/a{round_}"),
                             CreateGuard(checked_at, REQUIRES)),
            b.create_guarded(Kind.SUBSCRIPTIONS, "default", f"b{round_}", _sub(f"/b{round_}"),
                             CreateGuard(checked_at, REQUIRES)),
            return_exceptions=True)
        assert sorted(type(result).__name__ for result in results) == ["Entry", "GuardFailed"], results
        winner = next(result for result in results if isinstance(result, Entry))
        loser = next(result for result in results if isinstance(result, GuardFailed))
        assert loser.created_after == winner.revision
    assert len(await a.list(Kind.SUBSCRIPTIONS, "default")) == 40


async def test_creates_are_checked_against_the_view_while_another_prefix_is_written(
        shared_etcd, gateway_server, store_factory, unique_prefix):
    """On an etcd that another application (here: another prefix) writes to between the creates, the store's
    revision is always past the view's, yet every create that passes is checked against the view alone (no
    fingerprint, no existence reads: its transaction verifies the rest), and conflicts written through another
    gateway an instant before are still refused."""
    db = f"etcd://{shared_etcd.endpoint}{unique_prefix}"
    a = await gateway_server(db=db)
    b = await gateway_server(db=db)
    another_app = await store_factory(shared_etcd.endpoint, f"/another-app{unique_prefix}")
    reads = _FingerprintReads(a.gateway.store)
    async with (httpx.AsyncClient(base_url=a.config_url + "/v1/spaces/default", timeout=10) as on_a,
                httpx.AsyncClient(base_url=b.config_url + "/v1/spaces/default", timeout=10) as on_b):
        await space_with_event_type_and_function(on_a)
        for i in range(10):
            await another_app.create(Kind.EVENT_TYPES, "default", f"n{i}", {"name": f"n{i}"})
            assert await a.gateway.store.current_revision() > a.gateway.view.revision  # unchanged_since: False
            created = await on_a.post("/subscriptions", json={**SYNC, "path": f"/v{i}/:id"})
            assert created.status_code == 201, created.text
        assert a.gateway.config.create_checks == Counter(view=10)
        assert reads.count == 0
        for i in range(5):
            # B's write, another application's, then at once A's conflicting create.
            assert (await on_b.post("/subscriptions", json={**SYNC, "path": f"/w{i}/:id"})).status_code == 201
            await another_app.create(Kind.EVENT_TYPES, "default", f"w{i}", {"name": f"w{i}"})
            refused = await on_a.post("/subscriptions", json={**SYNC, "path": f"/w{i}/:name"})
            assert refused.status_code == 400 and "already defined" in refused.text, refused.text
            duplicate = await on_a.post("/subscriptions", json={**SYNC, "path": f"/w{i}/:id"})
            assert duplicate.status_code == 409 and "already exists" in duplicate.text, duplicate.text
        assert a.gateway.config.create_checks["view"] == 10 and a.gateway.config.create_checks["store"] == 0
        entries = await a.gateway.store.list(Kind.SUBSCRIPTIONS, "default")
        assert sorted(e.value["path"] for e in entries) == sorted([f"/v{i}/:id" for i in range(10)]
                                                                  + [f"/w{i}/:id" for i in range(5)])


async def test_conflicting_creates_at_the_same_instant_on_two_gateways(shared_etcd, gateway_server, unique_prefix):
    """Two gateways' Config services each checking a conflicting create against their views at the same instant
    (both checks made before either transaction is sent): the second transaction fails, its create is checked
    again and refused with the same answer as on one gateway, every time."""
    db = f"etcd://{shared_etcd.endpoint}{unique_prefix}"
    a = await gateway_server(db=db)
    b = await gateway_server(db=db)
    await assert_conflicting_creates_race(a, b, rounds=25)


async def test_a_create_that_keeps_losing_gives_up_with_409(shared_etcd, gateway_server, unique_prefix, monkeypatch):
    """Each lost transaction means another create in the space was written; after CREATE_ATTEMPTS of them the
    create answers 409 (here the bound is 1, reached by one exact race)."""
    from gateway.config import service

    monkeypatch.setattr(service, "CREATE_ATTEMPTS", 1)
    db = f"etcd://{shared_etcd.endpoint}{unique_prefix}"
    a = await gateway_server(db=db)
    b = await gateway_server(db=db)
    async with httpx.AsyncClient(base_url=a.config_url + "/v1/spaces/default", timeout=10) as on_a:
        await space_with_event_type_and_function(on_a, b)
    results = await asyncio.gather(a.gateway.config.create_subscription("default", {**SYNC, "path": "/a"}),
                                   b.gateway.config.create_subscription("default", {**SYNC, "path": "/b"}),
                                   return_exceptions=True)
    assert sorted(type(result).__name__ for result in results) == ["ConfigConflict", "Subscription"], results
    gave_up = next(result for result in results if isinstance(result, service.ConfigConflict))
    assert str(gave_up).endswith("was not created: checked 1 times, other subscriptions were created in the space "
                                 "each time before it could be written; retry.")
    assert len(await a.gateway.store.list(Kind.SUBSCRIPTIONS, "default")) == 1


async def test_racing_conflicting_creates_on_two_gateways(shared_etcd, gateway_server, unique_prefix):
    """Two gateways creating conflicting sync paths at the same moment through HTTP: exactly one is stored,
    the other refused as on one gateway; a third create after both is checked against the one stored; and
    both gateways route that subscription."""
    db = f"etcd://{shared_etcd.endpoint}{unique_prefix}"
    a = await gateway_server(db=db)
    b = await gateway_server(db=db)
    async with (httpx.AsyncClient(base_url=a.config_url + "/v1/spaces/default", timeout=10) as on_a,
                httpx.AsyncClient(base_url=b.config_url + "/v1/spaces/default", timeout=10) as on_b):
        await space_with_event_type_and_function(on_a)
        for round_ in range(20):
            answers = await asyncio.gather(on_a.post("/subscriptions", json={**SYNC, "path": f"/r{round_}/:id"}),
                                           on_b.post("/subscriptions", json={**SYNC, "path": f"/r{round_}/:name"}))
            statuses = sorted(answer.status_code for answer in answers)
            assert statuses == [201, 400], [answer.text for answer in answers]
            refused = next(answer for answer in answers if answer.status_code == 400)
            assert "already defined" in refused.text, refused.text
            # A third create, after both answered, is checked against the stored one on either gateway.
            late = await (on_a if round_ % 2 else on_b).post("/subscriptions", json={**SYNC, "path": f"/r{round_}/x"})
            assert late.status_code == 400 and "already defined" in late.text, late.text
        entries = await a.gateway.store.list(Kind.SUBSCRIPTIONS, "default")
        assert len(entries) == 20
        for running in (a, b):
            assert await running.gateway.view.wait_until(
                lambda running=running: len(running.gateway.view.subscriptions("default")) == len(entries))
        for round_ in range(20):
            ids = [e.id for e in entries if e.value["path"].startswith(f"/r{round_}/")]
            routed = [running.gateway.events.routes.space("default").sync_subscription("POST", f"/r{round_}/v", "e")
                      for running in (a, b)]
            assert [m.subscriptions[0].subscription_id if m else None for m in routed] == [ids[0], ids[0]]
