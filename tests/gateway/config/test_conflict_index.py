"""The incremental subscription path-conflict check (issue 16): the same answers as the full re-check, kept
right across deletes, updates, writes by another gateway, invalid stored documents and restarts."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import httpx

from gateway.config.models import Subscription
from gateway.config.upstream_paths import upstream_path_conflict
from gateway.config.view import ConfigView
from gateway.routing.conflicts import SpaceConflicts
from gateway.routing.path_tree import PathTree, find_conflict
from gateway.routing.table import RouteTable, _build
from gateway.store.base import Kind
from gateway.store.memory import MemoryStore
from gateway.store.sqlite import SQLiteStore

PATHS = ["/", "/a", "/a/", "/a/b", "/a/:id", "/a/:name", "/a/:id/x", "/a/*rest", "/a/b/*rest", "/b/:id",
         "/b/me", "/b/*all", "/c/%41", "/c/A", "/:x", "/x/", "/x/:y/z", "/x/:q/z", "/a/*"]


def sub(path: str, function: str = "f", type: str = "sync", method: str = "POST", space: str = "default",
        event_type: str = "e") -> Subscription:
    return Subscription.model_validate({"space": space, "type": type, "eventType": event_type,
                                        "functionId": function, "path": path, "method": method})


def expected(subs: dict[str, Subscription], new: Subscription) -> tuple[str, str | None] | None:
    """What the check before issue 16 answered: every subscription of the group, in id order."""
    paths = [s.path for _, s in sorted(subs.items())
             if (s.type, s.method, s.event_type) == (new.type, new.method, new.event_type)]
    problem = find_conflict(paths, new.path, unique=new.type == "sync")
    if problem is None:
        return None
    return problem, upstream_path_conflict(paths, new.path) if new.type == "sync" else None


def test_path_tree_remove_frees_parameter_names_and_keeps_the_rest() -> None:
    tree: PathTree[str] = PathTree()
    tree.add("/users/:id", "a")
    tree.add("/users/:id/posts", "b")
    assert tree.conflict("/users/:name") is not None
    assert tree.remove("/users/:id", "a")
    assert tree.conflict("/users/:name") is not None  # /users/:id/posts still holds :id
    assert tree.match("/users/1/posts") == (["b"], {"id": "1"})
    assert tree.remove("/users/:id/posts", "b")
    assert not tree
    assert tree.conflict("/users/:name") is None and tree.conflict("/users/me") is None
    assert not tree.remove("/users/:id", "a")
    tree.add("/f/*rest", "w")
    assert not tree.remove("/f/*other", "w")  # another wildcard name is another path
    assert tree.remove("/f/*rest", "w") and not tree


def test_ordered_values_whatever_the_insertion_order() -> None:
    tree: PathTree[str] = PathTree(unique=False, order=str)
    for value in ("c", "a", "b"):
        tree.add("/p", value)
    assert tree.match("/p") == (["a", "b", "c"], {})


def test_random_creates_and_deletes_answer_as_the_full_check() -> None:
    """Includes groups whose paths conflict (written by racing gateways): the id order then decides."""
    rng = random.Random(16)
    for _ in range(60):
        index = SpaceConflicts()
        subs: dict[str, Subscription] = {}
        for _ in range(80):
            candidate = sub(rng.choice(PATHS), function=rng.choice("fgh"), type=rng.choice(["sync", "async"]),
                            method=rng.choice(["POST", "GET"]))
            if subs and rng.random() < 0.35:
                victim = rng.choice(sorted(subs))
                del subs[victim]
                index.remove(victim)
            elif rng.random() < 0.2 or expected(subs, candidate) is None:
                subs[candidate.subscription_id] = candidate  # a racing write may add a conflicting one
                index.put(candidate)
                index.put(candidate)  # idempotent
            assert len(index) == len(subs)
            probe = sub(rng.choice(PATHS), type=candidate.type, method=candidate.method)
            assert index.conflict(probe.type, probe.method, probe.event_type, probe.path) == expected(subs, probe)


def test_route_table_updated_in_place_routes_as_a_rebuild() -> None:
    """The routing table applies each change in place; it must route exactly as a fresh build."""

    class View:
        def __init__(self) -> None:
            self.subs: dict[str, Subscription] = {}
            self.gen = 1
            self.listeners: list[Any] = []

        def subscriptions(self, space: str) -> list[Subscription]:
            return list(self.subs.values())

        def subscription(self, space: str, id: str) -> Subscription | None:
            return self.subs.get(id)

        def cors(self, space: str) -> list[Any]:
            return []

        def generation(self, space: str) -> int:
            return self.gen

        def add_listener(self, listener: Any) -> None:
            self.listeners.append(listener)

        def change(self, id: str, new: Subscription | None) -> None:
            from gateway.store.base import Change
            if new is None:
                self.subs.pop(id, None)
            else:
                self.subs[id] = new
            self.gen += 1
            for listener in self.listeners:
                listener(Change(Kind.SUBSCRIPTIONS, "default", id, None if new is None else {}, self.gen))

    rng = random.Random(7)
    probes = ["/", "/a", "/a/", "/a/b", "/a/1", "/a/1/x", "/a/b/c/d", "/b/me", "/b/2", "/c/A", "/x/", "/x/1/z"]
    for _ in range(30):
        view = View()
        table = RouteTable(view)
        for _ in range(60):
            if view.subs and rng.random() < 0.35:
                view.change(rng.choice(sorted(view.subs)), None)
            else:
                new = sub(rng.choice(PATHS), function=rng.choice("fgh"), type=rng.choice(["sync", "async"]))
                if rng.random() < 0.2 and new.subscription_id in view.subs:  # a metadata update
                    new = new.model_copy(update={"metadata": {"n": str(rng.random())}})
                view.change(new.subscription_id, new)
            if rng.random() < 0.5:
                continue  # let changes pile up before the next event
            routes, fresh = table.space("default"), _build(view, "default", view.gen)
            for path in probes:
                for event_type in ("e",):
                    a = routes.sync_subscription("POST", path, event_type)
                    b = fresh.sync_subscription("POST", path, event_type)
                    assert (a and (a.subscriptions, a.params)) == (b and (b.subscriptions, b.params)), path
                    a = routes.async_subscriptions("POST", path, event_type)
                    b = fresh.async_subscriptions("POST", path, event_type)
                    assert (a and (a.subscriptions, a.params)) == (b and (b.subscriptions, b.params)), path


# -- through the Config API ------------------------------------------------------------------------------

SYNC = {"type": "sync", "eventType": "e", "functionId": "f", "method": "POST"}


async def configure(client: httpx.AsyncClient) -> None:
    assert (await client.post("/eventtypes", json={"name": "e"})).status_code in (201, 409)
    answer = await client.post("/functions", json={"functionId": "f", "type": "http",
                                                   "provider": {"url": "http://127.0.0.1:9/"}})
    assert answer.status_code in (201, 409)


def refusal(answer: httpx.Response) -> str:
    assert answer.status_code == 400, answer.text
    return str(answer.json()["errors"][0]["message"])


async def test_deletes_and_updates_keep_the_index_right(gateway_server: Any) -> None:
    gw = await gateway_server()
    async with httpx.AsyncClient(base_url=gw.config_url + "/v1/spaces/default", timeout=10) as client:
        await configure(client)
        created = await client.post("/subscriptions", json={**SYNC, "path": "/users/:id"})
        assert created.status_code == 201
        sid = created.json()["subscriptionId"]
        assert refusal(await client.post("/subscriptions", json={**SYNC, "path": "/users/:name"})) == (
            'Subscription path conflict: parameter with different name ("id") already defined: '
            'for route: /users/:name')
        updated = await client.put(f"/subscriptions/{sid}", json={**SYNC, "path": "/users/:id", "metadata": {"a": "b"}})
        assert updated.status_code == 200
        assert "already defined" in refusal(await client.post("/subscriptions", json={**SYNC, "path": "/users/me"}))
        assert (await client.delete(f"/subscriptions/{sid}")).status_code == 204
        assert (await client.post("/subscriptions", json={**SYNC, "path": "/users/:name"})).status_code == 201
        assert (await client.post("/subscriptions", json={**SYNC, "path": "/users/:name/x"})).status_code == 201


async def test_another_gateway_on_the_same_store(gateway_server: Any, tmp_path: Path) -> None:
    """Gateway B's view learns of A's writes by polling (100 ms): B's check must still see them at once."""
    db = f"sqlite:{tmp_path / 'config.db'}"
    a = await gateway_server(db=db)
    b = await gateway_server(db=db)
    async with (httpx.AsyncClient(base_url=a.config_url + "/v1/spaces/default", timeout=10) as on_a,
                httpx.AsyncClient(base_url=b.config_url + "/v1/spaces/default", timeout=10) as on_b):
        await configure(on_a)
        await on_b.post("/subscriptions", json={**SYNC, "path": "/warm"})  # B's index of the space exists
        for round_ in range(5):
            created = await on_a.post("/subscriptions", json={**SYNC, "path": f"/r{round_}/:id"})
            assert created.status_code == 201
            assert "already defined" in refusal(
                await on_b.post("/subscriptions", json={**SYNC, "path": f"/r{round_}/:name"}))
            assert (await on_a.delete(f"/subscriptions/{created.json()['subscriptionId']}")).status_code == 204
            assert (await on_b.post("/subscriptions", json={**SYNC, "path": f"/r{round_}/:name"})).status_code == 201


