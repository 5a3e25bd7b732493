"""Per-plugin sandbox limits.

Every number here bounds what one plugin can cost the gateway.  The defaults are meant to be
safe for an untrusted plugin on a shared host; raise them per plugin when a trusted plugin
needs more.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Sandbox limits for one plugin (all instances of it share these numbers)."""

    #: Fuel (~ one unit per Wasm instruction) for one sync reaction; 10 M is about 10 ms.
    #: Sync reactions run inline on the gateway's request path, so this is deliberately small.
    sync_fuel: int = 10_000_000
    #: Wall-clock deadline of one sync reaction, in seconds, set afresh for every call (epoch
    #: ticks of 10 ms: the call is stopped with a `timeout` fault between this and 10 ms more).
    #: Fuel stops ordinary code first (10 M fuel of plain instructions is 2-5 ms); this catches
    #: instructions and WASI calls that cost far more time than fuel (bench/bench_fuel_wall.py).
    #: Sync reactions of a plugin whose sync_timeout is over `instance.INLINE_SYNC_TIMEOUT`
    #: (0.05 s) run on the plugin's own threads instead of the gateway's event loop.
    sync_timeout: float = 0.05
    #: Fuel for one async reaction (runs off the request path, so it may use more).
    async_fuel: int = 100_000_000
    #: Wall-clock deadline for one async reaction, in seconds (enforced with epochs).
    async_timeout: float = 1.0
    #: Fuel for instantiation + `_initialize` + `init` + `subscriptions` of one instance.
    load_fuel: int = 500_000_000
    #: Wall-clock deadline for the same load steps, in seconds.
    load_timeout: float = 5.0
    #: Maximum size of the linear memory, in bytes; `memory.grow` beyond it fails.
    max_memory_bytes: int = 64 * MIB
    #: Maximum elements in any one table (function pointers).
    max_table_elements: int = 10_000
    #: Maximum number of tables per instance.
    max_tables: int = 4
    #: Maximum number of linear memories per instance (ABI v1 uses exactly one).
    max_memories: int = 1
    #: Maximum number of Wasm instances per store (one plugin instance = one store).
    max_instances: int = 1
    #: Maximum native stack a Wasm call may use, in bytes; deeper recursion traps.
    max_stack_bytes: int = 512 * 1024
    #: Maximum size of the module file (binary or WAT text), in bytes.
    max_module_bytes: int = 32 * MIB
    #: Maximum size of one packed output buffer (reaction or subscriptions), in bytes.
    max_output_bytes: int = 1 * MIB
    #: Maximum size of one input event, in bytes (the host refuses to send larger ones).
    max_input_bytes: int = 16 * MIB
    #: Longest log message kept, in bytes; longer ones are cut and marked as truncated.
    max_log_message_bytes: int = 4096
    #: Sustained log messages per second per plugin; excess ones are dropped (and said so).
    log_rate_per_second: float = 100.0
    #: Burst of log messages allowed above the sustained rate.
    log_burst: int = 200
    #: Instances kept per plugin, i.e. how many reactions of one plugin may run at once.
    pool_size: int = 4
    #: Consecutive faults after which the plugin is quarantined.
    quarantine_after: int = 3
    #: First quarantine period, in seconds; doubles on each fault after release.
    quarantine_backoff: float = 1.0
    #: Longest quarantine period, in seconds.
    quarantine_max_backoff: float = 300.0
    # (Added after the first release: new fields go last, so positional use keeps working.)
    #: Fuel one `eventgateway.log` call costs the calling plugin, on top of its instructions.
    #: A host call costs the gateway ~50 µs of Python, while the Wasm loop making it costs a
    #: handful of fuel: without this charge a sync reaction logging in a loop would run until
    #: its wall-clock safety net (about a second on the event loop), not its ~10 ms of fuel.
    log_call_fuel: int = 50_000
    #: Longest a module may take to compile, in seconds (every module that is not a verified cache
    #: hit compiles in a child process that is killed at this limit: load error `compile_limit`).
    compile_timeout: float = 120.0

    # -- compiling (sandbox hardening, issue 10) ------------------------------------------------
    #: Address space of the child process that compiles a module (or assembles WAT text over
    #: 64 KiB), in bytes (`RLIMIT_AS`); compiling needing more is load error `compile_limit`.
    #: The ~2.5 MB Go example peaks at ~290 MB of address space (~120 MB resident) to compile.
    compile_memory_bytes: int = 1024 * MIB

    # -- wall time and host calls --------------------------------------------------------------
    # (deadline / host-call fields go here)
    #: Most bytes one WASI `fd_write` call takes (stdout/stderr go to the plugin's log); the call
    #: writes up to this many and reports the count written (a short write, which WASI allows).
    max_write_bytes: int = 64 * 1024

    # -- fault rate and amplification ----------------------------------------------------------
    # (quarantine-rate / re-instantiation fields go here)
    #: Fault-rate quarantine: the number of a plugin's most recent reactions (successes and faults)
    #: its fault rate is counted over. Faults that alternate with successes never make
    #: `quarantine_after` consecutive faults; this window catches them.
    fault_window: int = 100
    #: Faults within the last `fault_window` reactions that quarantine the plugin (however they
    #: alternate with successes): 10 of 100, i.e. a plugin faulting on every other event is
    #: quarantined at its 10th fault, by its 20th event.
    fault_window_max: int = 10
    #: Seconds of CPU a plugin may spend making fresh instances after faults (instantiation,
    #: `_initialize`, `init`, `subscriptions`) per `rebuild_window`, as a token bucket that starts
    #: full. A plugin that needs a fresh instance while it is over budget is quarantined (no
    #: instance is made) until the budget has refilled: a plugin whose instances are expensive to
    #: make is quarantined sooner, and faulting cannot buy it seconds of CPU per event.
    rebuild_budget: float = 1.0
    #: Seconds in which `rebuild_budget` refills from empty (it refills continuously).
    rebuild_window: float = 60.0

    # -- plugin-supplied text -----------------------------------------------------------------
    # (string caps go here)

    # -- capabilities (issue 13; ABI.md section 7.1) --------------------------------------------
    #: Fuel one kv or metric host call costs before its work (plus one fuel per byte it copies).
    #: Such a call costs the gateway ~2 µs through the C API.
    host_call_fuel: int = 2_000
    #: Fuel one `http_request` call costs before its work (plus one fuel per byte it copies): with
    #: the default sync budget of 10 M fuel, at most ~10 requests per sync reaction.
    http_call_fuel: int = 1_000_000
    #: Longest kv key, in bytes (`EG_TOO_LARGE` beyond).
    max_kv_key_bytes: int = 256
    #: Longest kv value, in bytes (`EG_TOO_LARGE` beyond).
    max_kv_value_bytes: int = 64 * 1024
    #: Most keys the plugin's kv namespace may hold (`EG_QUOTA` for a write that would add one more).
    max_kv_keys: int = 10_000
    #: Most bytes (keys plus values) the plugin's kv namespace may hold (`EG_QUOTA` beyond).
    max_kv_bytes: int = 16 * MIB
    #: Longest encoded `http_request` request, in bytes (`EG_TOO_LARGE` beyond).
    max_http_request_bytes: int = 1 * MIB
    #: Longest encoded `http_request` response, in bytes: the host stops reading there (`EG_TOO_LARGE`).
    max_http_response_bytes: int = 1 * MIB
    #: Longest one `http_request` may take, in seconds, whatever `timeoutMs` asks (and never longer
    #: than what is left of the reaction's own deadline).
    http_timeout: float = 5.0
    #: Most metric series (one per name and label values) the plugin may create (`EG_QUOTA` beyond,
    #: counted in `eventgateway_plugin_metric_series_dropped_total`).
    max_metric_series: int = 1_000

    def __post_init__(self) -> None:
        for spec in fields(self):
            name, value = spec.name, getattr(self, spec.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Limits.{name} must be a number, got {type(value).__name__}")
            # Fuel, bytes and counts go to wasmtime as 64-bit integers: 1e7 would fail only at
            # the first call, far from where it was written.
            if spec.type in ("int", int) and not isinstance(value, int):
                raise TypeError(f"Limits.{name} must be an integer, got {value!r}")
            if value <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {value!r}")
            ceiling = CEILINGS.get(name)
            if ceiling is not None and value > ceiling:
                raise ValueError(f"Limits.{name} is {value!r}, over its ceiling of {ceiling!r}")


GIB = 1024 * MIB

#: The most any one `Limits` field may be set to, whatever an operator writes: a limit is there
#: to bound what a plugin costs, and a "limit" of 10**9 threads or seconds bounds nothing. Every
#: field has one (a test checks); ABI.md lists them. Raising a ceiling is a code change.
CEILINGS: dict[str, int | float] = {
    "sync_fuel": 10**12,
    "sync_timeout": 5.0,
    "async_fuel": 10**13,
    "async_timeout": 60.0,
    "load_fuel": 10**13,
    "load_timeout": 60.0,
    "max_memory_bytes": 4 * GIB,  # a 32-bit linear memory cannot be larger
    "max_table_elements": 1_000_000,
    "max_tables": 100,
    "max_memories": 1,  # ABI v1 uses exactly one
    "max_instances": 1,  # one plugin instance = one store with one instance
    "max_stack_bytes": 8 * MIB,
    "max_module_bytes": 64 * MIB,
    "max_output_bytes": 16 * MIB,
    "max_input_bytes": 64 * MIB,
    "max_log_message_bytes": 64 * 1024,
    "log_rate_per_second": 1_000_000.0,
    "log_burst": 1_000_000,
    "pool_size": 64,
    "quarantine_after": 1000,
    "quarantine_backoff": 3600.0,
    "quarantine_max_backoff": 86_400.0,
    "log_call_fuel": 100_000_000,
    "compile_timeout": 600.0,
    # (ceilings of the fields added for issue 10 go below, in the same order as the fields)
    "compile_memory_bytes": 16 * GIB,
    "max_write_bytes": 1 * MIB,
    "fault_window": 100_000,
    "fault_window_max": 100_000,
    "rebuild_budget": 60.0,
    "rebuild_window": 86_400.0,
    # (capabilities, issue 13)
    "host_call_fuel": 100_000_000,
    "http_call_fuel": 10_000_000_000,
    "max_kv_key_bytes": 64 * 1024,
    "max_kv_value_bytes": 16 * MIB,
    "max_kv_keys": 10_000_000,
    "max_kv_bytes": 4 * GIB,
    "max_http_request_bytes": 16 * MIB,
    "max_http_response_bytes": 16 * MIB,
    "http_timeout": 60.0,
    "max_metric_series": 100_000,
}
