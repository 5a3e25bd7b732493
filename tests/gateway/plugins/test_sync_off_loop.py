"""A sync reaction that has to make a fresh instance (after a fault) must not run on the event loop:
making one runs `_initialize` and `init` under the load limits, which a plugin can stretch to seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import wasmtime

from gateway.plugins.loading import load_plugin, spec_from_path
from gateway.plugins.stages import ActivePluginSet
from gateway.plugins.plugin_settings import PluginSettings
from wasm_abi import PluginLoadError, system_event

T = TypeVar("T")

# `_initialize` spins ~20 M iterations (~100 M fuel, well inside the load budget); `react` always traps,
# so every reaction discards its instance and the next one has to make a fresh one.
SLOW_TO_INSTANTIATE = r"""
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "eventgateway_abi_v1"))
  (func (export "alloc") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $at))
  ;; [{"eventType": "eventgateway.event.received", "type": "sync"}]
  (data (i32.const 16) "\91\82\a9eventType\bbeventgateway.event.received\a4type\a4sync")
  (func (export "subscriptions") (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 50)))
  (func (export "_initialize")
    (local $i i32)
    (loop $spin
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $spin (i32.lt_u (local.get $i) (i32.const 20000000)))))
  (func (export "react") (param i32 i32) (result i64) unreachable)
)
"""

BOTH_MODES = SLOW_TO_INSTANTIATE.replace(
    r'"\91\82\a9eventType\bbeventgateway.event.received\a4type\a4sync"',
    r'"\92\82\a9eventType\bbeventgateway.event.received\a4type\a4sync'
    r'\82\a9eventType\bdeventgateway.function.invoked\a4type\a5async"',
).replace("(i64.const 50)", "(i64.const 102)")


# Calls WASI's clock_time_get forever: each call costs the plugin next to no fuel, so the reaction runs
# for a good part of a second before fuel or the wall-clock net stops it.
WASI_SPINNER = SLOW_TO_INSTANTIATE.replace(
    '(memory (export "memory") 1)',
    '(import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))\n'
    '  (memory (export "memory") 1)',
).replace(
    '(func (export "react") (param i32 i32) (result i64) unreachable)',
    '(func (export "react") (param i32 i32) (result i64)\n'
    '    (loop $spin (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 64))) (br $spin))\n'
    '    (i64.const 0))',
).replace("(i32.const 20000000)", "(i32.const 1)")


def received() -> dict:
    incoming = {"specversion": "1.0", "type": "user.created", "id": "e-1", "source": "/tests"}
    return system_event("eventgateway.event.received", {"event": incoming, "path": "/", "headers": {}})


async def loop_turns_during(work: Coroutine[Any, Any, T]) -> tuple[T, int]:
    """Await ``work`` while counting how often the event loop ran another task meanwhile: about zero
    when ``work`` blocks the loop, many when it waits on a thread."""
    turns = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started_at = turns
    try:
        return await work, turns - started_at
    finally:
        stop.set()
        await task


def write(tmp_path: Path, name: str, wat: str) -> Path:
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(bytes(wasmtime.wat2wasm(wat)))
    return path


async def test_making_a_fresh_instance_leaves_the_event_loop_free(tmp_path: Path) -> None:
    loaded = load_plugin(spec_from_path(write(tmp_path, "slow", SLOW_TO_INSTANTIATE), 0))
    plugins = ActivePluginSet([loaded], metrics=None, executor=None)
    try:
        # The instance made at load traps and is discarded: the pool is now empty.
        first = await plugins.react_sync(received())
        assert first.rejection is not None and first.rejection.status == 503
        assert not loaded.host.instance_ready

        second, ticks = await loop_turns_during(plugins.react_sync(received()))
        assert second.rejection is not None and "trap" in second.rejection.message
        # Had the fresh instance been made inline, the loop could not have turned meanwhile.
        assert ticks > 10, f"the event loop was blocked while making an instance ({ticks} turns)"
    finally:
        loaded.host.close()


async def test_a_wasi_plugin_reacts_off_the_event_loop(tmp_path: Path) -> None:
    loaded = load_plugin(spec_from_path(write(tmp_path, "spinner", WASI_SPINNER), 0))
    plain = load_plugin(spec_from_path(write(tmp_path, "plain", SLOW_TO_INSTANTIATE.replace(
        "(i32.const 20000000)", "(i32.const 1)")), 0))
    assert loaded.host.uses_wasi and not loaded.inline
    assert plain.inline  # no WASI: fuel bounds its reactions, which run on the loop
    plugins = ActivePluginSet([loaded], metrics=None, executor=None)
    try:
        assert loaded.host.instance_ready
        outcome, ticks = await loop_turns_during(plugins.react_sync(received()))
        assert outcome.rejection is not None and outcome.rejection.status == 503
        assert "out_of_fuel" in outcome.rejection.message or "timeout" in outcome.rejection.message
        assert ticks > 10, f"the event loop was blocked by a WASI reaction ({ticks} turns)"
    finally:
        loaded.host.close()
        plain.host.close()


def test_a_pool_of_one_cannot_serve_sync_and_async_subscriptions(tmp_path: Path) -> None:
    path = write(tmp_path, "both", BOTH_MODES)
    spec = spec_from_path(path, 0, PluginSettings.model_validate({"limits": {"pool_size": 1}}))
    with pytest.raises(PluginLoadError, match=r"pool_size >= 2"):
        load_plugin(spec)
