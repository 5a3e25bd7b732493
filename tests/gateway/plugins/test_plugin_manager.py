"""The plugin manager over real components: Wasm plugins built from WAT in the run, the in-memory store,
the configuration view and the Prometheus registry. The reaction rules of ABI v1, failure policies,
quarantine and recovery, async hand-off, and atomic reloads."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.wat import TRAP_ON_BOOM, example, kit_module, kit_plugin, write

from gateway.metrics import Metrics
from gateway.plugins.reactor import AsyncReactor
from gateway.plugins.contract import CONTINUE
from gateway.plugins.documents import write_plugin
from gateway.plugins.manager import PluginManager
from gateway.plugins.plugin_settings import parse_settings
from gateway.store.memory import MemoryStore
from gateway.config.view import ConfigView

RECEIVED = "eventgateway.event.received"
INVOKING = "eventgateway.function.invoking"
INVOKED = "eventgateway.function.invoked"


def incoming(event_type: str = "user.created") -> dict[str, Any]:
    return {"specversion": "1.0", "type": event_type, "id": "e-1", "source": "/tests"}


def received(event_type: str = "user.created") -> dict[str, Any]:
    from wasm_abi import system_event

    return system_event(RECEIVED, {"event": incoming(event_type), "path": "/", "headers": {}})


def invoked(event_type: str = "user.created") -> dict[str, Any]:
    from wasm_abi import system_event

    return system_event(INVOKED, {"space": "default", "event": incoming(event_type), "functionId": "f",
                                  "result": {"ok": True}})


Start = Callable[..., Awaitable[tuple[PluginManager, Any]]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """Start a PluginManager on a fresh memory store + view, with plugins from a plugins.toml."""
    started: list[tuple[PluginManager, ConfigView]] = []

    async def _start(toml: str = "", flags: list[str] | None = None) -> tuple[PluginManager, Any]:
        config = None
        if toml:
            config = tmp_path / "plugins.toml"
            config.write_text(toml)
        store = MemoryStore()
        await store.open()
        view = ConfigView(store)
        await view.start()
        gateway = types.SimpleNamespace(
            settings=types.SimpleNamespace(plugins=flags or [], plugins_config=str(config) if config else None),
            metrics=Metrics(), store=store, view=view)
        manager = PluginManager(view=view, metrics=gateway.metrics, plugin_paths=flags or [], plugins_config=config)
        await manager.start()
        started.append((manager, view))
        return manager, gateway

    yield _start
    for manager, view in started:
        await manager.close()
        await view.close()


def table(name: str, path: Path, extra: str = "") -> str:
    return f'[plugins.{name}]\npath = "{path}"\n{extra}\n'


def metric(gateway: Any, name: str, labels: dict[str, str]) -> float | None:
    return gateway.metrics.registry.get_sample_value(name, labels)


async def test_reject_defaults_to_403_and_keeps_a_given_status(tmp_path: Path, start: Start) -> None:
    plain = write(tmp_path, "plain", kit_plugin(reaction={"error": "not today"}))
    manager, _ = await start(table("plain", plain))
    outcome = await manager.current().react_sync(received())
    assert outcome.rejection is not None
    assert (outcome.rejection.plugin, outcome.rejection.status, outcome.rejection.message) == (
        "plain", 403, "not today")
    statused = write(tmp_path, "statused", kit_plugin(reaction={"error": "slow down", "status": 429}))
    manager2, _ = await start(table("statused", statused))
    assert (await manager2.current().react_sync(received())).rejection.status == 429


async def test_plugins_run_in_order_and_see_each_others_rewrites(tmp_path: Path, start: Start) -> None:
    rewritten = {"specversion": "1.0", "type": "rewritten", "id": "r-1", "source": "/plugin"}
    rewriter = write(tmp_path, "rewriter", kit_plugin(reaction={"event": rewritten}))
    guard = write(tmp_path, "guard", example("guard"))
    toml = (table("guard", guard, 'order = 2\nconfig = { denyTypes = ["rewritten"] }') +
            table("rewriter", rewriter, "order = 1"))
    manager, gateway = await start(toml)
    assert manager.current().names() == ["rewriter", "guard"]
    outcome = await manager.current().react_sync(received())
    # The guard (second) saw the event as the rewriter (first) left it.
    assert outcome.rejection is not None and outcome.rejection.plugin == "guard"
    assert "rewritten is denied" in outcome.rejection.message
    assert metric(gateway, "eventgateway_plugin_reactions_total",
                  {"plugin": "rewriter", "event_type": RECEIVED, "mode": "sync", "outcome": "rewrite"}) == 1


async def test_rewrite_replaces_the_event_only_when_allowed(tmp_path: Path, start: Start) -> None:
    rewritten = {"specversion": "1.0", "type": "rewritten", "id": "r-1", "source": "/plugin"}
    module = write(tmp_path, "rewriter", kit_plugin([(RECEIVED, "sync"), (INVOKED, "sync")],
                                                   {"event": rewritten}))
    manager, _ = await start(table("rewriter", module))
    assert (await manager.current().react_sync(received())).event == rewritten
    # function.invoked is not a stage where an event can be replaced.
    assert await manager.current().react_sync(invoked()) == CONTINUE
    denied, _ = await start(table("rewriter", module, "rewrite = false"))
    assert await denied.current().react_sync(received()) == CONTINUE


async def test_invalid_replacement_is_a_fault(tmp_path: Path, start: Start) -> None:
    # Not a CloudEvent: no id, no source, no specversion.
    module = write(tmp_path, "sloppy", kit_plugin(reaction={"event": {"type": "half"}}))
    manager, gateway = await start(table("sloppy", module, "limits = { quarantine_after = 2 }"))
    outcome = await manager.current().react_sync(received())
    assert outcome.rejection is not None and outcome.rejection.status == 503
    assert "sloppy" in outcome.rejection.message and "bad_output" in outcome.rejection.message
    assert metric(gateway, "eventgateway_plugin_faults_total", {"plugin": "sloppy", "kind": "bad_output"}) == 1
    # It is the plugin's fault like any other: in its health, and counted towards quarantine.
    (plugin,) = manager.current().plugins
    state = plugin.host.state
    assert state.last_fault_kind == "bad_output" and "replacement event is invalid" in state.last_fault_message
    assert state.status == "active"
    await manager.current().react_sync(received())
    assert plugin.host.state.status == "quarantined"


async def test_failure_policy_closed_rejects_and_open_continues(tmp_path: Path, start: Start) -> None:
    trap = write(tmp_path, "trap", kit_module(TRAP_ON_BOOM))
    deny = write(tmp_path, "deny", kit_plugin(reaction={"error": "reached the second plugin", "status": 418}))
    closed, gateway = await start(table("trap", trap, "order = 1") + table("deny", deny, "order = 2"))
    outcome = await closed.current().react_sync(received("boom"))
    assert outcome.rejection is not None
    assert outcome.rejection.status == 503 and outcome.rejection.plugin == "trap"
    assert outcome.rejection.message == "plugin 'trap' failed (trap) and its failure policy is closed"
    assert metric(gateway, "eventgateway_plugin_faults_total", {"plugin": "trap", "kind": "trap"}) == 1

    opened, _ = await start(table("trap", trap, 'order = 1\npolicy = "open"') + table("deny", deny, "order = 2"))
    outcome = await opened.current().react_sync(received("boom"))
    assert outcome.rejection is not None and outcome.rejection.status == 418  # went on to the next plugin


async def test_quarantine_with_backoff_then_recovery(tmp_path: Path, start: Start) -> None:
    trap = write(tmp_path, "trap", kit_module(TRAP_ON_BOOM))
    manager, gateway = await start(table(
        "trap", trap, "[plugins.trap.limits]\nquarantine_after = 2\nquarantine_backoff = 0.5"))
    plugins = manager.current()
    for _ in range(2):
        assert (await plugins.react_sync(received("boom"))).rejection.message.endswith(
            "failed (trap) and its failure policy is closed")
    status = manager.status("trap").to_json()
    assert status["state"] == "quarantined"
    assert status["lastFault"]["kind"] == "trap" and "unreachable" in status["lastFault"]["message"]
    assert 0 < status["retryInSeconds"] <= 0.5 and status["retryAt"].endswith("Z")
    # While quarantined no Wasm runs: even a good event is refused (closed policy), fast.
    outcome = await plugins.react_sync(received("fine"))
    assert outcome.rejection is not None and "(quarantined)" in outcome.rejection.message
    manager._refresh_states()
    assert metric(gateway, "eventgateway_plugin_state", {"plugin": "trap"}) == 1
    retry_at = metric(gateway, "eventgateway_plugin_quarantine_retry_timestamp_seconds", {"plugin": "trap"})
    assert retry_at is not None and time.time() < retry_at <= time.time() + 0.5
    faulted_at = metric(gateway, "eventgateway_plugin_last_fault_timestamp_seconds", {"plugin": "trap", "kind": "trap"})
    assert faulted_at is not None and faulted_at <= time.time()
    assert metric(gateway, "eventgateway_plugin_reactions_total",
                  {"plugin": "trap", "event_type": RECEIVED, "mode": "sync", "outcome": "skipped"}) == 1
    await asyncio.sleep(0.55)
    # The retry time passed: the next event probes the plugin, succeeds, and clears the quarantine.
    assert await plugins.react_sync(received("fine")) == CONTINUE
    status = manager.status("trap").to_json()
    assert status["state"] == "active" and status["retryAt"] is None
    assert status["counters"]["faults"] == {"trap": 2, "quarantined": 1}
    manager._refresh_states()
    assert metric(gateway, "eventgateway_plugin_state", {"plugin": "trap"}) == 0
    assert metric(gateway, "eventgateway_plugin_quarantine_retry_timestamp_seconds", {"plugin": "trap"}) == 0


async def test_async_reactions_run_off_the_loop(tmp_path: Path, start: Start) -> None:
    module = write(tmp_path, "watcher", kit_plugin([(INVOKED, "async")]))
    manager, gateway = await start(table("watcher", module))
    plugins = manager.current()
    assert plugins.wants(INVOKED) and not plugins.wants(RECEIVED)
    assert await plugins.react_sync(invoked()) == CONTINUE  # no sync subscriber
    plugins.react_async(invoked())
    labels = {"plugin": "watcher", "event_type": INVOKED, "mode": "async", "outcome": "continue"}
    deadline = time.monotonic() + 5
    while metric(gateway, "eventgateway_plugin_reactions_total", labels) != 1:
        assert time.monotonic() < deadline, "the async reaction never ran"
        await asyncio.sleep(0.01)


def test_async_reactor_drops_when_saturated() -> None:
    reactor = AsyncReactor(threads=1, backlog=2)
    release = threading.Event()
    try:
        assert reactor.submit(release.wait)
        assert reactor.submit(release.wait)
        assert not reactor.submit(release.wait)  # backlog full: dropped, and submit did not block
    finally:
        release.set()
        reactor.close()
    assert not reactor.submit(release.wait)  # closed


async def test_reload_swaps_atomically_and_in_flight_events_keep_their_set(tmp_path: Path, start: Start) -> None:
    manager, gateway = await start()
    before = manager.current()
    assert len(before) == 0
    settings = parse_settings({"config": {"denyTypes": ["user.created"]}})
    revision = await write_plugin(gateway.store, "guard", settings, example("guard"), None)
    assert await manager.wait_applied(revision)
    after = manager.current()
    assert after.names() == ["guard"] and after.revision >= revision
    # An event that started before the change finishes with the set it started with.
    assert await before.react_sync(received()) == CONTINUE
    assert (await after.react_sync(received())).rejection.plugin == "guard"
    # A settings change builds a new set again; the previous one is untouched.
    document = manager.stored_document("guard")
    revision = await write_plugin(gateway.store, "guard", parse_settings({"config": {"denyTypes": ["other"]}}),
                                  None, document)
    assert await manager.wait_applied(revision)
    assert await manager.current().react_sync(received()) == CONTINUE
    assert (await after.react_sync(received())).rejection is not None


async def test_unchanged_plugins_are_reused_across_reloads(tmp_path: Path, start: Start) -> None:
    manager, gateway = await start()
    revision = await write_plugin(gateway.store, "a", parse_settings({}), example("logger"), None)
    await manager.wait_applied(revision)
    host = manager.current().plugins[0].host
    revision = await write_plugin(gateway.store, "b", parse_settings({"order": -1}), example("logger"), None)
    await manager.wait_applied(revision)
    assert manager.current().names() == ["b", "a"]
    assert manager.current().plugins[1].host is host  # not recompiled, health and instances kept


async def test_plugin_logs_reach_the_gateway_log_capped_and_rate_limited(
    tmp_path: Path, start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    module = write(tmp_path, "chatty", example("logger"))
    manager, gateway = await start(table("chatty", module, "[plugins.chatty.limits]\nlog_rate_per_second = 2\n"
                                                           "log_burst = 3\nmax_log_message_bytes = 20"))
    caplog.set_level("INFO", logger="wasm_abi.plugin")
    plugins = manager.current()
    for _ in range(6):
        await plugins.react_sync(received("a.very.long.event.type.name"))
    lines = [r for r in caplog.records if getattr(r, "plugin", None) == "chatty"]
    plugin_lines = [r for r in lines if "(host)" not in r.getMessage()]
    assert len(plugin_lines) == 3  # the burst
    assert plugin_lines[0].levelname == "INFO" and plugin_lines[0].plugin_level == "info"
    assert plugin_lines[0].getMessage().startswith("[plugin chatty] received event a.ve")
    assert "[truncated" in plugin_lines[0].getMessage()  # cut at 20 bytes, and says so
    assert any("log rate limit of 2 messages/s hit" in r.getMessage() for r in lines)  # the cap is visible
    await asyncio.sleep(0.6)
    await plugins.react_sync(received("again"))
    assert any("3 log messages were dropped" in r.getMessage() for r in caplog.records)
    assert metric(gateway, "eventgateway_plugin_log_dropped_total", {"plugin": "chatty"}) == 3


async def test_async_reactions_are_dropped_and_counted_when_the_pool_is_full(tmp_path: Path, start: Start) -> None:
    module = write(tmp_path, "watcher", kit_plugin([(INVOKED, "async")]))
    manager, gateway = await start(table("watcher", module))
    plugins = manager.current()
    busy = threading.Event()
    # Fill the plugin's own queue in the set's reactor: its share of the threads blocked, its backlog taken.
    reactor = plugins._executor
    assert reactor is not None
    while reactor.submit(busy.wait, key=plugins.plugins[0].host):
        pass
    try:
        plugins.react_async(invoked())  # returns at once
        labels = {"plugin": "watcher", "event_type": INVOKED, "mode": "async", "outcome": "dropped"}
        assert metric(gateway, "eventgateway_plugin_reactions_total", labels) == 1
    finally:
        busy.set()


async def test_modules_are_stored_in_chunks_and_collected_with_their_last_user(start: Start) -> None:
    from gateway.plugins import documents
    from gateway.plugins.documents import delete_plugin
    from gateway.store.base import Kind

    manager, gateway = await start()
    store = gateway.store
    big = example("guard")  # the chunk size is lowered below to force several chunks
    chunk_bytes, documents.CHUNK_BYTES = documents.CHUNK_BYTES, 1000
    try:
        revision = await write_plugin(store, "a", parse_settings({}), big, None)
        revision = max(revision, await write_plugin(store, "b", parse_settings({"order": 1}), big, None))
    finally:
        documents.CHUNK_BYTES = chunk_bytes
    await manager.wait_applied(revision)
    chunks = await store.list(Kind.PLUGINS, documents.MODULES_SPACE)
    assert len(chunks) == -(-len(big) // 1000) >= 2  # one set of chunks shared by both plugins
    assert manager.current().names() == ["a", "b"]
    await delete_plugin(store, manager.stored_document("a"))
    assert len(await store.list(Kind.PLUGINS, documents.MODULES_SPACE)) == len(chunks)  # "b" still uses them
    revision = await write_plugin(store, "b", parse_settings({}), example("logger"), manager.stored_document("b"))
    await manager.wait_applied(revision)
    remaining = await store.list(Kind.PLUGINS, documents.MODULES_SPACE)
    assert {e.value["sha256"] for e in remaining} == {hashlib.sha256(example("logger")).hexdigest()}
    assert manager.current().names() == ["b"]


async def test_disable_and_enable_ends_a_quarantine(start: Start) -> None:
    manager, gateway = await start()
    settings = {"limits": {"quarantine_after": 1, "quarantine_backoff": 300.0}}
    revision = await write_plugin(gateway.store, "trap", parse_settings(settings), kit_module(TRAP_ON_BOOM), None)
    await manager.wait_applied(revision)
    await manager.current().react_sync(received("boom"))
    assert manager.status("trap").state == "quarantined"
    for enabled in (False, True):
        revision = await write_plugin(gateway.store, "trap", parse_settings({**settings, "enabled": enabled}), None,
                                      manager.stored_document("trap"))
        await manager.wait_applied(revision)
    assert manager.status("trap").state == "active"
    assert await manager.current().react_sync(received("fine")) == CONTINUE


async def test_a_change_derived_from_a_stale_read_is_refused(start: Start) -> None:
    """Two gateways disabling and reconfiguring one plugin at once: the write based on the older read is
    refused (RevisionConflict, 409 through the API) instead of silently undoing the other's change."""
    from gateway.plugins.documents import read_plugin
    from gateway.store.base import RevisionConflict

    manager, gateway = await start()
    await write_plugin(gateway.store, "guard", parse_settings({}), example("guard"), None)
    found = await read_plugin(gateway.store, "guard")
    assert found is not None
    document, revision = found
    # Gateway X reconfigures the plugin from that read ...
    newer = await write_plugin(gateway.store, "guard", parse_settings({"config": {"denyTypes": ["x"]}}), None,
                               document, revision)
    # ... and gateway Y, which read the same revision, tries to disable it: refused, X's config survives.
    with pytest.raises(RevisionConflict):
        await write_plugin(gateway.store, "guard", parse_settings({"enabled": False}), None, document, revision)
    assert await manager.wait_applied(newer)
    latest = await read_plugin(gateway.store, "guard")
    assert latest is not None and latest[0]["settings"]["config"] == {"denyTypes": ["x"]}
    assert latest[0]["settings"].get("enabled", True) is True
    assert manager.status("guard").state == "active"


