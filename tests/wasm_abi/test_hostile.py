"""Hostile plugins: each must end in its documented error, quickly, with the host healthy."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from .conftest import FakeClock
from wasm_abi import Limits, Plugin, PluginFault, PluginLoadError, Reaction

MakePlugin = Callable[..., Plugin]

LOOP = "(loop (br 0)) (i64.const 0)"
GROW_UNTIL_REFUSED = """
  (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
  unreachable"""
GROW_FOREVER = "(loop (drop (memory.grow (i32.const 1))) (br 0)) (i64.const 0)"
RECURSE = "(call $recurse (i32.const 0))"
RECURSE_FUNC = """(func $recurse (param i32) (result i64)
  (call $recurse (i32.add (local.get 0) (i32.const 1))))"""
# Continue for the empty map (1 byte of msgpack); misbehave with `bad` for anything bigger.
def only_empty_map_ok(bad: str) -> str:
    return f"(if (result i64) (i32.eq (local.get $len) (i32.const 1)) (then (i64.const 0)) (else {bad}))"

# Fuel and memory are what these limits test: deadlines far above what their fuel buys (~12 ms at worst, for
# refused memory.grow loops), so a loaded machine cannot turn a memory or fuel fault into a timeout.
SMALL = Limits(sync_fuel=1_000_000, async_fuel=1_000_000, load_fuel=2_000_000, max_memory_bytes=2 * 1024 * 1024,
               sync_timeout=5.0, async_timeout=5.0, load_timeout=5.0)


def assert_healthy(make_plugin: MakePlugin) -> None:
    """A different, well-behaved plugin still works after the fault."""
    assert make_plugin(name="bystander", reaction={"error": "fine"}).react({}) == Reaction("fine")


def test_infinite_loop_in_sync_react_runs_out_of_fuel(make_plugin: MakePlugin) -> None:
    plugin = make_plugin(react=LOOP, limits=SMALL)
    with pytest.raises(PluginFault) as info:
        plugin.react({"type": "x"})
    assert info.value.kind == "out_of_fuel"
    assert "fuel" in str(info.value) and "1000000 fuel per sync reaction" in str(info.value)
    assert plugin.state.last_fault_kind == "out_of_fuel"
    assert_healthy(make_plugin)


def test_infinite_loop_in_async_react_hits_the_deadline(make_plugin: MakePlugin) -> None:
    limits = Limits(async_fuel=10**12, async_timeout=0.05)
    plugin = make_plugin(react=LOOP, limits=limits)
    with pytest.raises(PluginFault) as info:
        plugin.react({"type": "x"}, mode="async")
    assert info.value.kind == "timeout"  # 10**12 fuel: only the deadline could have stopped it
    assert_healthy(make_plugin)


def test_sync_wall_clock_safety_net(make_plugin: MakePlugin) -> None:
    """With fuel effectively unlimited, the sync deadline (sync_timeout, set per call) still stops
    a loop; a following call gets a fresh deadline, not a stale one."""
    plugin = make_plugin(react=only_empty_map_ok(LOOP), limits=Limits(sync_fuel=10**12, sync_timeout=0.05))
    assert plugin.react({}) == Reaction()
    with pytest.raises(PluginFault) as info:
        plugin.react({"a": 1})
    assert info.value.kind == "timeout"
    time.sleep(0.4)  # far past the deadline: a stale one would trap at once
    assert plugin.react({}) == Reaction()


@pytest.mark.parametrize("where", ["initialize", "init"])
def test_infinite_loop_at_load_is_a_load_error(make_plugin: MakePlugin, where: str) -> None:
    body = {"initialize": "(loop (br 0))", "init": LOOP}[where]
    with pytest.raises(PluginLoadError) as info:
        make_plugin(limits=SMALL, **{where: body})
    assert info.value.kind == "out_of_fuel"
    assert ("_initialize" if where == "initialize" else "init") in str(info.value)
    with pytest.raises(PluginLoadError) as timed:
        make_plugin(limits=Limits(load_fuel=10**12, load_timeout=0.05), **{where: body})
    assert timed.value.kind == "timeout"
    assert_healthy(make_plugin)


def test_infinite_loop_in_start_function_is_a_load_error(make_plugin: MakePlugin) -> None:
    with pytest.raises(PluginLoadError, match="instantiation") as info:
        make_plugin(limits=SMALL, extra="(func $spin (loop (br 0))) (start $spin)")
    assert info.value.kind == "out_of_fuel"


def test_memory_growth_bomb_is_a_memory_fault(make_plugin: MakePlugin) -> None:
    plugin = make_plugin(react=GROW_UNTIL_REFUSED, limits=SMALL)
    with pytest.raises(PluginFault, match="memory at the limit of 2097152 bytes") as info:
        plugin.react({})
    assert info.value.kind == "memory"
    forever = make_plugin(react=GROW_FOREVER, limits=SMALL)
    with pytest.raises(PluginFault) as info:
        forever.react({})
    assert info.value.kind == "memory"
    assert_healthy(make_plugin)


def test_memory_that_starts_at_the_limit_is_not_blamed(make_plugin: MakePlugin) -> None:
    """A plugin whose memory starts at the limit never had a grow refused: its loop is out_of_fuel."""
    plugin = make_plugin(react=LOOP, memory='(memory (export "memory") 32)', limits=SMALL)  # 2 MiB = limit
    with pytest.raises(PluginFault) as info:
        plugin.react({})
    assert info.value.kind == "out_of_fuel"
    grower = make_plugin(react=GROW_FOREVER, memory='(memory (export "memory") 31)', limits=SMALL)
    with pytest.raises(PluginFault) as info:
        grower.react({})
    assert info.value.kind == "memory"


def test_initial_memory_over_the_limit_is_refused(make_plugin: MakePlugin) -> None:
    with pytest.raises(PluginLoadError) as info:
        make_plugin(memory='(memory (export "memory") 64)', limits=SMALL)  # 4 MiB > 2 MiB
    assert info.value.kind == "memory"


def test_event_too_big_for_memory_limit_is_a_memory_fault(make_plugin: MakePlugin) -> None:
    plugin = make_plugin(limits=SMALL)
    with pytest.raises(PluginFault, match=r"alloc\(\d+\) returned 0") as info:
        plugin.react({"blob": b"x" * (3 * 1024 * 1024)})
    assert info.value.kind == "memory"
    assert plugin.react({}) == Reaction()


def test_unbounded_recursion_is_a_trap(make_plugin: MakePlugin) -> None:
    plugin = make_plugin(react=RECURSE, extra=RECURSE_FUNC, limits=Limits(sync_fuel=10**12))
    with pytest.raises(PluginFault, match="overflowed the Wasm stack") as info:
        plugin.react({})
    assert info.value.kind == "trap"
    assert_healthy(make_plugin)


def test_unreachable_and_out_of_bounds_access_are_traps(make_plugin: MakePlugin) -> None:
    with pytest.raises(PluginFault, match="trapped") as info:
        make_plugin(react="unreachable").react({})
    assert info.value.kind == "trap"
    oob = "(drop (i32.load (i32.const 0x7ffffff0))) (i64.const 0)"
    with pytest.raises(PluginFault, match="out of bounds") as info:
        make_plugin(react=oob).react({})
    assert info.value.kind == "trap"


@pytest.mark.parametrize(
    "packed_value, message",
    [
        ((100_000 << 32) | 16, "outside its memory"),  # ptr past the end of 1 page
        ((65_530 << 32) | 100, "outside its memory"),  # straddles the end
        ((0xFFFF_FFFF << 32) | 0xFFFF, "outside its memory"),  # ptr + len overflows 32 bits
        ((0 << 32) | 0xFFFF_FFFF, "over the output limit"),  # 4 GiB length
        ((1024 << 32) | (2 * 1024 * 1024), "over the output limit"),  # just over 1 MiB
    ],
)
def test_bad_packed_pointers_are_bad_output(make_plugin: MakePlugin, packed_value: int, message: str) -> None:
    signed = packed_value - (1 << 64) if packed_value >= 1 << 63 else packed_value
    plugin = make_plugin(react=f"(i64.const {signed})")
    with pytest.raises(PluginFault, match=message) as info:
        plugin.react({})
    assert info.value.kind == "bad_output"
    assert_healthy(make_plugin)


def alloc_plugin(make_plugin: MakePlugin, body: str, more: str = "", **kw: object) -> Plugin:
    """A plugin whose `alloc` is `body`; `more` adds module fields (globals, functions)."""
    return make_plugin(omit=("alloc",), extra=f'(func (export "alloc") (param i32) (result i32) {body}) {more}', **kw)


@pytest.mark.parametrize("address", [65535, -1, -16], ids=["straddles_end", "u32_max", "negative"])
def test_alloc_returning_out_of_bounds_is_bad_output(make_plugin: MakePlugin, address: int) -> None:
    """i32 results are unsigned addresses: -1 is 4 GiB - 1, never a negative index into memory."""
    plugin = alloc_plugin(make_plugin, f"(i32.const {address})")
    with pytest.raises(PluginFault, match=rf"alloc\(\d+\) returned {address & 0xFFFF_FFFF}, past the end of memory"
                       ) as info:
        plugin.react({"k": "v" * 100})
    assert info.value.kind == "bad_output"
    assert_healthy(make_plugin)


def test_alloc_returning_zero_is_a_memory_fault(make_plugin: MakePlugin) -> None:
    plugin = alloc_plugin(make_plugin, "(i32.const 0)")
    with pytest.raises(PluginFault, match=r"alloc\(1\) returned 0 \(out of memory\) before react") as info:
        plugin.react({})
    assert info.value.kind == "memory"
    with pytest.raises(PluginFault, match="before react") as info:
        plugin.react({}, mode="async")
    assert info.value.kind == "memory"


@pytest.mark.parametrize(
    "body, kind, message",
    [
        ("unreachable", "trap", r"alloc \(before react\) trapped"),
        ("(loop (br 0)) (i32.const 8192)", "out_of_fuel", r"alloc \(before react\) ran out of fuel"),
        ("(call $deeper (i32.const 0))", "trap", r"alloc \(before react\) overflowed the Wasm stack"),
    ],
    ids=["traps", "loops", "recurses"],
)
def test_misbehaving_alloc_is_a_fault_of_react(make_plugin: MakePlugin, body: str, kind: str, message: str) -> None:
    deeper = "(func $deeper (param i32) (result i32) (call $deeper (i32.add (local.get 0) (i32.const 1))))"
    # A good alloc while loading (init gets the config through alloc too), a bad one afterwards.
    body = f"(if (result i32) (global.get $loaded) (then {body}) (else (global.set $loaded (i32.const 1)) (i32.const 8192)))"
    plugin = alloc_plugin(make_plugin, body, limits=SMALL, init="(i64.const 0)",
                          more=f"(global $loaded (mut i32) (i32.const 0)) {deeper}")
    with pytest.raises(PluginFault, match=message) as info:
        plugin.react({})
    assert info.value.kind == kind
    assert_healthy(make_plugin)


def test_alloc_that_fails_while_loading_is_a_load_error(make_plugin: MakePlugin) -> None:
    """init's config buffer comes from alloc, so a broken alloc is found before the first event."""
    with pytest.raises(PluginLoadError, match=r"alloc \(before init\) trapped") as info:
        alloc_plugin(make_plugin, "unreachable", init="(i64.const 0)")
    assert info.value.kind == "trap"
    with pytest.raises(PluginLoadError, match=r"alloc\(1\) returned 0") as info:
        alloc_plugin(make_plugin, "(i32.const 0)", init="(i64.const 0)")
    assert info.value.kind == "memory"


def test_fault_discards_the_instance(make_plugin: MakePlugin) -> None:
    """react poisons a global, then traps on a non-empty event; a reused instance would
    answer "poisoned" to the next (empty) event."""
    react = """
      (if (result i64) (global.get $poisoned)
        (then {poisoned})
        (else
          (global.set $poisoned (i32.const 1))
          (if (result i64) (i32.gt_u (local.get $len) (i32.const 1)) (then unreachable) (else (i64.const 0)))))"""
    import msgpack

    from tests.wat import packed, wat_bytes

    body = msgpack.packb({"error": "poisoned"})
    plugin = make_plugin(
        react=react.format(poisoned=packed(4000, body)),
        extra=f"(global $poisoned (mut i32) (i32.const 0)) (data (i32.const 4000) {wat_bytes(body)})",
        limits=Limits(pool_size=1),
    )
    with pytest.raises(PluginFault):
        plugin.react({"a": 1})
    assert plugin.react({}) == Reaction()  # fresh instance: not poisoned
    assert plugin.react({}) == Reaction("poisoned")  # same instance reused after success


def test_repeated_faults_quarantine_the_plugin_with_backoff(make_plugin: MakePlugin, clock: FakeClock) -> None:
    """Steps through the backoff on a fake clock: no sleeping, and no machine is too slow for it."""
    limits = Limits(quarantine_after=2, quarantine_backoff=0.5, quarantine_max_backoff=10)
    plugin = make_plugin(react=only_empty_map_ok("unreachable"), limits=limits, clock=clock)
    for _ in range(2):
        with pytest.raises(PluginFault) as info:
            plugin.react({"a": 1})
        assert info.value.kind == "trap"
    state = plugin.state
    assert state.quarantined and state.retry_at is not None and state.last_fault_kind == "trap"
    assert state.last_fault_at == clock.wall and state.retry_at == clock.wall + 0.5
    clock.advance(0.49)
    with pytest.raises(PluginFault, match="quarantined after 2 consecutive faults") as info:
        plugin.react({})  # would succeed, but nothing runs during quarantine
    assert info.value.kind == "quarantined" and "retrying in 0.0s" in info.value.message
    clock.advance(0.01)  # the retry time: the next call is a probe
    with pytest.raises(PluginFault) as info:
        plugin.react({"a": 1})  # the probe faults: quarantined again, for twice as long
    assert info.value.kind == "trap"
    state = plugin.state
    assert state.quarantined and state.retry_at == clock.wall + 1.0  # doubled
    clock.advance(0.99)
    assert plugin.state.quarantined
    clock.advance(0.01)
    assert plugin.react({}) == Reaction()  # a good probe ends the quarantine
    state = plugin.state
    assert state.active and state.consecutive_faults == 0 and state.retry_at is None
    assert state.faults == {"trap": 3, "quarantined": 1}
    assert state.reactions == {"sync": 1}


def test_quarantine_backoff_is_capped(make_plugin: MakePlugin, clock: FakeClock) -> None:
    limits = Limits(quarantine_after=1, quarantine_backoff=0.05, quarantine_max_backoff=0.1)
    plugin = make_plugin(react="unreachable", limits=limits, clock=clock)
    spans = []
    for _ in range(4):
        retry_at = plugin.state.retry_at
        if retry_at is not None:
            clock.advance(retry_at - clock.wall + 1e-6)  # to the retry time: the next call probes
        with pytest.raises(PluginFault) as info:
            plugin.react({})
        assert info.value.kind == "trap"
        state = plugin.state
        assert state.retry_at is not None and state.last_fault_at is not None
        spans.append(round(state.retry_at - state.last_fault_at, 6))
    assert spans == [0.05, 0.1, 0.1, 0.1]
