"""ConfigView: the in-memory copy the Events API reads, fed by a real store's watch."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.config.models import Function
from gateway.metrics import Metrics
from gateway.store.base import Change, Kind
from gateway.store.memory import MemoryStore
from gateway.store.sqlite import SQLiteStore
from gateway.config.view import ConfigView

FUNCTION = {"space": "default", "functionId": "f", "type": "http", "provider": {"url": "http://127.0.0.1:1/"}}


async def test_view_loads_snapshot_follows_changes_and_notifies() -> None:
    store = MemoryStore()
    await store.open()
    await store.create(Kind.FUNCTIONS, "default", "f", FUNCTION)
    metrics = Metrics()
    view = ConfigView(store, metrics)
    await view.start()
    seen: list[Change] = []
    view.add_listener(seen.append)

    function = view.function("default", "f")
    assert isinstance(function, Function) and function.provider.url == "http://127.0.0.1:1/"
    generation = view.generation("default")

    entry = await store.create(Kind.EVENT_TYPES, "default", "t", {"space": "default", "name": "t"})
    assert await view.wait_for_revision(entry.revision, timeout=2)
    assert view.event_type("default", "t") is not None
    assert view.generation("default") > generation
    assert view.generation("other") == 0
    assert [c.id for c in seen] == ["t"]
    assert view.spaces() == {"default"}
    assert 'eventgateway_eventtypes_total{space="default"} 1.0' in metrics.render().decode()

    await store.delete(Kind.FUNCTIONS, "default", "f")
    assert await view.wait_until(lambda: view.function("default", "f") is None, timeout=2)
    assert seen[-1].value is None
    await view.close()
    await store.close()


async def test_invalid_stored_document_is_skipped_not_fatal() -> None:
    store = MemoryStore()
    await store.open()
    await store.create(Kind.FUNCTIONS, "default", "bad", {"functionId": "bad", "type": "nope"})
    await store.create(Kind.FUNCTIONS, "default", "f", FUNCTION)
    view = ConfigView(store)
    await view.start()
    assert view.function("default", "bad") is None
    assert view.function("default", "f") is not None
    await view.close()


async def test_view_recovers_from_a_watch_reset_without_missing_a_delete(tmp_path: Path) -> None:
    # The view's store polls slowly; another writer (history=2) prunes the log meanwhile, so the view's
    # next poll cannot resume and must reload, emitting the delete it would otherwise have missed.
    path = tmp_path / "config.db"
    reader = SQLiteStore(path, poll_interval=1.0)
    writer = SQLiteStore(path, history=2)
    await reader.open()
    await writer.open()
    await writer.create(Kind.FUNCTIONS, "default", "gone", {**FUNCTION, "functionId": "gone"})
    view = ConfigView(reader)
    await view.start()
    seen: list[Change] = []
    view.add_listener(seen.append)
    assert view.function("default", "gone") is not None

    await writer.delete(Kind.FUNCTIONS, "default", "gone")
    last = None
    for n in range(4):
        last = await writer.create(Kind.FUNCTIONS, "default", f"f{n}", {**FUNCTION, "functionId": f"f{n}"})
    assert last is not None
    assert await view.wait_for_revision(last.revision, timeout=5)
    assert view.function("default", "gone") is None
    assert sorted(f.function_id for f in view.functions("default")) == ["f0", "f1", "f2", "f3"]
    assert ("gone", None) in [(c.id, c.value) for c in seen]
    await view.close()
    await reader.close()
    await writer.close()
    await asyncio.sleep(0)
