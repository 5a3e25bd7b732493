"""Cost of the capability host calls (ABI.md section 7.1) in a sync reaction.

Rows (all measured in this run, on this machine, as the median of interleaved batches):

- `empty sync reaction` — the baseline: `Plugin.react` of a WAT plugin that calls nothing and continues,
  with a realistic `eventgateway.event.received` event (~300 bytes of msgpack).
- `+ N x kv_incr (memory)` / `+ N x metric (counter)` / `+ N x kv_get (memory, 16 B)` — the same plugin
  making N calls per reaction; the per-call cost is the difference to the baseline divided by N.
- `+ N x eventgateway.log (1 B)` / `+ 1 x eventgateway.log (1 B)` — `log` of a 1-byte message at debug level
  (the handler does nothing, the logger drops debug): the host call itself, fuel, bounds check, rate limit.
- `ratelimit example (<lang>)` — the whole sync reaction of the `ratelimit` example plugin (reads the
  event's source, one `kv_incr`, continues), for every language whose build is in build/plugins.

Run: `python -m bench.bench_capabilities` (or `just bench`).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path

from bench.bench_react import Row, measure
from tests.wasm_abi.capability_wat import BUF_AT, KV, OUT_AT, Data, cap_plugin
from wasm_abi import EVENT_RECEIVED, Grants, Limits, MemoryKv, Plugin, PluginMetrics, system_event

EVENT = system_event(EVENT_RECEIVED, {
    "event": {"specversion": "1.0", "type": "user.created", "source": "https://example.com/signup",
              "id": "4a1b7c2e-0000-4000-8000-000000000001", "datacontenttype": "application/json",
              "data": {"userId": 42, "email": "someone@example.com"}},
    "path": "/", "headers": {"Content-Type": "application/json", "User-Agent": "bench/1.0"},
})
REPO = Path(__file__).resolve().parents[1]
ROUTE_A = b"\x81\xa5route\xa1a"  # msgpack {"route": "a"}
LANGS = ("wat", "c", "zig", "rust", "assemblyscript", "go")


def looped(n: int, call: str) -> str:
    if n == 0:
        return ""
    return f"""(local.set $ptr (i32.const {n}))
      (loop $l (drop {call}) (local.set $ptr (i32.sub (local.get $ptr) (i32.const 1))) (br_if $l (local.get $ptr)))"""


def plugin(body: str, d: Data, names: tuple[str, ...], name: str) -> Plugin:
    grants = Grants(kv=MemoryKv() if any(n.startswith("kv_") for n in names) else None,
                    metrics=PluginMetrics() if "metric" in names else None)
    return Plugin.from_bytes(cap_plugin(body, d, names), name=name, grants=grants, limits=Limits())


def build_rows(n: int) -> list[Row]:
    d = Data()
    incr = f"(call $kv_incr {d.ref(b'rl:https://example.com/signup')} (i64.const 1) (i64.const 60000) (i32.const {OUT_AT}))"
    get = f"(call $kv_get {d.ref(b'k')} (i32.const {BUF_AT}) (i32.const 64))"
    metric = f"(call $metric (i32.const 0) {d.ref(b'hits')} {d.ref(ROUTE_A)} (f64.const 1))"
    bodies: list[tuple[str, str, tuple[str, ...]]] = [
        ("empty sync reaction", "", KV),
        (f"+ {n} x kv_incr (memory)", looped(n, incr), KV),
        (f"+ {n} x kv_get (memory, 16 B)", looped(n, get), KV),
        (f"+ {n} x metric (counter)", looped(n, metric), ("metric",)),
    ]
    rows = []
    for label, body, names in bodies:
        p = plugin(body, d, names, "bench")
        if names == KV:
            assert p.grants.kv is not None
            p.grants.kv.set("bench", b"k", b"0123456789abcdef")
        rows.append(Row(label, (lambda p=p: p.react(EVENT)), 500 if not body else 50))
    msg = d.ref(b"x")
    log_once = f"(call $log (i32.const 0) {msg})"
    log_loop = f"""(local.set $ptr (i32.const {n}))
      (loop $l {log_once} (local.set $ptr (i32.sub (local.get $ptr) (i32.const 1))) (br_if $l (local.get $ptr)))"""
    for label, body, batch in ((f"+ {n} x eventgateway.log (1 B)", log_loop, 50),
                               ("+ 1 x eventgateway.log (1 B)", log_once, 200)):
        log_plugin = Plugin.from_bytes(cap_plugin(body, d, ()).replace(
            "(module", '(module (import "eventgateway" "log" (func $log (param i32 i32 i32)))', 1), name="bench-log",
            log_handler=lambda *a: None, limits=Limits(log_rate_per_second=1_000_000, log_burst=1_000_000))
        rows.append(Row(label, (lambda p=log_plugin: p.react(EVENT)), batch))
    for lang in LANGS:
        path = REPO / "build" / "plugins" / lang / "ratelimit.wasm"
        if not path.exists():
            continue
        rl = Plugin.from_file(path, name=f"rl-{lang}", config={"limit": 10**9, "windowSeconds": 60},
                              grants=Grants(kv=MemoryKv()), log_handler=lambda *a: None)
        rows.append(Row(f"ratelimit example ({lang})", (lambda rl=rl: rl.react(EVENT)), 500))
    return rows


def table(rows: list[Row], n: int) -> str:
    base = statistics.median(rows[0].cpu)
    lines = ["| path | median CPU time per reaction | per host call | vs empty reaction |", "|---|---:|---:|---:|"]
    for row in rows:
        cpu = statistics.median(row.cpu)
        per_call = ""
        if row.name.startswith(f"+ {n} x"):
            per_call = f"{(cpu - base) / n * 1e6:.2f} µs"
        elif row.name.startswith("+ 1 x"):
            per_call = f"{(cpu - base) * 1e6:.2f} µs"
        lines.append(f"| {row.name} | {cpu * 1e6:.2f} µs | {per_call} | {cpu / base:.2f}x |")
    return "\n".join(lines)


def main(rounds: int = 25, calls: int = 100) -> None:
    rows = build_rows(calls)
    measure(rows, rounds)
    print(f"{rounds} interleaved rounds; CPU time of this thread (time.thread_time); "
          "ratelimit rows exist for the languages built in build/plugins (`just plugins`)")
    print(table(rows, calls))


_Main = Callable[..., None]

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    main(args.rounds, args.calls)
