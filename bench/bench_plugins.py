"""Plugins per guest language: module size, load time (cold compile and cached) and react time.

Every language's examples are built from source (`plugin_examples.build`, skipped when up to date) and
loaded through the real host, `wasm_abi.Plugin`:

- size: bytes of each example's `.wasm`;
- load, cold: `Plugin.from_file` with an empty on-disk cache and the in-process cache cleared, so the
  module is compiled by Cranelift;
- load, cached: the same with the on-disk cache filled by the cold load (deserialize, instantiate, init,
  subscriptions) -- what a gateway restart pays;
- react: median time of `Plugin.react` on the guard (a sync event.received it lets through, which makes it
  read the event type and look up its denied data fields) and on the enricher (a function.invoking it rewrites);
- fuel (a second table): what the same reactions cost in Wasm fuel, on that event and per extra item of
  a data array (means of runs of calls). Fuel counts instructions, so these numbers do not depend on
  the machine's speed: they tell how large an event a plugin can read within the sync budget
  (`Limits.sync_fuel`), which times cannot.

WAT is the baseline: hand-written, no runtime, so every other column is also shown as a ratio to it,
measured in the same run. Run: `python -m bench.bench_plugins [--calls N] [--loads N] [LANG ...]`.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from plugin_examples.build import LANGUAGES, build
from wasm_abi import (
    Limits,
    Plugin,
    system_event,
)
from wasm_abi.events import EVENT_RECEIVED, FUNCTION_INVOKING
from wasm_abi.module_cache import clear_memory_cache

#: The examples every language has and this table compares (ratelimit and authcheck need grants).
EXAMPLES = ("logger", "guard", "enricher")

REPO_ROOT = Path(__file__).resolve().parents[1]

BASELINE = "wat"
GUARD_CONFIG = {"denyTypes": ["user.deleted"], "denyData": {"role": "root"}}
ENRICHER_CONFIG = {"fields": {"region": "eu-west-1"}}
USER_EVENT = {
    "specversion": "1.0", "type": "user.created", "id": "evt-1", "source": "/app",
    "data": {"name": "ada", "email": "ada@example.com", "role": "admin", "tags": ["a", "b", "c"]},
}
RECEIVED = system_event(EVENT_RECEIVED, {"event": USER_EVENT, "path": "/users", "headers": {"X-A": "1"}})
INVOKING = system_event(FUNCTION_INVOKING, {"space": "default", "event": USER_EVENT, "functionId": "fn"})
QUIET = Limits(pool_size=1, log_rate_per_second=1e9, log_burst=1_000_000)
#: Items added to the data of the fuel table's large event, and calls averaged per figure.
FUEL_ITEMS = 1000
FUEL_CALLS = 60


def _with_items(system: dict[str, object], items: int) -> dict[str, object]:
    data = dict(system["data"])  # type: ignore[call-overload]
    event = dict(data["event"])
    event["data"] = {**event["data"], "items": list(range(items))}
    data["event"] = event
    return {**system, "data": data}


@dataclass
class Row:
    lang: str
    sizes: dict[str, int]
    cold_ms: float
    cached_ms: float
    guard_us: float
    enricher_us: float
    guard_fuel: int
    guard_fuel_per_item: float
    enricher_fuel: int
    enricher_fuel_per_item: float

    @property
    def enricher_max_items(self) -> int:
        """Data items the enricher can rewrite before the default sync budget runs out."""
        spare = Limits().sync_fuel - self.enricher_fuel
        return int(spare / self.enricher_fuel_per_item) if self.enricher_fuel_per_item > 0 else -1


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _steady_fuel(plugin: Plugin, event: dict[str, object]) -> float:
    return statistics.mean([plugin.react(event).fuel_used or 0 for _ in range(FUEL_CALLS + 1)][1:])


def measure(lang: str, calls: int, loads: int) -> Row:
    paths = {example: build(lang, example) for example in EXAMPLES}
    guard_path = paths["guard"]
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:  # warm-up: imports, engine, threads
        Plugin.from_file(guard_path, config=GUARD_CONFIG, limits=QUIET, cache_dir=cache)
    cold, cached = [], []
    for _ in range(loads):
        with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
            clear_memory_cache()
            started = time.perf_counter()
            Plugin.from_file(guard_path, config=GUARD_CONFIG, limits=QUIET, cache_dir=cache)
            cold.append(time.perf_counter() - started)
            clear_memory_cache()
            started = time.perf_counter()
            Plugin.from_file(guard_path, config=GUARD_CONFIG, limits=QUIET, cache_dir=cache)
            cached.append(time.perf_counter() - started)
    guard = Plugin.from_file(guard_path, config=GUARD_CONFIG, limits=QUIET)
    enricher = Plugin.from_file(paths["enricher"], config=ENRICHER_CONFIG, limits=QUIET)
    assert guard.react(RECEIVED).error is None
    assert enricher.react(INVOKING).event is not None
    for _ in range(min(calls, 200)):  # warm up
        guard.react(RECEIVED)
        enricher.react(INVOKING)
    guard_seconds = _median_time(partial(guard.react, RECEIVED), calls)
    enricher_seconds = _median_time(partial(enricher.react, INVOKING), calls)
    fuel = {}
    for name, plugin, system in (("guard", guard, RECEIVED), ("enricher", enricher, INVOKING)):
        # A garbage collector's work (Go's, AssemblyScript's) lands on whichever call triggers it, often
        # the next one: each figure is the mean of a run of calls with the same event (the first one
        # left out), the steady state of a stream of such events.
        small = _steady_fuel(plugin, system)
        large = _steady_fuel(plugin, _with_items(system, FUEL_ITEMS))
        fuel[name] = (round(small), (large - small) / FUEL_ITEMS)
    # Free the instances now: a WASI (Go) store still alive at interpreter exit makes wasmtime's
    # worker thread panic during teardown (harmless, exit status 0, but noisy).
    del guard, enricher
    gc.collect()
    return Row(
        lang=lang,
        sizes={example: path.stat().st_size for example, path in paths.items()},
        cold_ms=statistics.median(cold) * 1e3,
        cached_ms=statistics.median(cached) * 1e3,
        guard_us=guard_seconds * 1e6,
        enricher_us=enricher_seconds * 1e6,
        guard_fuel=fuel["guard"][0],
        guard_fuel_per_item=fuel["guard"][1],
        enricher_fuel=fuel["enricher"][0],
        enricher_fuel_per_item=fuel["enricher"][1],
    )


def table(rows: list[Row]) -> str:
    base = next((r for r in rows if r.lang == BASELINE), rows[0])

    def cell(value: float, baseline: float, unit: str, digits: int = 1) -> str:
        return f"{value:,.{digits}f} {unit} ({value / baseline:.1f}x)"

    lines = [
        (
            "| language | logger / guard / enricher size | load, cold compile | load, cached | "
            "react: guard (pass) | react: enricher (rewrite) |"
        ),
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        sizes = " / ".join(f"{r.sizes[e] / 1024:,.1f}" for e in EXAMPLES) + " KiB"
        sizes += f" ({r.sizes['guard'] / base.sizes['guard']:.1f}x)"
        lines.append(
            f"| {r.lang} | {sizes} | {cell(r.cold_ms, base.cold_ms, 'ms')} | "
            f"{cell(r.cached_ms, base.cached_ms, 'ms', 2)} | {cell(r.guard_us, base.guard_us, 'µs')} | "
            f"{cell(r.enricher_us, base.enricher_us, 'µs')} |"
        )
    lines.append(f"\nRatios are to {base.lang} (hand-written WAT) in the same run; medians.")
    return "\n".join(lines)


def fuel_table(rows: list[Row]) -> str:
    budget = Limits().sync_fuel
    lines = [
        "| language | guard: fuel | guard: fuel per data item | enricher: fuel | enricher: fuel per data item | "
        f"enricher: data items in the {budget / 1e6:,.0f}M sync budget |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.lang} | {r.guard_fuel:,} | {r.guard_fuel_per_item:,.0f} | {r.enricher_fuel:,} | "
            f"{r.enricher_fuel_per_item:,.0f} | {r.enricher_max_items:,} |"
        )
    lines.append(f"\nPer item: the mean fuel of the same reaction with {FUEL_ITEMS:,} more integers in the event's "
                 f"data, minus the mean without them, divided by their number (runs of {FUEL_CALLS} calls of each).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_plugins", description=__doc__.splitlines()[0])
    parser.add_argument("languages", nargs="*", default=list(LANGUAGES))
    parser.add_argument("--calls", type=int, default=2000, help="react calls timed per plugin")
    parser.add_argument("--loads", type=int, default=3, help="cold + cached loads per language")
    args = parser.parse_args(argv if argv is not None else [])
    languages = [BASELINE] + [lang for lang in args.languages if lang != BASELINE]
    rows = []
    for lang in languages:
        rows.append(measure(lang, args.calls, args.loads))
        print(f"measured {lang}", file=sys.stderr, flush=True)
    print(table(rows))
    print()
    print(fuel_table(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