async def test_a_restart_rebuilds_the_index_from_the_store(gateway_server: Any, tmp_path: Path) -> None:
    db = f"sqlite:{tmp_path / 'config.db'}"
    first = await gateway_server(db=db)
    async with httpx.AsyncClient(base_url=first.config_url + "/v1/spaces/default", timeout=10) as client:
        await configure(client)
        kept = await client.post("/subscriptions", json={**SYNC, "path": "/files/*rest"})
        assert kept.status_code == 201
        gone = await client.post("/subscriptions", json={**SYNC, "path": "/users/:id"})
        assert (await client.delete(f"/subscriptions/{gone.json()['subscriptionId']}")).status_code == 204
    await first.stop()
    again = await gateway_server(db=db)
    async with httpx.AsyncClient(base_url=again.config_url + "/v1/spaces/default", timeout=10) as client:
        assert refusal(await client.post("/subscriptions", json={**SYNC, "path": "/files/x"})) == (
            'Subscription path conflict: wildcard with different name ("rest") already defined: for route: /files/x')
        assert (await client.post("/subscriptions", json={**SYNC, "path": "/users/:name"})).status_code == 201


async def test_an_invalid_stored_subscription_keeps_the_fast_path(gateway_server: Any) -> None:
    """The view refuses it, the store counts it: the index counts it too, so creates do not wait for a
    view that will never match and fall back to reading every subscription."""
    store = MemoryStore()
    await store.open()
    gw = await gateway_server(store=store)
    async with httpx.AsyncClient(base_url=gw.config_url + "/v1/spaces/default", timeout=10) as client:
        await configure(client)
        await store.create(Kind.SUBSCRIPTIONS, "default", "legacy",
                           {"space": "default", "subscriptionId": "legacy", "type": "sync", "eventType": "e",
                            "functionId": "f", "path": "/x?y=1", "method": "POST", "metadata": {}})
        service = gw.gateway.config
        slow = 0
        original = service._check_path_conflict_full

        async def counted(new: Any) -> None:
            nonlocal slow
            slow += 1
            await original(new)

        service._check_path_conflict_full = counted
        for i in range(3):
            assert (await client.post("/subscriptions", json={**SYNC, "path": f"/p{i}"})).status_code == 201
        assert slow == 0  # the incremental check answered every create (its speed: bench/, not here)


