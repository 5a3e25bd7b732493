"""`react_encoded(..., idle_only=True)`: what an event loop calls, so that it never waits for an instance
nor makes one, whatever another thread does between a check and the call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import msgpack
import pytest

from wasm_abi import Limits, NoIdleInstance, Plugin, PluginFault, Reaction

MakePlugin = Callable[..., Plugin]
EMPTY = msgpack.packb({})
# Spins (until its deadline) for any event but the empty map; continues for the empty map.
SPIN_UNLESS_EMPTY = ("(if (result i64) (i32.eq (local.get $len) (i32.const 1)) (then (i64.const 0)) "
                     "(else (loop (br 0)) (i64.const 0)))")
TRAP_UNLESS_EMPTY = ("(if (result i64) (i32.eq (local.get $len) (i32.const 1)) (then (i64.const 0)) "
                     "(else unreachable))")


def test_an_instance_busy_on_another_thread_is_not_waited_for(make_plugin: MakePlugin) -> None:
    plugin = make_plugin(react=SPIN_UNLESS_EMPTY,
                         limits=Limits(pool_size=1, sync_fuel=10**12, sync_timeout=2.0, quarantine_after=1000))
    holder = threading.Thread(target=lambda: pytest.raises(PluginFault, plugin.react, {"spin": 1}))
    holder.start()
    try:
        time.sleep(0.1)  # the only instance is now spinning on the other thread, up to its 2 s
        with pytest.raises(NoIdleInstance):
            plugin.react_encoded(EMPTY, "x", "sync", idle_only=True)
        # Refused while the instance was still busy: it did not wait for it (the mechanism, not a speed).
        assert holder.is_alive(), "idle_only waited for the busy instance"
    finally:
        holder.join()
    # The refused call ran nothing and counted nothing: the one fault is the holder's timeout.
    assert plugin.state.faults == {"timeout": 1} and not plugin.state.reactions


def test_no_instance_is_made_after_a_fault(make_plugin: MakePlugin) -> None:
    plugin = make_plugin(react=TRAP_UNLESS_EMPTY, initialize="(nop)", limits=Limits(pool_size=1))
    with pytest.raises(PluginFault):
        plugin.react({"trap": 1})  # the instance is discarded: the next call would have to make one
    faults_before = dict(plugin.state.faults)
    with pytest.raises(NoIdleInstance):
        plugin.react_encoded(EMPTY, "x", "sync", idle_only=True)
    assert plugin.state.faults == faults_before
    assert plugin.react_encoded(EMPTY, "x", "sync") == Reaction()  # allowed to make one: it does
    assert plugin.react_encoded(EMPTY, "x", "sync", idle_only=True) == Reaction()
