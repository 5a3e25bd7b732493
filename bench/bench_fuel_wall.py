"""Wall time per 10 M fuel, by instruction class: what fuel does (and does not) bound.

Fuel counts Wasm instructions, one unit each, whatever the instruction does. Most classes cost
about the same per unit, but some do far more work per unit (a `memory.fill` of 64 MiB is a few
fuel; a refused `memory.grow` goes through the store's limiter), and host calls run Python. This
bench runs each class as a react body that loops forever, under a real plugin instance of the
default limits, with 10 M fuel (the default `sync_fuel`) and a wall-clock deadline of `--deadline`
seconds, and reports:

- fuel per iteration and wall time per iteration;
- wall time per 10 M fuel (measured wall time x 10 M / fuel used), worst of `--runs` runs;
- how a default sync reaction of that class ends (out of fuel or the sync deadline) and in how long.

A class that ends on fuel in less than the sync deadline is bounded by fuel; one whose 10 M fuel
would take longer is the reason the per-call deadline exists (see ABI.md section 8).

Run: `python -m bench.bench_fuel_wall` (also run by `python -m bench`).
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import time
from dataclasses import dataclass

from wasm_abi import Limits, Plugin
from wasm_abi.errors import PluginFault
from wasm_abi.instance import PluginInstance
from wasm_abi.native import get_fuel

FUEL = 10_000_000
MIB = 1024 * 1024

WASI_IMPORTS = """
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_get" (func $fd_filestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
"""
LOG_IMPORT = '(import "eventgateway" "log" (func $log (param i32 i32 i32)))'


@dataclass
class Case:
    name: str
    body: str  # the loop body (one iteration), inside `(loop $l ... (br $l))`
    imports: str = ""
    extra: str = ""
    memory_pages: int = 1
    setup: str = ""  # before the loop


# A 1 KiB write of newlines for the fd_write rows: iovec at 64, nwritten at 72, data at 4096.
FD_WRITE_SETUP = """(i32.store (i32.const 64) (i32.const 4096)) (i32.store (i32.const 68) (i32.const {n}))
    (memory.fill (i32.const 4096) (i32.const 10) (i32.const {n}))"""

CASES = [
    Case("plain ops (i32.add)", "(local.set $i (i32.add (local.get $i) (i32.const 1)))"),
    Case("division (i64.div_u)", "(local.set $j (i64.div_u (i64.const -1) (i64.extend_i32_u (i32.or (local.get $i) (i32.const 3)))))"),
    Case("calls", "(local.set $i (call $f (local.get $i)))",
         extra='(func $f (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))'),
    Case("call_indirect", "(local.set $i (call_indirect (type $t) (local.get $i) (i32.const 0)))",
         extra='(type $t (func (param i32) (result i32)))'
               '(table 1 funcref) (elem (i32.const 0) $f)'
               '(func $f (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))'),
    Case("memory.grow (0 pages)", "(local.set $i (memory.grow (i32.const 0)))"),
    Case("memory.grow refused (at the limit)", "(local.set $i (memory.grow (i32.const 1)))", memory_pages=1024),
    Case("table.grow refused (at the limit)", "(local.set $i (table.grow $tb (ref.null func) (i32.const 1)))",
         extra="(table $tb 10000 funcref)"),
    Case("table.fill 10 000 elements", "(table.fill $tb (i32.const 0) (ref.null func) (i32.const 10000))",
         extra="(table $tb 10000 funcref)"),
    Case("memory.fill 64 KiB", "(memory.fill (i32.const 0) (local.get $i) (i32.const 65536))", memory_pages=1024),
    Case("memory.fill 64 MiB", f"(memory.fill (i32.const 0) (local.get $i) (i32.const {64 * MIB}))",
         memory_pages=1024),
    Case("memory.copy 32 MiB", f"(memory.copy (i32.const {32 * MIB}) (i32.const 0) (i32.const {32 * MIB}))",
         memory_pages=1024),
    Case("host call: eventgateway.log 100 B", "(call $log (i32.const 1) (i32.const 4096) (i32.const 100))",
         imports=LOG_IMPORT),
    Case("host call: fd_write 1 KiB of newlines",
         "(local.set $i (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 72)))",
         imports=WASI_IMPORTS, setup=FD_WRITE_SETUP.format(n=1024), memory_pages=4),
    Case("host call: fd_write 64 KiB of newlines",
         "(local.set $i (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 72)))",
         imports=WASI_IMPORTS, setup=FD_WRITE_SETUP.format(n=65536), memory_pages=4),
    Case("host call: random_get 64 KiB", "(local.set $i (call $random_get (i32.const 4096) (i32.const 65536)))",
         imports=WASI_IMPORTS, memory_pages=4),
    Case("WASI (wasmtime's): fd_filestat_get", "(local.set $i (call $fd_filestat_get (i32.const 1) (i32.const 256)))",
         imports=WASI_IMPORTS),
    Case("WASI (wasmtime's): clock_time_get",
         "(local.set $i (call $clock_time_get (i32.const 1) (i64.const 0) (i32.const 256)))",
         imports=WASI_IMPORTS),
]


def case_wat(case: Case) -> str:
    from tests.wat import plugin_wat  # the same builder the tests use

    react = f"""(block (result i64)
    (local.set $i (i32.const 1))
    {case.setup}
    (loop $l {case.body} (br $l))
    (i64.const 0))"""
    wat = plugin_wat(react=react, imports=case.imports, extra=case.extra,
                     memory=f'(memory (export "memory") {case.memory_pages})')
    # The react body needs its locals ($n counts iterations in `_fuel_per_iteration`): add them to the react function's signature line.
    return wat.replace("(local $out i64)", "(local $out i64) (local $i i32) (local $j i64) (local $n i64)", 1)


@dataclass
class Result:
    fuel: int
    wall: float
    kind: str


def run_once(plugin: Plugin, fuel: int) -> Result:
    """One react call on a fresh instance with `fuel`, as an async call: its wall-clock net is
    the plugin's `async_timeout` (the bench's measuring deadline)."""
    instance = PluginInstance(plugin._module)
    started = time.perf_counter()
    try:
        instance.react(b"\x80", fuel, False)
        kind = "returned"
    except PluginFault as fault:
        kind = fault.kind
    wall = time.perf_counter() - started
    left = ctypes.c_uint64(0)
    get_fuel(instance._ctx, ctypes.addressof(left))
    return Result(fuel - left.value, wall, kind)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--deadline", type=float, default=1.0,
                        help="wall-clock net of the measuring runs, seconds (default 1)")
    parser.add_argument("--only", default="", help="run only the classes whose name contains this")
    # `python -m bench` calls main() with no arguments: its own argv is not ours.
    args = parser.parse_args(argv if argv is not None else [])
    _quiet_plugin_log()

    defaults = Limits()
    measure_limits = Limits(async_timeout=args.deadline, async_fuel=FUEL)
    print(f"fuel per run: {FUEL:,}; measuring deadline {args.deadline:g} s; worst of {args.runs} runs; "
          f"default sync limits: {defaults.sync_fuel:,} fuel, {defaults.sync_timeout * 1000:g} ms")
    print("| class | fuel / iteration | wall / iteration | wall per 10 M fuel (worst) | default sync reaction |")
    print("|---|---:|---:|---:|---|")
    for case in CASES:
        if args.only and args.only not in case.name:
            continue
        wat = case_wat(case)
        plugin = Plugin.from_bytes(wat.encode(), name="bench-fuel", limits=measure_limits)
        results = [run_once(plugin, FUEL) for _ in range(args.runs)]
        worst = max(r.wall * FUEL / max(r.fuel, 1) for r in results)
        per_iter_fuel = _fuel_per_iteration(case)
        per_iter_wall = max(r.wall * per_iter_fuel / max(r.fuel, 1) for r in results)
        plugin.close()
        print(f"| {case.name} | {per_iter_fuel:.0f} | {_fmt(per_iter_wall)} | {_fmt(worst)} | "
              f"{_default_sync(wat)} |", flush=True)


def _fuel_per_iteration(case: Case) -> float:
    """Fuel of one iteration: a counted version of the loop run 10 and 20 times, minus the same
    with an empty body (the counter's own cost), plus the endless loop's one `br`."""

    def fuel_of(body: str, n: int) -> int:
        counted = case_wat(case).replace(
            f"(loop $l {case.body} (br $l))",
            f"(local.set $n (i64.const 0)) (loop $l {body} (local.set $n (i64.add (local.get $n) (i64.const 1))) "
            f"(br_if $l (i64.lt_u (local.get $n) (i64.const {n}))))",
        )
        plugin = Plugin.from_bytes(counted.encode(), name="bench-count",
                                   limits=Limits(async_timeout=5.0, async_fuel=10**9))
        used = run_once(plugin, 10**9).fuel
        plugin.close()
        return used

    body = (fuel_of(case.body, 20) - fuel_of(case.body, 10)) / 10
    counter = (fuel_of("", 20) - fuel_of("", 10)) / 10
    return max(body - counter + 1, 1)


def _default_sync(wat: str) -> str:
    """How a sync reaction of this class ends under the default limits, and after how long."""
    plugin = Plugin.from_bytes(wat.encode(), name="bench-default")
    started = time.perf_counter()
    try:
        plugin.react({"type": "eventgateway.event.received"})
        kind = "returned"
    except PluginFault as fault:
        kind = fault.kind
    elapsed = time.perf_counter() - started
    plugin.close()
    return f"{kind} after {_fmt(elapsed)}"


def _quiet_plugin_log() -> None:
    """Plugin log lines are formatted and written as the gateway would (so their cost counts),
    but to /dev/null instead of the terminal."""
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(process)d] %(message)s"))
    plugin_logger = logging.getLogger("wasm_abi.plugin")
    plugin_logger.handlers[:] = [handler]
    plugin_logger.setLevel(logging.DEBUG)
    plugin_logger.propagate = False


def _fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.2f} µs"
    return f"{seconds * 1e9:.1f} ns"


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