async def test_a_view_that_cannot_catch_up_falls_back_to_the_store(tmp_path: Path) -> None:
    """A write the view has not applied (its watch stopped): the check reads the store, as before."""
    from gateway.config.service import ConfigService, InvalidConfig

    store = SQLiteStore(tmp_path / "c.db")
    await store.open()
    view = ConfigView(store)
    service = ConfigService(store, view)
    await view.start()
    try:
        for kind, id, value in ((Kind.EVENT_TYPES, "e", {"space": "default", "name": "e"}),
                                (Kind.FUNCTIONS, "f", {"space": "default", "functionId": "f", "type": "http",
                                                       "provider": {"url": "http://127.0.0.1:9/"}})):
            await store.create(kind, "default", id, value)
        await service.create_subscription("default", {**SYNC, "path": "/a/:id"})
        await view.close()  # the view stops following the store
        other = sub("/b/:id")
        await store.create(Kind.SUBSCRIPTIONS, "default", other.subscription_id, other.to_json())
        started = asyncio.get_running_loop().time()
        try:
            await service._check_path_conflict(sub("/b/:name"))
        except InvalidConfig as refused:
            assert "already defined" in str(refused)
        else:
            raise AssertionError("the conflict with a write the view never applied was missed")
        assert asyncio.get_running_loop().time() - started < 2
    finally:
        await view.close()
        await store.close()
