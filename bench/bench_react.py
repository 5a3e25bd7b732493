"""Cost of one sync `react` round trip through the plugin host, against the Extism Python SDK.

Rows (all measured in this run, on this machine):

- `extism: empty call` — the baseline: Extism `Plugin.call` of an export that does nothing.
- `extism: same work, N` — Extism calling a WAT plugin that gets an N-byte msgpack event as input
  and returns the 1-byte msgpack reaction `{}`; Python encodes the event and decodes the reaction.
- `wasmtime-py Func.__call__` — the public wasmtime-py call of a no-op export, and of
  `react(ptr, len)`, with no memory traffic: what a host built on the public API pays per call.
- `wasm_abi react, N` — `Plugin.react(event)` of a WAT plugin returning `{}`: encode the event,
  alloc, copy in, call, check and copy the reaction out, decode, fuel accounting.
- `wasm_abi react (echo), 1 KiB` — the plugin returns the whole event as its reaction, so 1 KiB
  is copied out and decoded too.

Each row is the median over interleaved batches of the mean per-call time within a batch,
as this thread's CPU time (robust on a shared machine) and as wall time.

Run: `python -m bench.bench_react` (or `just bench`).

`--stages` measures instead the gateway's sync stages in-process (issue 16): the three system events of one
event (`event.received`, `function.invoking`, `function.invoked`) through `ActivePluginSet.react_sync_now`,
three plugins on every stage (bench_gateway's stage plugin), per event as this thread's CPU time: back to
back (warm caches), and with ~150 µs of unrelated Python work before each stage (a stand-in for the server's
own per-event work: the caches the reactions find are then those a server leaves them).

`--floor` splits the plugin work of one event (three plugins on each of three stages, as above) into the
layers it goes through, each measured alone, warm, fastest of interleaved rounds, this thread's CPU time per
event: the nine `PluginInstance.react` calls (the Wasm calls with the budget set-up and fuel read: what any
host on wasmtime-py's C API pays), the same through `Plugin.react_encoded` (pool, health, decoding), the three
stages through `ActivePluginSet.react_sync_now`, then `SystemEmitter.emit` on an event loop as the event
pipeline calls it (the three system events built, encoded and emitted, the function's answer decoded for
`function.invoked`); the stages again with 4 MiB of other memory touched before each (cold caches, as a
server's own work between stages leaves them; only the stages are timed); and two parts alone (building the
three system events; encoding them for the plugins).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import msgpack
import wasmtime

from wasm_abi import EVENT_RECEIVED, Limits, Plugin, system_event

ECHO = "(i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len)))"

EXTISM_WAT = """
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "noop") (result i32) (i32.const 0))
  ;; Same work as the wasm_abi plugin: receive the event, answer the msgpack reaction {} (0x80).
  (func (export "react") (result i32)
    (local $out i64)
    (drop (call $input_length))
    (local.set $out (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $out) (i32.const 0x80))
    (call $output_set (local.get $out) (i64.const 1))
    (i32.const 0))
)
"""


def sized_event(size: int) -> dict[str, Any]:
    """A system event whose msgpack encoding is about `size` bytes (0 means the empty map)."""
    if size == 0:
        return {}
    event = system_event(EVENT_RECEIVED, {
        "event": {"eventType": "user.created", "cloudEventsVersion": "0.1", "source": "/bench",
                  "eventID": "8f2b6c1e-0000-4000-8000-000000000000", "contentType": "application/json",
                  "data": {"pad": ""}},
        "path": "/users", "headers": {"content-type": "application/json", "user-agent": "bench"},
    }, event_id="00000000-0000-4000-8000-000000000001", time="2026-11-28T00:00:00Z")
    base = len(msgpack.packb(event))
    event["data"]["event"]["data"]["pad"] = "x" * max(0, size - base - 3)
    return event


class Row:
    """One benchmarked path: a callable and the batch times measured for it."""

    def __init__(self, name: str, call: Callable[[], object], batch: int) -> None:
        self.name, self.call, self.batch = name, call, batch
        self.cpu: list[float] = []
        self.wall: list[float] = []

    def run_batch(self) -> None:
        call, thread_time, perf = self.call, time.thread_time, time.perf_counter
        cpu0, wall0 = thread_time(), perf()
        for _ in range(self.batch):
            call()
        self.cpu.append((thread_time() - cpu0) / self.batch)
        self.wall.append((perf() - wall0) / self.batch)


def measure(rows: list[Row], rounds: int) -> None:
    """Interleave the rows (one batch of each per round) so that load from other processes on
    the machine hits every row alike and the ratios stay meaningful."""
    for row in rows:
        for _ in range(min(row.batch, 200)):
            row.call()  # warm up
    for _ in range(rounds):
        for row in rows:
            row.run_batch()


def build_rows() -> list[Row]:
    import extism

    rows: list[Row] = []
    extism_plugin = extism.Plugin(bytes(wasmtime.wat2wasm(EXTISM_WAT)), wasi=False)
    rows.append(Row("extism: empty call", lambda: extism_plugin.call("noop", b""), 200))
    for size, label in ((0, "0 B"), (1024, "1 KiB"), (65536, "64 KiB")):
        event = sized_event(size)

        def extism_react(event: dict[str, Any] = event) -> object:
            return msgpack.unpackb(extism_plugin.call("react", msgpack.packb(event)))

        assert extism_react() == {}
        rows.append(Row(f"extism: same work, {label}", extism_react, 200 if size < 65536 else 50))

    store = wasmtime.Store()
    module = wasmtime.Module(store.engine, '(module (func (export "noop")) '
                             '(func (export "react") (param i32 i32) (result i64) (i64.const 0)))')
    instance = wasmtime.Instance(store, module, [])
    noop, react = instance.exports(store)["noop"], instance.exports(store)["react"]
    rows.append(Row("wasmtime-py Func.__call__, noop ()", lambda: noop(store), 200))
    rows.append(Row("wasmtime-py Func.__call__, react(i32, i32) -> i64", lambda: react(store, 8, 1024), 200))

    from tests.wat import plugin_wat  # the same builder the tests use

    limits = Limits(pool_size=1)
    plugin = Plugin.from_bytes(plugin_wat(reaction={}).encode(), name="bench-continue", limits=limits)
    for size, label in ((0, "0 B"), (1024, "1 KiB"), (65536, "64 KiB")):
        event = sized_event(size)
        assert plugin.react(event).error is None
        rows.append(Row(f"wasm_abi react, {label}", lambda e=event: plugin.react(e), 200 if size < 65536 else 50))
    echo = Plugin.from_bytes(plugin_wat(react=ECHO).encode(), name="bench-echo", limits=limits)
    event = sized_event(1024)
    rows.append(Row("wasm_abi react (echo), 1 KiB", lambda: echo.react(event), 200))
    return rows


def table(rows: list[Row]) -> str:
    base_cpu = statistics.median(rows[0].cpu)
    base_wall = statistics.median(rows[0].wall)
    lines = ["| path | median CPU time per call | vs extism empty call | median wall time | vs extism (wall) |",
             "|---|---:|---:|---:|---:|"]
    for row in rows:
        cpu, wall = statistics.median(row.cpu), statistics.median(row.wall)
        lines.append(f"| {row.name} | {cpu * 1e6:.2f} µs | {cpu / base_cpu:.2f}x | {wall * 1e6:.2f} µs | "
                     f"{wall / base_wall:.2f}x |")
    return "\n".join(lines)


def main(rounds: int = 25) -> None:
    print(f"event sizes (msgpack): 0 B -> {len(msgpack.packb(sized_event(0)))} B, "
          f"1 KiB -> {len(msgpack.packb(sized_event(1024)))} B, 64 KiB -> {len(msgpack.packb(sized_event(65536)))} B")
    rows = build_rows()
    measure(rows, rounds)
    print(f"{rounds} interleaved rounds; CPU time is this thread's (time.thread_time), which other processes "
          "on a busy machine disturb less than wall time")
    print(table(rows))


#: The CloudEvent and request headers of the stage benches: what bench_gateway's clients send.
STAGE_EVENT: dict[str, Any] = {"specversion": "1.0", "type": "bench.event", "source": "/bench", "id": "1-1",
                               "datacontenttype": "application/json", "data": {"n": 1, "text": "x" * 64}}
STAGE_HEADERS = {"host": "127.0.0.1:4000", "user-agent": "python-httpx/0.27", "accept": "*/*",
                 "content-type": "application/cloudevents+json", "content-length": "150"}


def stage_plugins(count: int = 3) -> list[Any]:
    """``count`` loaded copies of bench_gateway's stage plugin (sync on every system event, continues)."""
    import tempfile
    from pathlib import Path

    from bench.bench_gateway import stage_plugin
    from gateway.plugins.loading import load_plugin, spec_from_path

    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"stage{i}.wasm" for i in range(count)]
        for path in paths:
            path.write_bytes(stage_plugin())
        return [load_plugin(spec_from_path(path, i)) for i, path in enumerate(paths)]


