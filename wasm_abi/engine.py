"""Wasmtime engines and the single epoch ticker thread.

One engine per distinct set of engine-level settings (only the Wasm stack size varies with
`Limits`), shared by every plugin using those settings, so compiled code and the epoch counter
are shared too.  Wall-clock deadlines use epoch interruption: one daemon thread bumps the
epoch of every engine every `TICK_SECONDS`; a store's deadline is a number of ticks.
"""

from __future__ import annotations

import importlib.metadata
import math
import threading
import time

import wasmtime

TICK_SECONDS = 0.01
WASMTIME_VERSION = importlib.metadata.version("wasmtime")

_engines: dict[int, tuple[wasmtime.Engine, str]] = {}
_engines_lock = threading.Lock()


def settings_key(max_stack_bytes: int) -> str:
    """Everything that makes compiled code incompatible, as a string: it goes into the cache key."""
    return (
        f"wasmtime={WASMTIME_VERSION};fuel=1;epoch=1;stack={max_stack_bytes};"
        "memory_may_move=0;opt=speed"
    )


def engine_for(max_stack_bytes: int) -> tuple[wasmtime.Engine, str]:
    """The shared engine for these settings, and its settings key (created on first use)."""
    with _engines_lock:
        found = _engines.get(max_stack_bytes)
        if found is None:
            config = wasmtime.Config()
            config.consume_fuel = True
            config.epoch_interruption = True
            config.max_wasm_stack = max_stack_bytes
            # A linear memory that never moves lets an instance cache its base pointer
            # (the fast call path copies with memmove at base + offset).
            config.memory_may_move = False
            config.cranelift_opt_level = "speed"
            engine = wasmtime.Engine(config)
            found = (engine, settings_key(max_stack_bytes))
            _engines[max_stack_bytes] = found
            TICKER.add(engine)
        return found


def ticks_for(seconds: float) -> int:
    """Epoch ticks covering `seconds`, plus one because the current tick is already running."""
    return max(1, math.ceil(seconds / TICK_SECONDS)) + 1


class EpochTicker:
    """The one thread that advances every engine's epoch; started with the first engine."""

    def __init__(self) -> None:
        self._engines: list[wasmtime.Engine] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, engine: wasmtime.Engine) -> None:
        with self._lock:
            self._engines.append(engine)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wasm-epoch-ticker", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(TICK_SECONDS)
            with self._lock:
                engines = list(self._engines)
            for engine in engines:
                engine.increment_epoch()


TICKER = EpochTicker()