async def test_a_create_that_loses_the_name_leaves_no_module_behind(start: Start) -> None:
    """Two uploads of one name at once (two gateways): the loser's module chunks are removed again."""
    from gateway.plugins import documents
    from gateway.store.base import AlreadyExists, Kind

    _, gateway = await start()
    store = gateway.store
    await write_plugin(store, "guard", parse_settings({}), example("guard"), None)
    with pytest.raises(AlreadyExists):
        await write_plugin(store, "guard", parse_settings({}), example("logger"), None)
    chunks = await store.list(Kind.PLUGINS, documents.MODULES_SPACE)
    assert {e.value["sha256"] for e in chunks} == {hashlib.sha256(example("guard")).hexdigest()}


class _HookedStore:
    """Builds a real MemoryStore whose next matching write first runs a callback: the way to put another
    gateway's request exactly inside this one's read-then-write window."""

    @staticmethod
    def make(method: str, space: str):
        from gateway.store.memory import MemoryStore

        class Hooked(MemoryStore):
            hook = None

            async def _maybe(self, kind_space: str) -> None:
                if self.hook is not None and kind_space == space:
                    hook, self.hook = self.hook, None
                    await hook()

        async def wrapped(self, kind, space_, id, *args, **kwargs):
            await self._maybe(space_)
            return await getattr(MemoryStore, method)(self, kind, space_, id, *args, **kwargs)

        setattr(Hooked, method, wrapped)
        return Hooked()