def stages(rounds: int = 9, events: int = 2000) -> None:
    import json

    from gateway.metrics import Metrics
    from gateway.plugins.stages import ActivePluginSet
    from wasm_abi import events as builders

    plugins = stage_plugins()
    active = ActivePluginSet(plugins, Metrics(), None, validate_event=lambda event: None)
    event, headers = STAGE_EVENT, STAGE_HEADERS
    body = json.dumps(event)
    objects = [(i, str(i)) for i in range(3000)]

    def work() -> int:  # ~150 µs of the kind of Python a server does between stages
        total = sum(number for number, _ in objects)
        for _ in range(20):
            json.loads(body)
        return total

    def one_event(between: Callable[[], object] | None) -> float:
        spent = 0.0
        for stage_event in (builders.event_received(event, "/bench", headers),
                            builders.function_invoking("default", "bench", event),
                            builders.function_invoked("default", "bench", event, {"statusCode": 200})):
            if between is not None:
                between()
            started = time.thread_time()
            active.react_sync_now(stage_event)
            spent += time.thread_time() - started
        return spent

    results: dict[str, list[float]] = {"warm (back to back)": [], "after ~150 µs of Python work per stage": []}
    for _ in range(rounds):
        for label, between in zip(results, (None, work), strict=True):
            results[label].append(sum(one_event(between) for _ in range(events)) / events)
    print(f"3 plugins x 3 sync stages per event, {rounds} interleaved rounds of {events} events; "
          "this thread's CPU time in the stages only")
    print("| stages of one event | median per event | fastest round | per reaction (median / 9) |")
    print("|---|---:|---:|---:|")
    for label, values in results.items():
        median = statistics.median(values)
        print(f"| {label} | {median * 1e6:.1f} µs | {min(values) * 1e6:.1f} µs | {median / 9 * 1e6:.2f} µs |")
    for plugin in plugins:
        plugin.close()


