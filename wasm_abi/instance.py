"""One instantiated plugin (its own Store) and the fast call path into it.

The public `Func.__call__` of wasmtime-py looks up the function type and converts every value
in Python on each call (~10-40 µs).  ABI v1 only ever calls four fixed signatures, so an
instance resolves its exports once and then calls them with `wasmtime_func_call_unchecked`
through ctypes (see `native`), with a preallocated argument array, and copies bytes through a
memoryview over linear memory made once (the engine is configured so that linear memory never
moves; only its size changes, and that is re-read whenever a bounds check would fail).

An instance is used by one thread at a time (the pool guarantees it) and is thrown away after
any fault, so a plugin never runs on a state its own fault may have corrupted.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

import wasmtime

from . import native
from .engine import TICKER, ticks_for
from .errors import MAX_MESSAGE_CHARS, PluginFault, PluginLoadError, cap_text
from .hostcalls import HostCallState
from .imports import register_streams, wasi_config
from .plugin_log import StreamLog
from .reaction import decode_reaction

if TYPE_CHECKING:
    from .loader import LoadedModule

_call_unchecked = native.call_unchecked
_set_fuel = native.set_fuel
_get_fuel = native.get_fuel
_set_deadline = native.set_epoch_deadline
_TICKER = TICKER
_data_size = native.memory_data_size

#: The longest `Limits.sync_timeout` whose sync reactions may run inline on a gateway's event
#: loop, in seconds. Every sync call sets its own epoch deadline of `sync_timeout` (stopped
#: between it and one 10 ms tick more), so an inline reaction holds the loop at most ~60 ms
#: whatever it executes; a plugin allowed more runs its sync reactions on its own threads.
INLINE_SYNC_TIMEOUT = 0.05

U32 = 0xFFFF_FFFF
U64 = 0xFFFF_FFFF_FFFF_FFFF
WASM_PAGE = 65536
_ARGS_LEN = 2  # max(params, results) over every ABI v1 signature
_WORDS_PER_SLOT = native.VAL_RAW_SIZE // 8
_MAX_TRAP_LINES = 20
#: Longest trap text kept in a fault message: half the message cap, so that what the host says
#: around it (what was called, which limit) is never the part cut off.
_MAX_TRAP_CHARS = MAX_MESSAGE_CHARS // 2


class PluginInstance:
    """A live instance of a plugin module, ready for `react` calls from one thread at a time."""

    __slots__ = (
        "_alloc",
        "_args",
        "_argsref",
        "_async_ticks",
        "_base",
        "_ctx",
        "_deadline_tick",
        "_exports",
        "_fuel",
        "_fuelref",
        "_initial_mem_size",
        "_funcs",
        "_hostcalls",
        "_instance",
        "_mem",
        "_mem_size",
        "_react",
        "_streams",
        "_sync_ticks",
        "_trap",
        "_trapref",
        "_view",
        "_wasi",
        "_words",
        "limits",
        "module",
        "ok_async",
        "ok_sync",
        "plugin",
        "store",
    )

    def __init__(self, module: LoadedModule) -> None:
        self.module = module
        self.plugin = module.name
        self.limits = limits = module.limits
        store = wasmtime.Store(module.engine)
        store.set_limits(
            memory_size=limits.max_memory_bytes,
            table_elements=limits.max_table_elements,
            instances=limits.max_instances,
            tables=limits.max_tables,
            memories=limits.max_memories,
        )
        self._streams: list[StreamLog] = []
        if module.uses_wasi:
            config, self._streams = wasi_config(module.log)
            store.set_wasi(config)
        self.store = store
        # Raw addresses for the native calls; `self` keeps every object behind them alive.
        self._ctx = native.store_context(store)
        if self._streams:
            stdout, stderr = self._streams
            self._wasi = register_streams(self._ctx, stdout, stderr, limits.max_write_bytes)
        self._args = native.new_slots(_ARGS_LEN)
        self._argsref = ctypes.addressof(self._args)
        # The same slots seen as plain int64s: indexing an array is ~3x cheaper than going
        # through the union.  A slot (wasmtime_val_raw_t) is 16 bytes, so slot k is word 2k.
        # i32 params are read by Wasm from the low half (little-endian); i32 results are
        # masked to their low half.
        self._words = (ctypes.c_int64 * (_ARGS_LEN * _WORDS_PER_SLOT)).from_buffer(self._args)
        self._trap = ctypes.c_void_p(None)
        self._trapref = ctypes.addressof(self._trap)
        self._fuel = ctypes.c_uint64(0)
        self._fuelref = ctypes.addressof(self._fuel)
        self._sync_ticks = ticks_for(limits.sync_timeout)
        self._async_ticks = ticks_for(limits.async_timeout)
        self._deadline_tick = -1  # the ticker's count when the store's sync deadline was last set
        self.ok_sync = 0  # successful reactions; only the thread holding the instance writes these
        self.ok_async = 0
        # Capability calls (ABI.md 7.1) find this instance's memory, budget and backends through it:
        # made the current one of the thread before every call into the plugin (`_set_budget`, `react`).
        self._hostcalls: HostCallState | None = None
        if module.grants.names:
            self._hostcalls = HostCallState(self.plugin, self._ctx, limits, module.grants, module.log)
        self._set_budget(limits.load_fuel, limits.load_timeout)
        try:
            self._instance = module.pre.instantiate(store)
        except wasmtime.Trap as trap:
            raise self._fault_from_trap(trap, "instantiation (data segments, start function)",
                                        self._load_deadline()) from None
        except wasmtime.WasmtimeError as exc:
            raise PluginLoadError(self.plugin, f"cannot instantiate: {_first_lines(str(exc))}", "memory"
                                  if "memory" in str(exc) and "limit" in str(exc) else "instantiate") from None
        # The externs own the structs whose addresses the native calls use: keep them alive.
        self._exports = {name: self._export(name) for name in ("memory", *module.functions)}
        memory = self._exports["memory"]
        self._mem = native.memory_address(memory)
        self._base = native.memory_base(store, memory)
        # A byte view over the memory's address range up to the limit.  The engine never moves
        # linear memory, so the view stays valid; only bytes below the current size are ever
        # touched (every access is bounds-checked first, and the size is capped at the view).
        self._view = memoryview((ctypes.c_ubyte * limits.max_memory_bytes).from_address(self._base)).cast("B")
        # Linear memory only grows, so a bounds check that passes against an old size is
        # still right; the size is re-read only when a check would fail.
        self._mem_size = self._initial_mem_size = self._memory_size()
        if self._hostcalls is not None:
            self._hostcalls.attach_memory(self._view, self._mem, self._mem_size)
        self._funcs = {name: native.func_address(self._exports[name]) for name in module.functions}
        self._alloc = self._funcs["alloc"]
        self._react = self._funcs["react"]
        if "_initialize" in self._funcs:
            self._call(self._funcs["_initialize"], "_initialize")
        if "init" in self._funcs:
            out = self._call_with_buffer(self._funcs["init"], module.config_bytes, "init")
            reaction = decode_reaction(self.plugin, out, may_replace=False, what="init reaction")
            if reaction.error is not None:
                raise PluginLoadError(self.plugin, f"init rejected the configuration: {reaction.error}",
                                      "init_rejected")

    def _export(self, name: str) -> Any:
        """One export by name (looked up alone: see `native.export_get`)."""
        item = native.export_get(self.store, self._instance, name)
        if item is None:
            raise PluginLoadError(self.plugin, f"export {name!r} not found in the instance", "missing_export")
        return item

    def _memory_size(self) -> int:
        return min(_data_size(self._ctx, self._mem), self.limits.max_memory_bytes)

    # -- budget -----------------------------------------------------------------------------

    def _set_budget(self, fuel: int, seconds: float) -> None:
        _set_fuel(self._ctx, fuel)
        _set_deadline(self._ctx, ticks_for(seconds))
        self._deadline_tick = -1  # not the sync deadline
        if self._hostcalls is not None:
            self._hostcalls.begin(seconds)

    # -- calls ------------------------------------------------------------------------------

    def _load_deadline(self) -> str:
        return f"load_timeout {self.limits.load_timeout:g} s"

    def _call(self, func: int, what: str) -> None:
        """A load step (`_initialize`, `subscriptions`), under the load budget."""
        err = _call_unchecked(self._ctx, func, self._argsref, _ARGS_LEN, self._trapref)
        if err or self._trap.value:
            raise self._fault(err, what, self._load_deadline())

    def _call_with_buffer(self, func: int, payload: bytes, what: str) -> bytes | None:
        """alloc + copy `payload` in + call `func(ptr, len) -> i64` + copy the packed result out."""
        ctx, args = self._ctx, self._words
        n = len(payload)
        args[0] = n
        err = _call_unchecked(ctx, self._alloc, self._argsref, _ARGS_LEN, self._trapref)
        if err or self._trap.value:
            raise self._fault(err, f"alloc (before {what})")
        ptr = args[0] & U32
        if not ptr:
            raise PluginFault(self.plugin, "memory", f"alloc({n}) returned 0 (out of memory) before {what}")
        if ptr + n > self._mem_size:
            size = self._mem_size = self._memory_size()
            if ptr + n > size:
                raise PluginFault(self.plugin, "bad_output",
                                  f"alloc({n}) returned {ptr}, past the end of memory ({size} bytes)")
        self._view[ptr : ptr + n] = payload
        args[0] = ptr
        args[_WORDS_PER_SLOT] = n
        err = _call_unchecked(ctx, func, self._argsref, _ARGS_LEN, self._trapref)
        if err or self._trap.value:
            raise self._fault(err, what, self._load_deadline())
        packed = args[0] & U64
        if not packed:
            return None
        return self._read_packed(packed, what)

    def _read_packed(self, packed: int, what: str) -> bytes | None:
        ptr = packed >> 32
        n = packed & U32
        if not n:
            return None
        if n > self.limits.max_output_bytes:
            raise PluginFault(self.plugin, "bad_output",
                              f"{what} returned a {n}-byte buffer, over the output limit of "
                              f"{self.limits.max_output_bytes} bytes")
        if ptr + n > self._mem_size:
            size = self._mem_size = self._memory_size()
            if ptr + n > size:
                raise PluginFault(self.plugin, "bad_output",
                                  f"{what} returned buffer ptr={ptr} len={n}, outside its memory of {size} bytes")
        return bytes(self._view[ptr : ptr + n])

    def react(self, payload: bytes, fuel: int, sync: bool) -> tuple[bytes | None, int]:
        """Run `react` on one encoded event; returns (reaction bytes or None, fuel used).

        Every call sets its own fuel and has its own epoch deadline (current epoch + the ticks of
        `sync_timeout` or `async_timeout`): one native call (~0.3 µs) buys a wall-clock bound
        per reaction, whatever mix of instructions and host calls the plugin makes. A sync
        reaction in the same tick as this store's last sync deadline would set the very same
        deadline again (the epoch has not moved: the ticker counts a tick after its increments),
        so it keeps it: under load most reactions do, ~100 ticks a second against thousands of
        reactions.
        """
        ctx = self._ctx
        _set_fuel(ctx, fuel)
        if not sync:
            _set_deadline(ctx, self._async_ticks)
            self._deadline_tick = -1
        elif self._deadline_tick != (tick := _TICKER.ticks):
            _set_deadline(ctx, self._sync_ticks)
            self._deadline_tick = tick
        if self._hostcalls is not None:
            self._hostcalls.begin(self.limits.sync_timeout if sync else self.limits.async_timeout)
        # The rest is _call_with_buffer(self._react, ...) inlined: this is the hot path.
        args, argsref, trapref = self._words, self._argsref, self._trapref
        n = len(payload)
        args[0] = n
        err = _call_unchecked(ctx, self._alloc, argsref, 2, trapref)
        if err or self._trap.value:
            raise self._fault(err, "alloc (before react)")
        ptr = args[0] & U32
        if not ptr:
            raise PluginFault(self.plugin, "memory", f"alloc({n}) returned 0 (out of memory) before react")
        if ptr + n > self._mem_size:
            size = self._mem_size = self._memory_size()
            if ptr + n > size:
                raise PluginFault(self.plugin, "bad_output",
                                  f"alloc({n}) returned {ptr}, past the end of memory ({size} bytes)")
        self._view[ptr : ptr + n] = payload
        args[0] = ptr
        args[_WORDS_PER_SLOT] = n
        err = _call_unchecked(ctx, self._react, argsref, 2, trapref)
        if err or self._trap.value:
            limits = self.limits
            raise self._fault(err, "react", f"sync_timeout {limits.sync_timeout:g} s" if sync
                              else f"async_timeout {limits.async_timeout:g} s")
        packed = args[0]
        _get_fuel(ctx, self._fuelref)
        if not packed:
            return None, fuel - self._fuel.value
        return self._read_packed(packed & U64, "react"), fuel - self._fuel.value

    def subscriptions(self) -> bytes | None:
        """Call `subscriptions()` under the load budget and copy its packed buffer out."""
        self._set_budget(self.limits.load_fuel, self.limits.load_timeout)
        self._call(self._funcs["subscriptions"], "subscriptions")
        packed = self._words[0] & U64
        return self._read_packed(packed, "subscriptions") if packed else None

    def flush_logs(self) -> None:
        for stream in self._streams:
            stream.flush()

    # -- faults -----------------------------------------------------------------------------

    def _fault(self, err: int | None, what: str, deadline: str = "") -> PluginFault:
        if self._trap.value:
            trap = native.take_trap(self._trap.value)  # takes ownership
            self._trap.value = None
            return self._fault_from_trap(trap, what, deadline)
        exc = native.take_error(err or 0)
        native.forget_host_exception()
        if isinstance(exc, wasmtime.ExitTrap):
            return PluginFault(self.plugin, "trap", f"{what} called WASI proc_exit({exc.code})")
        return PluginFault(self.plugin, "trap", f"{what} failed: {_first_lines(str(exc))}")

    def _memory_at_limit(self) -> bool:
        """Whether the plugin grew its memory up to the limit, so a `memory.grow` was (or would
        be) refused. A memory that started at the limit never grew: its faults are not memory's."""
        try:
            limit = self.limits.max_memory_bytes
            return (_data_size(self._ctx, self._mem) + WASM_PAGE > limit
                    and self._initial_mem_size + WASM_PAGE <= limit)
        except Exception:  # noqa: BLE001 - only refines a fault message
            return False

    def _fault_from_trap(self, trap: wasmtime.Trap, what: str, deadline: str = "") -> PluginFault:
        # A host function (eventgateway.log) that raised leaves its exception here; it was
        # already reported, and must not leak into an unrelated later call.
        native.forget_host_exception()
        code = trap.trap_code
        message = _first_lines(trap.message)
        limits = self.limits
        if code == wasmtime.TrapCode.INTERRUPT:
            limit = f" ({deadline} per call)" if deadline else ""
            return PluginFault(self.plugin, "timeout", f"{what} hit its wall-clock deadline{limit}: {message}")
        at_limit = hasattr(self, "_mem") and self._memory_at_limit()
        if at_limit:
            return PluginFault(
                self.plugin, "memory",
                f"{what} failed with its memory at the limit of {limits.max_memory_bytes} bytes "
                f"(memory.grow refused): {message}",
            )
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return PluginFault(self.plugin, "out_of_fuel", f"{what} ran out of fuel: {message}")
        if code == wasmtime.TrapCode.STACK_OVERFLOW:
            return PluginFault(self.plugin, "trap",
                               f"{what} overflowed the Wasm stack ({limits.max_stack_bytes} bytes): {message}")
        return PluginFault(self.plugin, "trap", f"{what} trapped: {message}")


def _first_lines(text: str) -> str:
    """A trap message cut to its first lines and to `MAX_MESSAGE_CHARS`: wasmtime puts the
    module's own function names (its name section: any length the plugin likes) into it."""
    text = cap_text(text.strip(), _MAX_TRAP_CHARS)
    lines = text.splitlines()
    if len(lines) > _MAX_TRAP_LINES:
        lines = lines[:_MAX_TRAP_LINES] + [f"... ({len(lines) - _MAX_TRAP_LINES} more lines)"]
    return "\n".join(lines)
