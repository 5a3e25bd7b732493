"""Host functions charge before they work and bound their input.

Each hostile case is the worst call an attacker can make (10 MB of newlines in one `fd_write`, 8 M
empty iovecs, a 4 G `iovs_len`, every host call in a loop). Each must end within a stated bound, with
the right errno or fault kind, the plugin's log output bounded by its rate limit, and the next
reaction served at once. The loops of wasmtime's own WASI calls (which cost no fuel) are in
test_wall_time.py: the per-call deadline stops them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from wasm_abi import Limits, Plugin, PluginFault, Reaction
from wasm_abi.imports import MAX_IOVECS, MAX_POLL_SUBSCRIPTIONS, MAX_RANDOM_BYTES

MakePlugin = Callable[..., Plugin]

WASI = """
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "eventgateway" "log" (func $log (param i32 i32 i32)))
"""
TEN_MB = 10_000_000
DATA_AT = 65536
#: 10 MB of data + 64 KiB below it: 170 pages.
BIG_MEMORY = '(memory (export "memory") 170)'


def require(call: str, errno: int) -> str:
    return f"(if (i32.ne {call} (i32.const {errno})) (then unreachable))"


def newlines(n: int) -> str:
    return f"(memory.fill (i32.const {DATA_AT}) (i32.const 10) (i32.const {n}))"


def iovec(at: int, ptr: str, length: str) -> str:
    return f"(i32.store (i32.const {at}) {ptr}) (i32.store (i32.const {at + 4}) {length})"


def timed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.monotonic()
    try:
        result: object = call()
    except PluginFault as fault:
        result = fault
    return result, time.monotonic() - started


#: Deadlines that fuel always beats: these tests prove that fuel ends a loop of host calls (the fault's
#: kind says which limit ended it). Whether the default fuel also fits the default deadlines is a speed
#: question, measured by bench/bench_fuel_wall.py; the times asserted here are hang guards.
FUEL_ENDS_IT = Limits(sync_timeout=5.0, async_timeout=20.0)


def plugin_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "wasm_abi.plugin"]


def assert_log_bounded(caplog: pytest.LogCaptureFixture, elapsed: float, limits: Limits | None = None) -> None:
    """The burst, what the rate refills meanwhile, and at most two host notes per refill."""
    limits = limits or Limits()
    bound = limits.log_burst + 3 * limits.log_rate_per_second * elapsed + 2
    assert len(plugin_lines(caplog)) <= bound


def test_one_fd_write_of_10_mb_of_newlines_is_a_short_write(make_plugin: MakePlugin,
                                                           plugin_logs: pytest.LogCaptureFixture) -> None:
    """Taken up to max_write_bytes (64 KiB) and reported as written: a short write, which WASI allows."""
    limits = Limits()
    react = f"""{iovec(600, f"(i32.const {DATA_AT})", f"(i32.const {TEN_MB})")}
      {require("(call $fd_write (i32.const 1) (i32.const 600) (i32.const 1) (i32.const 608))", 0)}
      (if (i32.ne (i32.load (i32.const 608)) (i32.const {limits.max_write_bytes})) (then unreachable))
      (i64.const 0)"""
    plugin = make_plugin(name="flood", imports=WASI, react=react, memory=BIG_MEMORY, initialize=newlines(TEN_MB))
    result, elapsed = timed(lambda: plugin.react({}))
    assert result == Reaction()
    assert elapsed < 5.0  # a hang guard: the short write is checked in the plugin
    lines = plugin_lines(plugin_logs)
    assert len(lines) <= limits.log_burst + 1  # the burst, then one "rate limit hit"
    assert any("log rate limit of 100 messages/s hit" in line for line in lines)


def test_writing_10_mb_of_newlines_in_a_loop_runs_out_of_fuel(make_plugin: MakePlugin,
                                                             plugin_logs: pytest.LogCaptureFixture) -> None:
    """What a libc does with short writes: write the rest again, until done. Each call pays its bytes
    in fuel before they are copied, so the loop ends as `out_of_fuel`, fast, with the log bounded."""
    react = f"""(local.set $ptr (i32.const 0))
      (loop $more
        {iovec(600, f"(i32.add (i32.const {DATA_AT}) (local.get $ptr))", f"(i32.sub (i32.const {TEN_MB}) (local.get $ptr))")}
        (if (i32.eqz (call $fd_write (i32.const 1) (i32.const 600) (i32.const 1) (i32.const 608)))
          (then (local.set $ptr (i32.add (local.get $ptr) (i32.load (i32.const 608))))))
        (br_if $more (i32.lt_u (local.get $ptr) (i32.const {TEN_MB}))))
      (i64.const 0)"""
    plugin = make_plugin(name="flood", imports=WASI, react=react, memory=BIG_MEMORY, initialize=newlines(TEN_MB),
                         limits=FUEL_ENDS_IT)
    result, elapsed = timed(lambda: plugin.react({}))
    assert isinstance(result, PluginFault) and result.kind == "out_of_fuel", result
    assert elapsed < 5.0  # a hang guard: fuel ended it (the kind), not the deadline
    assert_log_bounded(plugin_logs, elapsed)
    quiet = make_plugin(name="after", reaction={})
    quiet_result, quiet_elapsed = timed(lambda: quiet.react({}))
    assert quiet_result == Reaction() and quiet_elapsed < 1.0


@pytest.mark.parametrize("count", [MAX_IOVECS + 1, 8_000_000, 0xFFFFFFFF])
def test_too_many_iovecs_is_einval_before_any_work(make_plugin: MakePlugin, count: int) -> None:
    react = f"""{require(f"(call $fd_write (i32.const 1) (i32.const 0) (i32.const {count}) (i32.const 608))", 28)}
      (i64.const 0)"""
    plugin = make_plugin(imports=WASI, react=react, memory=BIG_MEMORY)
    result, elapsed = timed(lambda: plugin.react({}))
    assert isinstance(result, Reaction) and result.fuel_used < 10_000, result
    assert elapsed < 1.0  # a hang guard: the fuel used says no work was done


def test_8m_empty_iovecs_in_a_memory_that_holds_them_are_refused_too(make_plugin: MakePlugin) -> None:
    """64 MB of iovec table in a 64 MiB memory: refused by count, nothing copied or parsed."""
    react = f"""{require("(call $fd_write (i32.const 1) (i32.const 0) (i32.const 8000000) (i32.const 8))", 28)}
      (i64.const 0)"""
    plugin = make_plugin(imports=WASI, react=react, memory='(memory (export "memory") 1000)')
    result, elapsed = timed(lambda: plugin.react({}))
    assert result == Reaction() and elapsed < 1.0  # a hang guard: EINVAL is checked in the plugin


@pytest.mark.parametrize("length", [0, 1])
def test_the_most_iovecs_in_a_loop_run_out_of_fuel(make_plugin: MakePlugin, length: int,
                                                   plugin_logs: pytest.LogCaptureFixture) -> None:
    """1 024 iovecs (empty, or one newline each) per call, forever: paid per iovec before the table is read."""
    fill = "".join(f" {iovec(4096 + 8 * i, f'(i32.const {DATA_AT})', f'(i32.const {length})')}" for i in range(8))
    react = f"""{newlines(16)}
      (local.set $ptr (i32.const 4096))
      (loop $fill {fill.replace("(i32.const 4096)", "(local.get $ptr)")}
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 8)))
        (br_if $fill (i32.lt_u (local.get $ptr) (i32.const {4096 + 8 * MAX_IOVECS}))))
      (loop $l (drop (call $fd_write (i32.const 2) (i32.const 4096) (i32.const {MAX_IOVECS}) (i32.const 608))) (br $l))
      (i64.const 0)"""
    plugin = make_plugin(imports=WASI, react=react, memory='(memory (export "memory") 2)', limits=FUEL_ENDS_IT)
    result, elapsed = timed(lambda: plugin.react({}))
    assert isinstance(result, PluginFault) and result.kind == "out_of_fuel", result
    assert elapsed < 5.0  # a hang guard: fuel ended it (the kind), not the deadline
    assert_log_bounded(plugin_logs, elapsed)


LOOPS = {
    "random_get 1 MiB": f"(drop (call $random_get (i32.const {DATA_AT}) (i32.const {MAX_RANDOM_BYTES})))",
    "poll_oneoff 1024 subscriptions": f"(drop (call $poll_oneoff (i32.const {DATA_AT}) (i32.const {DATA_AT + 49152}) "
                                      f"(i32.const {MAX_POLL_SUBSCRIPTIONS}) (i32.const 608)))",
    "log 10 MB (4 KiB copied)": f"(call $log (i32.const 1) (i32.const 0) (i32.const {TEN_MB}))",
    "fd_write 64 KiB": f"{iovec(600, f'(i32.const {DATA_AT})', '(i32.const 65536)')} "
                       "(drop (call $fd_write (i32.const 1) (i32.const 600) (i32.const 1) (i32.const 608)))",
}


@pytest.mark.parametrize("name", list(LOOPS))
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_every_host_call_in_a_loop_runs_out_of_fuel(make_plugin: MakePlugin, name: str, mode: str,
                                                    plugin_logs: pytest.LogCaptureFixture) -> None:
    """Fuel, not the deadline, ends them (the deadline is the net): each call pays for its work first.
    Async has 10x the fuel (100 M) and the same bound per unit of fuel. The deadlines are long here, so
    the fault's kind is the proof; how the default fuel compares with the default deadlines (50 ms, 1 s)
    is measured by bench/bench_fuel_wall.py."""
    react = f"(loop $l {LOOPS[name]} (br $l)) (i64.const 0)"
    plugin = make_plugin(imports=WASI, react=react, memory=BIG_MEMORY, limits=FUEL_ENDS_IT)
    result, elapsed = timed(lambda: plugin.react({}, mode=mode))
    assert isinstance(result, PluginFault) and result.kind == "out_of_fuel", result
    assert elapsed < (5.0 if mode == "sync" else 20.0), f"{name} ({mode}): {elapsed:.3f}s"  # hang guards
    assert_log_bounded(plugin_logs, elapsed)


def test_random_get_over_1_mib_is_einval(make_plugin: MakePlugin) -> None:
    react = f"""{require(f"(call $random_get (i32.const {DATA_AT}) (i32.const {MAX_RANDOM_BYTES + 1}))", 28)}
      {require(f"(call $random_get (i32.const {DATA_AT}) (i32.const {MAX_RANDOM_BYTES}))", 0)}
      (i64.const 0)"""
    plugin = make_plugin(imports=WASI, react=react, memory=BIG_MEMORY)
    assert plugin.react({}) == Reaction()


def test_a_batch_of_lines_keeps_the_rate_limit_rules(make_plugin: MakePlugin,
                                                    plugin_logs: pytest.LogCaptureFixture) -> None:
    """1 000 lines in one write against a burst of 10: the first 10 go out, then one "rate limit hit";
    when logging resumes, one message says how many were dropped (990), then the next line."""
    react = f"""{newlines(1000)} (i32.store8 (i32.const {DATA_AT + 1000}) (i32.const 10))
      (if (i32.eq (local.get $len) (i32.const 1))
        (then {iovec(600, f"(i32.const {DATA_AT})", "(i32.const 1000)")})
        (else {iovec(600, f"(i32.const {DATA_AT + 1000})", "(i32.const 1)")}))
      {require("(call $fd_write (i32.const 1) (i32.const 600) (i32.const 1) (i32.const 608))", 0)}
      (i64.const 0)"""
    plugin = make_plugin(name="batch", imports=WASI, react=react, memory='(memory (export "memory") 2)',
                         limits=Limits(log_burst=10, log_rate_per_second=5.0))
    plugin.react({})
    lines = plugin_lines(plugin_logs)
    assert lines == ["[plugin batch] "] * 10 + [
        "[plugin batch] (host) log rate limit of 5 messages/s hit; dropping messages until it recovers"]
    time.sleep(0.3)  # one token back
    plugin.react({"again": 1})
    assert plugin_lines(plugin_logs)[len(lines):] == [
        "[plugin batch] (host) 990 log messages were dropped by the rate limit", "[plugin batch] "]
    assert [r.levelno for r in plugin_logs.records if r.name == "wasm_abi.plugin"][10] == logging.WARNING