@pytest.mark.parametrize("window", ["upload-inside-collection", "collection-inside-upload"])
async def test_shared_module_chunks_survive_a_concurrent_delete_of_their_other_user(window: str) -> None:
    """Plugin 'old' is deleted (its module collected) while plugin 'new' is uploaded with the same bytes
    through another gateway; whichever way the two interleave, 'new' keeps a complete module."""
    from gateway.plugins.documents import assemble_module, delete_plugin, plugin_documents, read_plugin
    from gateway.store.base import Kind

    wasm = example("guard")
    if window == "upload-inside-collection":
        # The upload runs entirely between the collector's "no users" and its deletes.
        store = _HookedStore.make("delete", "modules")
    else:
        # The collection runs entirely between the upload's chunk writes (skipped: present) and its document.
        store = _HookedStore.make("create", "plugins")
    await store.open()
    await write_plugin(store, "old", parse_settings({}), wasm, None)
    old, _ = await read_plugin(store, "old")  # type: ignore[misc]

    async def upload_new() -> None:
        await write_plugin(store, "new", parse_settings({}), wasm, None)

    async def delete_old() -> None:
        await delete_plugin(store, old)

    if window == "upload-inside-collection":
        store.hook = upload_new
        await delete_old()
    else:
        store.hook = delete_old
        await upload_new()
    snapshot = await store.snapshot()
    documents = {e.id: e.value for e in snapshot.entries if e.kind is Kind.PLUGINS}
    plugins = plugin_documents(documents)
    assert set(plugins) == {"new"}
    assert assemble_module(documents, plugins["new"]) == wasm
