"""Wall time: no Wasm runs longer than its per-call deadline, whatever it executes.

Fuel counts instructions, and some instructions cost far more time than fuel (bench/bench_fuel_wall.py:
a `memory.grow` loop is ~75 ms per 10 M fuel, wasmtime's own WASI calls 0.25-0.8 s, against ~2-5 ms
for plain code). Each class below runs as a sync reaction with fuel effectively unlimited: only the
per-call epoch deadline (`sync_timeout`, default 50 ms) can stop it, and it must: the proof is the
`timeout` fault naming the per-call limit (``sync_timeout 0.05 s per call``); the times asserted are hang
guards, not speed claims (bench/bench_fuel_wall.py measures how long each class takes per fuel and how a
default reaction of it ends, including that plain code runs out of its 10 M fuel before the 50 ms deadline).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.plugins.loading import LoadedPlugin, spec_from_path
from gateway.plugins.plugin_settings import PluginSettings
from wasm_abi import Limits, Plugin, PluginFault, Reaction
from wasm_abi.instance import INLINE_SYNC_TIMEOUT

from tests.wat import plugin_wat

MakePlugin = Callable[..., Plugin]

#: A hang guard, 10x what a stopped call takes on a loaded machine (0.21 s seen in a full run; the deadline
#: is 50-60 ms, and the timed call may also make a fresh instance). Which deadline stopped a call is told
#: by its fault's message, not by this.
BOUND = 5.0

WASI = """
  (import "wasi_snapshot_preview1" "fd_filestat_get" (func $fd_filestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
"""

# name -> (imports, extra module fields, memory pages, loop body)
CLASSES = {
    "memory.grow 0 pages": ("", "", 1, "(drop (memory.grow (i32.const 0)))"),
    "memory.grow refused at the limit": ("", "", 1024, "(drop (memory.grow (i32.const 1)))"),
    "table.grow refused at the limit": ("", "(table $tb 10000 funcref)", 1,
                                        "(drop (table.grow $tb (ref.null func) (i32.const 1)))"),
    "memory.fill 64 MiB": ("", "", 1024, "(memory.fill (i32.const 0) (i32.const 7) (i32.const 67108864))"),
    "memory.copy 32 MiB": ("", "", 1024,
                           "(memory.copy (i32.const 33554432) (i32.const 0) (i32.const 33554432))"),
    "WASI fd_filestat_get": (WASI, "", 1, "(drop (call $fd_filestat_get (i32.const 1) (i32.const 256)))"),
    "WASI clock_time_get": (WASI, "", 1, "(drop (call $clock_time_get (i32.const 1) (i64.const 0) (i32.const 256)))"),
}


def spinning(make_plugin: MakePlugin, cls: str, limits: Limits) -> Plugin:
    """Continues for the empty map (1 byte of msgpack); loops on `cls` forever for anything bigger."""
    imports, extra, pages, body = CLASSES[cls]
    react = (f"(if (result i64) (i32.eq (local.get $len) (i32.const 1)) (then (i64.const 0)) "
             f"(else (loop $l {body} (br $l)) (i64.const 0)))")
    return make_plugin(imports=imports, extra=extra, react=react, limits=limits,
                       memory=f'(memory (export "memory") {pages})')


def test_the_default_deadline_fits_the_event_loop() -> None:
    limits = Limits()
    assert limits.sync_timeout <= INLINE_SYNC_TIMEOUT <= 0.05


@pytest.mark.parametrize("cls", list(CLASSES))
def test_each_slow_class_is_stopped_by_the_per_call_deadline(make_plugin: MakePlugin, cls: str) -> None:
    # 10**12 fuel: a 10 M budget would stop some classes on fuel; here only the deadline can.
    plugin = spinning(make_plugin, cls, Limits(sync_fuel=10**12))
    assert plugin.react({}) == Reaction()
    for _ in range(2):  # the second one runs on a fresh instance, under its own fresh deadline
        started = time.monotonic()
        with pytest.raises(PluginFault) as info:
            plugin.react({"spin": 1})
        elapsed = time.monotonic() - started
        assert info.value.kind == "timeout", info.value.message
        assert "sync_timeout 0.05 s per call" in info.value.message
        assert elapsed < BOUND, f"{cls}: stopped after {elapsed:.3f}s"
    started = time.monotonic()
    assert plugin.react({}) == Reaction()
    assert time.monotonic() - started < BOUND / 2  # includes making a fresh instance


@pytest.mark.parametrize("cls", ["memory.grow 0 pages", "WASI fd_filestat_get"])
def test_async_reactions_are_bounded_by_async_timeout(make_plugin: MakePlugin, cls: str) -> None:
    plugin = spinning(make_plugin, cls, Limits(async_fuel=10**12, async_timeout=0.1))
    started = time.monotonic()
    with pytest.raises(PluginFault) as info:
        plugin.react({"spin": 1}, mode="async")
    assert info.value.kind == "timeout" and "async_timeout 0.1 s per call" in info.value.message
    assert time.monotonic() - started < 0.1 + BOUND


def test_the_deadline_is_per_call_not_shared(make_plugin: MakePlugin) -> None:
    """Many reactions in a row, together far longer than the deadline, each get their own: none is
    stopped by time its predecessors used."""
    plugin = make_plugin(reaction={})
    started = time.monotonic()
    calls = 0
    # Six deadlines' worth of back-to-back calls, and at least 100 of them (how many fit in 0.3 s is a
    # speed, not this test's business): none faults.
    while time.monotonic() - started < 0.3 or calls < 100:
        assert plugin.react({}) == Reaction()
        calls += 1


def test_a_deadline_kept_within_a_tick_still_stops_a_spinning_reaction(make_plugin: MakePlugin) -> None:
    """A sync reaction in the same epoch tick as the store's last sync deadline keeps that deadline rather
    than setting the same one again (`PluginInstance.react`): a spinning reaction right after fast ones is
    still stopped by it, and one after an async reaction (whose deadline is `async_timeout`, here 2 s) by
    the sync deadline, not the async one."""
    plugin = spinning(make_plugin, "memory.grow 0 pages", Limits(sync_fuel=10**12, async_fuel=10**12,
                                                                 async_timeout=2.0))
    for before in (("sync",), ("sync", "async")):  # each spin faults: the next runs on a fresh instance
        for _ in range(50):  # back to back, on one instance: most of them within one tick
            for mode in before:
                assert plugin.react({}, mode=mode) == Reaction()
        started = time.monotonic()
        with pytest.raises(PluginFault) as info:
            plugin.react({"spin": 1})
        elapsed = time.monotonic() - started
        assert info.value.kind == "timeout" and "sync_timeout 0.05 s per call" in info.value.message
        assert elapsed < BOUND, f"after {before} reactions: stopped after {elapsed:.3f}s"


def test_a_plugin_allowed_more_than_the_loop_fits_reacts_off_the_loop(tmp_path: Path) -> None:
    """`inline` (sync reactions on the gateway's event loop) only for sync_timeout <= 50 ms."""
    path = tmp_path / "slow.wat"
    path.write_text(plugin_wat(reaction={}))
    for timeout, inline in ((0.05, True), (0.02, True), (0.2, False)):
        settings = PluginSettings.model_validate({"limits": {"sync_timeout": timeout}})
        spec = spec_from_path(path, 0, settings)
        host = Plugin.from_file(path, limits=settings.to_limits())
        try:
            assert LoadedPlugin(spec, host).inline is inline, timeout
        finally:
            host.close()
