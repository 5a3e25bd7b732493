"""Guarded subscription creates on the SQLite store: the ``--processes N`` workers (here: several store
instances, gateways and gateway processes on one file, each with its own connection and view) never both
pass two conflicting creates made at the same instant."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config.models import Subscription
from gateway.store.base import AlreadyExists, CreateGuard, Entry, GuardFailed, Kind
from tests.gateway.config.racing_creates import SYNC, assert_conflicting_creates_race, space_with_event_type_and_function
from gateway.store.sqlite import SQLiteStore

REQUIRES = ((Kind.EVENT_TYPES, "e"), (Kind.FUNCTIONS, "f"))


def _sub(path: str) -> dict[str, Any]:
    return Subscription.model_validate({"space": "default", **SYNC, "path": path}).to_json()


async def _open(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    await store.open()
    return store


async def test_guarded_create_on_sqlite(tmp_path: Path) -> None:
    """What a guarded create checks, and why it says it failed; its guard rows are no documents."""
    store, other = await _open(tmp_path / "config.db"), await _open(tmp_path / "config.db")
    try:
        assert store.guards_creates
        start = await store.current_revision()
        assert start == 0 and await store.unchanged_since(0)
        with pytest.raises(GuardFailed) as missing:
            await store.create_guarded(Kind.SUBSCRIPTIONS, "default", "a", _sub("/a"), CreateGuard(start, REQUIRES))
        assert missing.value.created_after is None
        assert str(missing.value) == ("subscriptions 'a' requires eventtypes 'e', functions 'f' in space 'default', "
                                      "not found")
        await store.create(Kind.EVENT_TYPES, "default", "e", {"name": "e"})
        with pytest.raises(GuardFailed, match="requires functions 'f' in space 'default'"):
            await store.create_guarded(Kind.SUBSCRIPTIONS, "default", "a", _sub("/a"), CreateGuard(start, REQUIRES))
        await store.create(Kind.FUNCTIONS, "default", "f", {"functionId": "f"})
        assert await other.current_revision() == 2 and not await other.unchanged_since(1)
        first = await store.create_guarded(Kind.SUBSCRIPTIONS, "default", "a", _sub("/a"), CreateGuard(start, REQUIRES))
        # A create checked before that one, through another store on the file, loses and says what beat it.
        with pytest.raises(GuardFailed) as beaten:
            await other.create_guarded(Kind.SUBSCRIPTIONS, "default", "b", _sub("/b"),
                                       CreateGuard(first.revision - 1, REQUIRES))
        assert beaten.value.created_after == first.revision
        assert f"'a' was created in space 'default' at revision {first.revision}" in str(beaten.value)
        with pytest.raises(AlreadyExists):  # the id taken is said first
            await other.create_guarded(Kind.SUBSCRIPTIONS, "default", "a", _sub("/a"), CreateGuard(start, REQUIRES))
        second = await other.create_guarded(Kind.SUBSCRIPTIONS, "default", "b", _sub("/b"),
                                            CreateGuard(first.revision, REQUIRES))
        # Another space has its own guard; other kinds' plain creates and updates do not move it.
        third = await other.create_guarded(Kind.SUBSCRIPTIONS, "defaults", "c", _sub("/c"), CreateGuard(start))
        await store.update(Kind.FUNCTIONS, "default", "f", {"functionId": "f", "v": 2})
        # A plain create (not guarded) moves the guard too.
        plain = await other.create(Kind.SUBSCRIPTIONS, "default", "p", _sub("/p"))
        with pytest.raises(GuardFailed) as after_plain:
            await store.create_guarded(Kind.SUBSCRIPTIONS, "default", "d", _sub("/d"),
                                       CreateGuard(second.revision, REQUIRES))
        assert after_plain.value.created_after == plain.revision
        await store.create_guarded(Kind.SUBSCRIPTIONS, "default", "d", _sub("/d"),
                                   CreateGuard(plain.revision, REQUIRES))
        # Guard rows hold no document: the snapshot, the fingerprint and the change log do not show them.
        snapshot = await store.snapshot()
        assert sorted((e.kind.value, e.space, e.id) for e in snapshot.entries) == [
            ("eventtypes", "default", "e"), ("functions", "default", "f"), ("subscriptions", "default", "a"),
            ("subscriptions", "default", "b"), ("subscriptions", "default", "d"), ("subscriptions", "default", "p"),
            ("subscriptions", "defaults", "c")]
        assert snapshot.revision == await store.current_revision() == third.revision + 3
        seen = []
        async for change in store.watch(start):
            seen.append(change.id)
            if change.revision == snapshot.revision:
                break
        assert seen == ["e", "f", "a", "b", "c", "f", "p", "d"]
    finally:
        await store.close()
        await other.close()


async def test_guarded_creates_racing_on_two_stores(tmp_path: Path) -> None:
    """Two stores on one file (two processes' connections), each create run on its own thread, checked at
    the same revision and sent at the same moment: exactly one applies, every time, and the loser names it."""
    a, b = await _open(tmp_path / "config.db"), await _open(tmp_path / "config.db")
    try:
        await a.create(Kind.EVENT_TYPES, "default", "e", {"name": "e"})
        await a.create(Kind.FUNCTIONS, "default", "f", {"functionId": "f"})
        rounds = 40
        for round_ in range(rounds):
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
        assert len(await b.list(Kind.SUBSCRIPTIONS, "default")) == rounds
    finally:
        await a.close()
        await b.close()


async def test_conflicting_creates_at_the_same_instant_on_two_gateways(tmp_path: Path, gateway_server: Any) -> None:
    """Two gateways on one SQLite file (as two --processes workers), their Config services each checking a
    conflicting create against their own views at the same instant: the second transaction fails, its create
    is checked again and refused with the single-process answer, every time; creates that do not conflict
    are both stored."""
    db = f"sqlite:{tmp_path / 'config.db'}"
    a = await gateway_server(db=db)
    b = await gateway_server(db=db)
    await assert_conflicting_creates_race(a, b, rounds=40)


async def test_racing_conflicting_creates_on_two_gateway_processes(tmp_path: Path, gateway_process: Any) -> None:
    """Two real gateway processes on one SQLite file, conflicting sync paths posted to both at the same moment
    through HTTP: exactly one stored, the other answered the single-process 400, every round."""
    db = str(tmp_path / "config.db")
    a = gateway_process("--db", f"sqlite:{db}", "--queue", "memory")
    b = gateway_process("--db", f"sqlite:{db}", "--queue", "memory")
    async with (httpx.AsyncClient(base_url=a.config_url + "/v1/spaces/default", timeout=10) as on_a,
                httpx.AsyncClient(base_url=b.config_url + "/v1/spaces/default", timeout=10) as on_b):
        await space_with_event_type_and_function(on_a)
        for _ in range(100):  # B's view has the function (its watch polls the file)
            if (await on_b.get("/functions/f")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        rounds = 20
        for round_ in range(rounds):
            answers = await asyncio.gather(on_a.post("/subscriptions", json={**SYNC, "path": f"/r{round_}/:id"}),
                                           on_b.post("/subscriptions", json={**SYNC, "path": f"/r{round_}/:name"}))
            assert sorted(answer.status_code for answer in answers) == [201, 400], [a.text for a in answers]
            refused = next(answer for answer in answers if answer.status_code == 400)
            assert "Subscription path conflict" in refused.text and "already defined" in refused.text, refused.text
        listed = (await on_b.get("/subscriptions")).json()["subscriptions"]
        assert len(listed) == rounds
