"""Faults that alternate with successes: quarantine on a fault rate, and a CPU budget for the fresh
instances faults make the host build (issue 10, "amplification").

Before these rules only `quarantine_after` consecutive faults quarantined a plugin: one trapping on
every other event was never quarantined, and each trap made the next event rebuild an instance
(`_initialize` + `init` under the 5 s load budget), i.e. up to the whole load budget of CPU per event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from wasm_abi import Limits, Plugin, PluginFault, Reaction

MakePlugin = Callable[..., Plugin]

# Traps on every `period`-th call of an instance: a fresh instance (after each trap) starts counting
# again, so the plugin answers ok, trap, ok, trap... for period 2. Never two faults in a row.
EVERY_NTH_CALL_TRAPS = """
  (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
  (if (i32.eq (global.get $calls) (i32.const {period})) (then unreachable))
  (i64.const 0)"""
CALLS = "(global $calls (mut i32) (i32.const 0))"


def spin(iterations: int) -> str:
    """A WAT expression that loops ``iterations`` times (about 5 fuel per iteration) and gives i64 0;
    it counts in the global `$i` (declared by `SPIN`)."""
    return f"""(block (result i64)
      (global.set $i (i32.const 0))
      (loop $spin
        (global.set $i (i32.add (global.get $i) (i32.const 1)))
        (br_if $spin (i32.lt_u (global.get $i) (i32.const {iterations}))))
      (i64.const 0))"""


SPIN = "(global $i (mut i32) (i32.const 0))"


def alternating(make_plugin: MakePlugin, limits: Limits | None = None, period: int = 2, init: str | None = None,
                name: str = "alternating") -> Plugin:
    return make_plugin(name=name, react=EVERY_NTH_CALL_TRAPS.format(period=period), extra=CALLS + SPIN, init=init,
                       limits=limits)


def wait_for_release(plugin: Plugin, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while plugin.state.quarantined:
        assert time.monotonic() < deadline, "the quarantine never ended"
        time.sleep(0.02)


def react_until_quarantined(plugin: Plugin, events: int) -> tuple[int, list[str]]:
    """Send up to ``events`` events; return how many ran before the first `quarantined` answer, and
    the kind of every fault."""
    kinds: list[str] = []
    for sent in range(events):
        try:
            plugin.react({"n": sent})
        except PluginFault as fault:
            kinds.append(fault.kind)
            if fault.kind == "quarantined":
                return sent, kinds
    return events, kinds


def test_a_plugin_faulting_on_every_other_event_is_quarantined(make_plugin: MakePlugin) -> None:
    plugin = alternating(make_plugin)  # default limits: 10 faults in 100 reactions quarantine
    limits = plugin.limits
    assert limits.quarantine_after == 3 and limits.fault_window_max == 10 and limits.fault_window == 100
    for _ in range(2 * limits.fault_window_max):
        state = plugin.state
        assert state.active and state.consecutive_faults <= 1  # the consecutive rule never fires
        try:
            plugin.react({})
        except PluginFault as fault:
            assert fault.kind == "trap"
    state = plugin.state
    # Ten traps in twenty reactions: quarantined by the fault rate, within a bounded number of events.
    assert state.quarantined and state.faults == {"trap": 10} and state.reactions == {"sync": 10}
    assert state.quarantine_reason is not None and "10 faults in its last 19 reactions" in state.quarantine_reason
    assert "Limits.fault_window_max = 10" in state.quarantine_reason
    with pytest.raises(PluginFault, match=r"quarantined after 10 faults .*fault_window_max") as info:
        plugin.react({})  # nothing runs
    assert info.value.kind == "quarantined"
    assert plugin.state.faults == {"trap": 10, "quarantined": 1} and plugin.state.reactions == {"sync": 10}


def test_a_rate_quarantine_grows_while_the_plugin_keeps_faulting(make_plugin: MakePlugin) -> None:
    """A good probe ends the quarantine, but the window still holds the faults: the next fault
    quarantines the plugin again at once, for twice as long (the consecutive rule's good probe
    would reset the backoff, so an alternating plugin would be probed every second for ever)."""
    limits = Limits(fault_window_max=4, fault_window=10, quarantine_backoff=0.2, quarantine_max_backoff=10)
    plugin = alternating(make_plugin, limits)
    sent, kinds = react_until_quarantined(plugin, 20)
    assert kinds == ["trap"] * 4 + ["quarantined"] and sent == 8
    state = plugin.state
    assert state.retry_at is not None and state.last_fault_at is not None
    assert state.retry_at - state.last_fault_at == pytest.approx(0.2)
    wait_for_release(plugin)
    assert plugin.react({}) == Reaction()  # the probe succeeds: the quarantine ends...
    assert plugin.state.active
    with pytest.raises(PluginFault) as info:
        plugin.react({})  # ...and the next fault starts a longer one
    assert info.value.kind == "trap"
    state = plugin.state
    assert state.quarantined and state.retry_at is not None and state.last_fault_at is not None
    assert state.retry_at - state.last_fault_at == pytest.approx(0.4)


def test_rare_faults_are_not_quarantined(make_plugin: MakePlugin) -> None:
    """One fault in 20 reactions is 5 in any window of 100: under the default rate limit of 10."""
    plugin = alternating(make_plugin, period=20)
    for n in range(300):
        try:
            plugin.react({"n": n})
        except PluginFault as fault:
            assert fault.kind == "trap"
    state = plugin.state
    assert state.active and state.faults == {"trap": 15} and state.reactions == {"sync": 285}
    assert state.quarantine_reason is None


def test_an_expensive_plugin_faulting_on_every_other_event_costs_bounded_cpu(make_plugin: MakePlugin) -> None:
    """`init` burns ~2.4 G fuel (~0.3 s of CPU: an operator gave the plugin a load budget of 4 G fuel)
    and `react` traps on every other call. Unbounded, each trap makes the next event rebuild an
    instance: 25 rebuilds in 50 events, ~7 s of CPU. With the rebuild budget (1 s of CPU per 60 s by
    default) the plugin is quarantined after a few rebuilds and every later event is answered at once."""
    limits = Limits(load_fuel=4_000_000_000)
    plugin = alternating(make_plugin, limits, init=spin(300_000_000), name="expensive")
    assert plugin.limits.rebuild_budget == 1.0 and plugin.limits.rebuild_window == 60.0
    cpu_started = time.process_time()
    kinds: list[str] = []
    slowest_refusal = 0.0
    for n in range(50):
        started = time.perf_counter()
        try:
            plugin.react({"n": n})
        except PluginFault as fault:
            kinds.append(fault.kind)
            if fault.kind == "quarantined":
                slowest_refusal = max(slowest_refusal, time.perf_counter() - started)
    cpu = time.process_time() - cpu_started
    state = plugin.state
    # Bounded: the budget (1 s) plus the rebuild that overdrew it, against ~10 s unbounded.
    assert cpu < 4.0, f"50 events cost {cpu:.2f}s of CPU"
    assert state.quarantined and state.quarantine_reason is not None
    assert "over its rebuild budget (Limits.rebuild_budget = 1s per Limits.rebuild_window = 60s)" in \
        state.quarantine_reason
    assert 1.0 <= state.rebuild_seconds < 2.5
    # A few ok/trap pairs (as many as the budget paid for), then every event refused.
    assert kinds.count("trap") <= 10 and len(kinds) == 50 - kinds.count("trap")
    assert state.faults["quarantined"] == kinds.count("quarantined")
    assert slowest_refusal < 1.0  # a hang guard (10x): a refusal is a fault, never a rebuild (counted above)
    # The quarantine lasts its backoff (1 s) at least, longer when refilling the overdraft (at 1 s per
    # 60 s) takes longer: measured from the fault, not from now (the test has run on since).
    assert state.retry_at is not None and state.last_fault_at is not None
    assert state.retry_at - state.last_fault_at >= 1.0 - 1e-3


def test_the_rebuild_budget_refills(make_plugin: MakePlugin) -> None:
    """With a budget of 0.05 s per 0.5 s, a plugin whose rebuilds cost ~0.1 s is quarantined at
    its second rebuild, and its probe after the refill builds a fresh instance and serves."""
    limits = Limits(rebuild_budget=0.05, rebuild_window=0.5, quarantine_backoff=0.05, load_fuel=2_000_000_000)
    plugin = alternating(make_plugin, limits, init=spin(120_000_000), name="refill")
    assert plugin.react({}) == Reaction()
    with pytest.raises(PluginFault):
        plugin.react({})  # trap: the next call needs a fresh instance
    assert plugin.react({}) == Reaction()  # the budget is full: rebuilt (and overdrawn)
    with pytest.raises(PluginFault):
        plugin.react({})
    with pytest.raises(PluginFault, match="over its rebuild budget") as info:
        plugin.react({})
    assert info.value.kind == "quarantined"
    state = plugin.state
    assert state.retry_at is not None and state.last_fault_at is not None
    wait_for_release(plugin)
    assert plugin.react({}) == Reaction()  # the probe rebuilt the instance
    assert plugin.state.active and plugin.state.rebuild_seconds > 0.05


def test_growing_the_pool_is_not_charged(make_plugin: MakePlugin) -> None:
    """Instances made for concurrency (not to replace a faulted one) never touch the rebuild budget:
    an expensive but well-behaved plugin scales to its pool size without being quarantined."""
    # A long sync deadline: four threads spinning at once on a loaded machine must not end as timeouts
    # (the deadline is not what this test is about).
    limits = Limits(pool_size=4, rebuild_budget=0.01, sync_timeout=5.0)
    plugin = make_plugin(name="busy", react=spin(500_000), init=spin(20_000_000), extra=SPIN,
                         limits=limits)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(5):
                plugin.react({})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    state = plugin.state
    assert state.active and state.rebuild_seconds == 0.0 and state.reactions == {"sync": 20}