def floor(rounds: int = 15, events: int = 3000) -> None:
    import asyncio
    import json

    from gateway.config.view import ConfigView
    from gateway.events import system_events
    from gateway.metrics import Metrics
    from gateway.pipeline.emitter import SystemEmitter
    from gateway.plugins.stages import ActivePluginSet
    from gateway.queue.memory import MemoryQueue
    from gateway.routing.table import RouteTable
    from gateway.store.memory import MemoryStore

    plugins = stage_plugins()
    metrics = Metrics()
    active = ActivePluginSet(plugins, metrics, None, validate_event=lambda event: None)
    event, headers = STAGE_EVENT, STAGE_HEADERS
    answer = json.dumps({"statusCode": 200, "body": "ok"}).encode()

    def build() -> tuple[dict[str, Any], ...]:
        return (system_events.event_received(event, "/bench", headers),
                system_events.function_invoking("default", "bench", event),
                system_events.function_invoked("default", "bench", event, system_events.decode_result(answer)))

    built = build()
    packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack
    payloads = [packb(system_events.for_plugins(e)) for e in built]
    hosts = [plugin.host for plugin in plugins]
    instances = [host._pool.acquire() for host in hosts]  # held (the bench is their only user) and put back below
    fuel = hosts[0].limits.sync_fuel

    def native_calls() -> None:
        for payload in payloads:
            for instance in instances:
                instance.react(payload, fuel, True)

    def host_calls() -> None:
        for payload, stage_event in zip(payloads, built, strict=True):
            for host in hosts:
                host.react_encoded(payload, stage_event["type"], "sync", None, True)

    def plugin_stages() -> None:
        for stage_event in built:
            active.react_sync_now(stage_event)

    loop = asyncio.new_event_loop()
    store = MemoryStore()
    emitter = SystemEmitter(RouteTable(ConfigView(store, metrics)), metrics, MemoryQueue())

    async def emitted(count: int) -> None:
        for _ in range(count):
            for stage_event in build():
                await emitter.emit("default", stage_event, active)

    # Other memory touched before each stage, as a server's own work does between stages: what the stages
    # cost when the caches they find are cold.
    other = bytearray(os.urandom(4 << 20))
    others = [{"n": i, "s": str(i)} for i in range(16384)]

    def touch_other_memory() -> int:
        other[::64] = other[::64]
        total = 0
        for item in others:
            total += item["n"]
        return total

    def cold_stages() -> float:
        spent = 0.0
        for stage_event in built:
            touch_other_memory()
            started = time.thread_time()
            active.react_sync_now(stage_event)
            spent += time.thread_time() - started
        return spent

    def cold_native_calls() -> float:
        spent = 0.0
        for payload in payloads:
            touch_other_memory()
            started = time.thread_time()
            for instance in instances:
                instance.react(payload, fuel, True)
            spent += time.thread_time() - started
        return spent

    rows: list[tuple[str, Callable[[], object] | None]] = [
        ("9 x PluginInstance.react (the Wasm calls, budget, fuel read)", native_calls),
        ("9 x Plugin.react_encoded (+ pool, health, decoding)", None),
        ("3 x ActivePluginSet.react_sync_now (+ stages, metrics; events prebuilt)", plugin_stages),
        ("3 x SystemEmitter.emit on a loop (+ building, emit, async stage)", None),
        ("3 x ActivePluginSet.react_sync_now, 4 MiB of other memory touched before each stage", None),
        ("9 x PluginInstance.react, the same 4 MiB touched before each stage's three", None),
        ("building the 3 system events alone", build),
        ("encoding the 3 system events for plugins alone", lambda: [packb(system_events.for_plugins(e)) for e in built]),
    ]
    best: dict[str, float] = {label: float("inf") for label, _ in rows}
    for _ in range(rounds):
        for label, work in rows:
            if label.startswith("9 x Plugin.react_encoded"):
                for instance, host in zip(instances, hosts, strict=True):
                    host._pool.release(instance)
                started = time.thread_time()
                for _ in range(events):
                    host_calls()
                spent = time.thread_time() - started
                instances = [host._pool.acquire() for host in hosts]
            elif label.startswith("3 x ActivePluginSet.react_sync_now (+"):
                for instance, host in zip(instances, hosts, strict=True):
                    host._pool.release(instance)
                started = time.thread_time()
                for _ in range(events):
                    plugin_stages()
                spent = time.thread_time() - started
                instances = [host._pool.acquire() for host in hosts]
            elif label.startswith("3 x ActivePluginSet.react_sync_now, 4 MiB"):
                for instance, host in zip(instances, hosts, strict=True):
                    host._pool.release(instance)
                spent = sum(cold_stages() for _ in range(events // 10))  # only the stages are timed
                spent *= events / (events // 10)
                instances = [host._pool.acquire() for host in hosts]
            elif label.startswith("9 x PluginInstance.react, the same"):
                spent = sum(cold_native_calls() for _ in range(events // 10)) * (events / (events // 10))
            elif label.startswith("3 x SystemEmitter"):
                for instance, host in zip(instances, hosts, strict=True):
                    host._pool.release(instance)
                started = time.thread_time()
                loop.run_until_complete(emitted(events))
                spent = time.thread_time() - started
                instances = [host._pool.acquire() for host in hosts]
            else:
                assert work is not None
                started = time.thread_time()
                for _ in range(events):
                    work()
                spent = time.thread_time() - started
            best[label] = min(best[label], spent / events)
    for instance, host in zip(instances, hosts, strict=True):
        host._pool.release(instance)
    loop.close()
    print(f"The plugin work of one event, 3 plugins x 3 sync stages, layer by layer: fastest of {rounds} interleaved "
          f"rounds of {events} events, this thread's CPU time per event")
    print("| layer | per event | per reaction (/ 9) |")
    print("|---|---:|---:|")
    for label, _ in rows:
        print(f"| {label} | {best[label] * 1e6:.1f} µs | {best[label] / 9 * 1e6:.2f} µs |")
    for plugin in plugins:
        plugin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--stages", action="store_true", help="measure the gateway's sync stages instead (issue 16)")
    parser.add_argument("--floor", action="store_true",
                        help="split the plugin work of one event into its layers instead (issue 16)")
    arguments = parser.parse_args()
    if arguments.stages:
        stages(min(arguments.rounds, 9))
    elif arguments.floor:
        floor(min(arguments.rounds, 15))
    else:
        main(arguments.rounds)
