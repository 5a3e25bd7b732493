"""The memory and SQLite stores against the Store contract, plus what only SQLite promises:
persistence across reopen and several processes (here: several store instances) on one file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store import open_store
from gateway.store.base import AlreadyExists, Change, CreateGuard, Kind, NotFound, RevisionConflict, Store, WatchReset
from gateway.store.memory import MemoryStore
from gateway.store.sqlite import SQLiteStore


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "config.db")
    await backend.open()
    yield backend
    await backend.close()


async def next_changes(watch: AsyncIterator[Change], count: int, timeout: float = 2.0) -> list[Change]:
    return [await asyncio.wait_for(anext(watch), timeout) for _ in range(count)]


async def test_create_get_list_update_delete(store: Store) -> None:
    first = await store.create(Kind.FUNCTIONS, "default", "b", {"functionId": "b"})
    second = await store.create(Kind.FUNCTIONS, "default", "a", {"functionId": "a"})
    await store.create(Kind.FUNCTIONS, "other", "a", {"functionId": "a", "space": "other"})
    assert second.revision > first.revision

    got = await store.get(Kind.FUNCTIONS, "default", "a")
    assert got is not None and got.value == {"functionId": "a"} and got.revision == second.revision
    assert await store.get(Kind.EVENT_TYPES, "default", "a") is None  # kinds do not mix
    assert [e.id for e in await store.list(Kind.FUNCTIONS, "default")] == ["a", "b"]
    assert [(e.space, e.id) for e in await store.list(Kind.FUNCTIONS)] == [("default", "a"), ("default", "b"),
                                                                            ("other", "a")]

    updated = await store.update(Kind.FUNCTIONS, "default", "a", {"functionId": "a", "v": 2},
                                 expected_revision=second.revision)
    assert updated.revision > second.revision
    with pytest.raises(RevisionConflict):
        await store.update(Kind.FUNCTIONS, "default", "a", {"v": 3}, expected_revision=second.revision)
    with pytest.raises(AlreadyExists):
        await store.create(Kind.FUNCTIONS, "default", "a", {})
    with pytest.raises(NotFound):
        await store.update(Kind.FUNCTIONS, "default", "missing", {})

    await store.delete(Kind.FUNCTIONS, "default", "a")
    assert await store.get(Kind.FUNCTIONS, "default", "a") is None
    with pytest.raises(NotFound):
        await store.delete(Kind.FUNCTIONS, "default", "a")


async def test_returned_values_are_copies(store: Store) -> None:
    entry = await store.create(Kind.EVENT_TYPES, "default", "t", {"name": "t", "metadata": {"k": "v"}})
    entry.value["metadata"]["k"] = "changed"
    fetched = await store.get(Kind.EVENT_TYPES, "default", "t")
    assert fetched is not None and fetched.value["metadata"] == {"k": "v"}


async def test_snapshot_then_watch_sees_every_later_change_in_order(store: Store) -> None:
    await store.create(Kind.EVENT_TYPES, "default", "before", {"name": "before"})
    snapshot = await store.snapshot()
    assert [e.id for e in snapshot.entries] == ["before"]
    watch = aiter(store.watch(snapshot.revision))
    created = await store.create(Kind.EVENT_TYPES, "default", "after", {"name": "after"})
    await store.delete(Kind.EVENT_TYPES, "default", "before")
    changes = await next_changes(watch, 2)
    assert [(c.id, c.value) for c in changes] == [("after", {"name": "after"}), ("before", None)]
    assert changes[0].revision == created.revision < changes[1].revision
    await watch.aclose()


async def test_watch_resumes_from_an_old_revision(store: Store) -> None:
    first = await store.create(Kind.CORS, "default", "x", {"n": 1})
    await store.update(Kind.CORS, "default", "x", {"n": 2})
    await store.update(Kind.CORS, "default", "x", {"n": 3})
    watch = aiter(store.watch(first.revision))
    assert [c.value for c in await next_changes(watch, 2)] == [{"n": 2}, {"n": 3}]
    await watch.aclose()


async def test_sqlite_keeps_everything_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "config.db"
    store = SQLiteStore(path)
    await store.open()
    await store.create(Kind.FUNCTIONS, "default", "f", {"functionId": "f"})
    last = await store.create(Kind.SUBSCRIPTIONS, "space1", "s", {"subscriptionId": "s"})
    await store.close()

    reopened = SQLiteStore(path)
    await reopened.open()
    snapshot = await reopened.snapshot()
    assert sorted((e.kind, e.space, e.id) for e in snapshot.entries) == [
        (Kind.FUNCTIONS, "default", "f"), (Kind.SUBSCRIPTIONS, "space1", "s")]
    assert snapshot.revision == last.revision
    # Revisions keep growing after a restart: a watcher never sees a revision twice.
    assert (await reopened.create(Kind.CORS, "default", "c", {})).revision > last.revision
    await reopened.close()


async def test_two_sqlite_stores_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    # What --processes N relies on: each process opens its own store on the same file.
    a, b = SQLiteStore(tmp_path / "shared.db"), SQLiteStore(tmp_path / "shared.db")
    await a.open()
    await b.open()
    watch_b = aiter(b.watch((await b.snapshot()).revision))
    written = await a.create(Kind.EVENT_TYPES, "default", "from-a", {"name": "from-a"})
    (seen,) = await next_changes(watch_b, 1, timeout=1.0)
    assert (seen.id, seen.revision) == ("from-a", written.revision)
    with pytest.raises(AlreadyExists):  # the existence check and the write are one transaction
        await b.create(Kind.EVENT_TYPES, "default", "from-a", {})
    await watch_b.aclose()
    await a.close()
    await b.close()


async def test_sqlite_watch_behind_the_pruned_history_raises_watch_reset(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "config.db", history=2)
    await store.open()
    for n in range(5):
        await store.create(Kind.EVENT_TYPES, "default", f"t{n}", {"name": f"t{n}"})
    with pytest.raises(WatchReset, match="pruned"):
        await anext(aiter(store.watch(0)))
    await store.close()


def test_open_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store("memory"), MemoryStore)
    sqlite = open_store(f"sqlite:{tmp_path}/x.db")
    assert isinstance(sqlite, SQLiteStore) and sqlite.path == tmp_path / "x.db"
    with pytest.raises(ValueError, match="unknown store"):
        open_store("redis://localhost")
    with pytest.raises(ValueError, match="no file"):
        open_store("sqlite:")


async def test_memory_does_not_guard_creates() -> None:
    """etcd and SQLite verify a CreateGuard in their writes (tests/cluster, test_sqlite_create_guard.py); memory
    has one process and one writer, so the Config service checks with the store's state instead, and a caller
    asking it for a guarded create gets a clear refusal, not an unguarded write."""
    store = MemoryStore()
    await store.open()
    await store.create(Kind.FUNCTIONS, "default", "f", {"functionId": "f"})
    assert store.guards_creates is False
    assert await store.current_revision() is None and not await store.unchanged_since(10**9)
    with pytest.raises(NotImplementedError, match="MemoryStore does not guard creates"):
        await store.create_guarded(Kind.SUBSCRIPTIONS, "default", "s", {}, CreateGuard(10**9))
    assert await store.get(Kind.SUBSCRIPTIONS, "default", "s") is None
