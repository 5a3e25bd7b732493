"""Prototype checks of run_stage against hostile plugins (not a test suite: a demonstration).

Run: python -m bench.prototypes.stage_runner.hostile"""
from __future__ import annotations

import ctypes
import tempfile
import time
from ctypes import c_uint64, c_void_p
from pathlib import Path

import msgpack
import wasmtime

from bench.bench_gateway import KIT, STAGES, _hex
from bench.prototypes.stage_runner.bench_stage import StageResult, load_runner, make_api, plugin_call

ALLOC = """  (func (export "alloc") (param $size i32) (result i32)
    (if (global.get $reset_pending)
      (then (global.set $heap (global.get $keep)) (global.set $reset_pending (i32.const 0))))
    (if (i32.lt_s (local.get $size) (i32.const 0)) (then (return (i32.const 0))))
    (call $bump (local.get $size)))"""


def module(on_react: str, alloc: str | None = None) -> bytes:
    kit = KIT.read_text()
    assert ALLOC in kit
    if alloc is not None:
        kit = kit.replace(ALLOC, alloc)
    segments, subscribe, at = [], [], 2048
    for event_type in STAGES:
        segments.append(f'(data (i32.const {at}) "{_hex(event_type.encode())}")')
        subscribe.append(f"(call $w_subscription (i32.const {at}) (i32.const {len(event_type)}) (i32.const 0))")
        at += 128
    body = "\n".join(segments) + f"""
  (func $on_subscriptions (result i64)
    (call $w_begin) (call $w_array (i32.const {len(STAGES)})) {' '.join(subscribe)} (call $w_end))
  (func $on_init (param $config i32) (result i64) (global.get $CONTINUE))
  (func $on_react (param $event i32) (result i64) {on_react})
"""
    return bytes(wasmtime.wat2wasm("(module\n" + kit + "\n" + body + "\n)"))


OK = "(global.get $CONTINUE)"
CASES = {
    # grows memory by a page inside react, returns an empty map (continue) written in the new page
    "grow_then_result": """(local $page i32) (local.set $page (memory.grow (i32.const 1)))
      (i32.store8 (i32.shl (local.get $page) (i32.const 16)) (i32.const 0x80))
      (i64.or (i64.shl (i64.extend_i32_u (i32.shl (local.get $page) (i32.const 16))) (i64.const 32)) (i64.const 1))""",
    "result_out_of_bounds": "(i64.or (i64.shl (i64.const 0xFFFF0000) (i64.const 32)) (i64.const 16))",
    "result_too_large": "(i64.const 0x200000)",  # ptr 0, len 2 MiB (> max_output 1 MiB)
    "trap": "unreachable",
    "spin": "(loop $l (br $l)) (global.get $CONTINUE)",
}
ALLOCS = {
    "alloc_out_of_bounds": ALLOC.replace("(call $bump (local.get $size)))",
                                         "(if (i32.gt_u (local.get $size) (i32.const 100)) (then (return (i32.const 0x7FFFFFF0))))\n    (call $bump (local.get $size)))"),
    "alloc_zero": ALLOC.replace("(call $bump (local.get $size)))",
                                "(if (i32.gt_u (local.get $size) (i32.const 100)) (then (return (i32.const 0))))\n    (call $bump (local.get $size)))"),
}
STATUS = ["continue", "result", "error", "trap", "alloc_zero", "alloc_oob", "output_large", "output_oob", "fuel_error"]


def main() -> None:
    from gateway.events import system_events
    from gateway.plugins.loading import load_plugin, spec_from_path

    tmp = Path(tempfile.mkdtemp())

    def load(name: str, wasm: bytes):
        path = tmp / f"{name}.wasm"
        path.write_bytes(wasm)
        return load_plugin(spec_from_path(path, 0))

    good = load("good", module(OK))
    event = {"specversion": "1.0", "type": "bench.event", "source": "/bench", "id": "1-1", "data": {"n": 1}}
    payload = msgpack.packb(system_events.for_plugins(system_events.event_received(event, "/b", {})), use_bin_type=True)
    print("payload bytes:", len(payload))
    runners = {g: load_runner(g) for g in ("keep", "per-call")}
    apis = {"keep": make_api(False), "per-call": make_api(True)}
    fuel_used = (c_uint64 * 3)()
    res = StageResult()
    from wasm_abi.engine import TICKER  # noqa: F401  (the ticker runs once an engine exists)

    def run(bad_name: str, wasm: bytes, gil: str = "per-call", fuel: int = 10_000_000):
        bad = load(bad_name, wasm)
        g1, b, g2 = good.host._pool.acquire(), bad.host._pool.acquire(), good.host._pool.acquire()
        calls = [plugin_call(i) for i in (g1, b, g2)]
        arr = (c_void_p * 3)(*[ctypes.addressof(c) for c in calls])
        size_before = calls[1].mem_size
        started = time.perf_counter()
        done = runners[gil](ctypes.addressof(apis[gil]), 3, ctypes.addressof(arr), payload, len(payload), fuel,
                            ctypes.addressof(fuel_used), ctypes.addressof(res))
        wall = time.perf_counter() - started
        line = (f"{bad_name:<22} gil={gil:<8} done={done} status={STATUS[res.status]:<12} index={res.index} "
                f"phase={'alloc' if res.phase == 0 else 'react'} ptr={res.ptr:#x} len={res.len} size={res.size} "
                f"fuel_used[0]={fuel_used[0]} mem {size_before}->{calls[1].mem_size} wall={wall * 1e3:.1f} ms")
        print(line)
        if res.status == 3:
            try:
                raise b._fault(None, "react" if res.phase else "alloc (before react)", "sync_timeout 0.05 s")
            except Exception as exc:  # the existing code names the fault
                print("    ->", type(exc).__name__, getattr(exc, "kind", ""), str(exc).splitlines()[0][:110])
            bad.host._pool.discard(b)
        elif res.status == 1:
            print("    -> bytes", bytes(b._view[res.ptr:res.ptr + res.len]))
        for inst in (g1, g2):
            good.host._pool.release(inst)

    for name, react in CASES.items():
        if name == "spin":
            continue
        run(name, module(react))
    for name, alloc in ALLOCS.items():
        run(name, module(OK, alloc))
    spin = module(CASES["spin"])
    run("spin", spin, "per-call", fuel=10**12)
    run("spin", spin, "keep", fuel=2 * 10**9)


if __name__ == "__main__":
    main()
