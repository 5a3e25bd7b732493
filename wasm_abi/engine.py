"""Wasmtime engines and the single epoch ticker thread.

One engine per distinct set of engine-level settings (only the Wasm stack size varies with
`Limits`), shared by every plugin using those settings, so compiled code and the epoch counter
are shared too.  `new_engine` builds one without registering it anywhere: the compile child
(`compile_worker`) uses it, so its serialized code deserializes into `engine_for`'s engine.

Wasm proposals: only those ABI v1 needs and real toolchains emit are on (`PROPOSALS`); every
other one is off, so a module using it fails validation and is refused at load with kind
`unsupported_feature`.  Proposals such as GC and exception handling do work behind one
instruction that fuel does not see (a `struct.new` of a large struct costs 1 fuel).  Wall-clock deadlines use epoch interruption: one daemon thread bumps the
epoch of every engine every `TICK_SECONDS`; a store's deadline is a number of ticks.
"""

from __future__ import annotations

import importlib.metadata
import math
import threading
import time

import wasmtime

from . import native

TICK_SECONDS = 0.01
WASMTIME_VERSION = importlib.metadata.version("wasmtime")

_engines: dict[int, tuple[wasmtime.Engine, str]] = {}
_engines_lock = threading.Lock()

#: The `wasmtime.Config` proposal switches, each set explicitly (wasmtime 50's defaults turn GC,
#: exceptions, function references, tail calls and more on).  On: what ABI v1 modules built by the
#: six example toolchains use (Go, Rust, Zig, C, AssemblyScript, WAT) plus fixed-cost SIMD.  The
#: MVP, mutable globals, sign extension and non-trapping float-to-int have no switch (always on).
PROPOSALS: dict[str, bool] = {
    "wasm_multi_value": True,
    "wasm_bulk_memory": True,
    "wasm_reference_types": True,  # the table-index encoding of call_indirect (Rust, clang >= 19)
    "wasm_simd": True,  # fixed-size 128-bit operations: work per instruction is bounded
    "gc_support": False,  # no GC heap at all: externref and every GC type are refused
    "wasm_gc": False,
    "wasm_function_references": False,
    "wasm_exceptions": False,
    "wasm_tail_call": False,
    "wasm_stack_switching": False,
    "wasm_relaxed_simd": False,
    "wasm_threads": False,
    "wasm_memory64": False,
    "wasm_multi_memory": False,
    "wasm_custom_page_sizes": False,
    "wasm_wide_arithmetic": False,
}


def settings_key(max_stack_bytes: int) -> str:
    """Everything that makes compiled code incompatible, as a string: it goes into the cache key.

    It also names the module shape rules (`module_shape.RULES`): a module compiled under other
    rules was checked under other rules, so it is checked and compiled again.
    """
    from .module_shape import RULES

    enabled = ",".join(sorted(name for name, on in PROPOSALS.items() if on))
    return (
        f"wasmtime={WASMTIME_VERSION};fuel=1;epoch=1;stack={max_stack_bytes};"
        f"memory_may_move=0;opt=speed;features={enabled};{RULES}"
    )


def new_engine(max_stack_bytes: int) -> wasmtime.Engine:
    """A fresh engine with exactly the settings `settings_key` describes (registered nowhere)."""
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    config.max_wasm_stack = max_stack_bytes
    # A linear memory that never moves lets an instance cache its base pointer
    # (the fast call path copies with memmove at base + offset).
    config.memory_may_move = False
    config.cranelift_opt_level = "speed"
    for name, on in PROPOSALS.items():
        setattr(config, name, on)
    return wasmtime.Engine(config)


def engine_for(max_stack_bytes: int) -> tuple[wasmtime.Engine, str]:
    """The shared engine for these settings, and its settings key (created on first use)."""
    with _engines_lock:
        found = _engines.get(max_stack_bytes)
        if found is None:
            engine = new_engine(max_stack_bytes)
            found = (engine, settings_key(max_stack_bytes))
            _engines[max_stack_bytes] = found
            TICKER.add(engine)
        return found


def ticks_for(seconds: float) -> int:
    """Epoch ticks covering `seconds`, plus one because the current tick is already running."""
    return max(1, math.ceil(seconds / TICK_SECONDS)) + 1


class EpochTicker:
    """The one thread that advances every engine's epoch; started with the first engine.

    It is a Python thread, so each tick takes the GIL from the event loop's thread once (when it wakes
    from its sleep): the increments themselves keep the GIL (`native.increment_epoch`, one atomic add
    each; wasmtime-py's `Engine.increment_epoch` releases and re-takes it, a second hand-over per tick
    that a busy loop thread paid for with a thread switch), over a tuple of engine addresses replaced
    whole on `add`, so a tick does no other Python work."""

    def __init__(self) -> None:
        self._engines: list[wasmtime.Engine] = []  # keeps the engines behind the addresses alive
        self._addresses: tuple[int, ...] = ()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: Ticks so far, counted after each tick's increments (under the GIL, which no increment
        #: releases): an instance whose last deadline was set at this count would set the same one
        #: again, and skips it (`PluginInstance.react`).
        self.ticks = 0

    def add(self, engine: wasmtime.Engine) -> None:
        with self._lock:
            self._engines.append(engine)
            self._addresses = (*self._addresses, native.engine_address(engine))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wasm-epoch-ticker", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        sleep, increment = time.sleep, native.increment_epoch
        while True:
            sleep(TICK_SECONDS)
            for engine in self._addresses:
                increment(engine)
            self.ticks += 1


TICKER = EpochTicker()
