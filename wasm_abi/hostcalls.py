"""The capability host functions (ABI.md section 7.1), called by Wasm through wasmtime's C API.

wasmtime-py's `Func` trampoline converts every argument and result in Python (~50 µs a call); these
functions are defined with `wasmtime_linker_define_func_unchecked` instead (`native.define_host_func`)
and read their arguments straight from the raw slots, so a kv call on the memory backend costs ~2 µs.

Every call finds the calling instance's `HostCallState` (the instance makes it the current one of its
thread before each call into the plugin; the calling store's context, from the C API's caller, is checked
against it, because code the host runs in the middle of a call -- a `log_handler` -- may run another
plugin on the same thread, which makes itself current), pays its fuel before any work, bounds-checks every buffer against the plugin's
memory, and answers with an `i32`: a result or one of the ABI's negative error codes. Nothing a plugin
passes can make a call raise into Wasm (a trap) or run past the reaction's own deadline: every exception
becomes a code.

Fuel is paid before the work, but not necessarily by that call: a call that finds too little prepaid
fuel takes what it needs, or eight calls' worth if the plugin has that much, from the store (two native
calls), and the next calls spend the rest. What is prepaid and not spent when the call into the plugin
ends is lost (at most seven calls' worth).
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import struct
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import wasmtime

from . import native
from .capabilities import (
    CAPABILITY_IMPORTS,
    EG_INVALID,
    EG_NO_FUEL,
    EG_NOT_FOUND,
    EG_OK,
    EG_TIMEOUT,
    EG_TOO_LARGE,
    EG_UNAVAILABLE,
    CapabilityError,
    Grants,
)
from .kv import MAX_TTL_MS
from .outbound_http import http_request

if TYPE_CHECKING:
    from .limits import Limits
    from .plugin_log import PluginLog

logger = logging.getLogger("wasm_abi.host")

_get_fuel = native.get_fuel
_set_fuel = native.set_fuel
_data_size = native.memory_data_size
_PROCESS = native.PROCESS_MEMORY
_monotonic = time.monotonic
_I32_INTO = struct.Struct("<i").pack_into
_I64_PACK = struct.Struct("<q").pack
_U32_MAX = 0xFFFFFFFF
#: A `metric` call whose name and label bytes the host has not cached costs this many times
#: `Limits.host_call_fuel` more (it decodes and checks them).
METRIC_DECODE_CALLS = 10
#: A call short of prepaid fuel buys this many calls' worth at once (when the plugin has it).
_PREPAY_CALLS = 8


class _Current(threading.local):
    state: HostCallState | None = None


#: The state of the instance running on this thread (set by `HostCallState.begin`): a fast path only,
#: checked against the calling store at every call (code the host runs in the middle of a call -- a
#: `log_handler`, a logging handler -- may run another plugin on this thread, which makes itself current).
_current = _Current()
#: Every live state by its store's context address: the calling store's own state, whatever is current.
_by_ctx: weakref.WeakValueDictionary[int, HostCallState] = weakref.WeakValueDictionary()
_caller_context = native.caller_context_raw
_EMPTY = memoryview(bytearray())  # writable: an empty value may be "written" to it


class HostCallState:
    """What the capability calls of one instance need: its memory, budget, deadline and backends."""

    __slots__ = ("__weakref__", "credit", "ctx", "deadline", "fuel", "fuelref", "grants", "kv", "limits", "log",
                 "mem", "metrics", "plugin", "prepay", "response", "size", "view")

    def __init__(self, plugin: str, ctx: int, limits: Limits, grants: Grants, log: PluginLog) -> None:
        self.plugin = plugin
        self.ctx = ctx
        self.limits = limits
        self.grants = grants
        self.kv = grants.kv
        self.metrics = grants.metrics
        self.log = log
        self.view = _EMPTY  # the instance's memory once it exists (a `start` function runs before)
        self.mem = 0
        self.size = 0
        self.deadline = _monotonic() + limits.load_timeout
        self.response: bytes | None = None
        self.fuel = ctypes.c_uint64(0)
        self.fuelref = ctypes.addressof(self.fuel)
        self.credit = 0  # fuel prepaid by earlier calls of the current call into the plugin
        self.prepay = _PREPAY_CALLS * limits.host_call_fuel
        _by_ctx[ctx] = self

    def attach_memory(self, view: memoryview, mem: int, size: int) -> None:
        self.view, self.mem, self.size = view, mem, size

    def begin(self, seconds: float) -> None:
        """A call into the plugin starts on this thread: it is the current one here, with its
        deadline, no prepaid fuel and no response held from an earlier call."""
        self.deadline = _monotonic() + seconds
        self.response = None
        self.credit = 0
        _current.state = self

    # -- helpers -------------------------------------------------------------------------------

    def charge(self, fuel: int) -> bool:
        """Pay `fuel` before the work; False (and the plugin left with none) if it has less."""
        if self.credit >= fuel:
            self.credit -= fuel
            return True
        ctx = self.ctx
        if _get_fuel(ctx, self.fuelref):
            return True  # fuel is always on for our engines
        left = self.fuel.value + self.credit
        if left < fuel:
            _set_fuel(ctx, 0)
            self.credit = 0
            return False
        take = min(left, max(fuel, self.prepay))
        _set_fuel(ctx, left - take)
        self.credit = take - fuel
        return True

    def read(self, ptr: int, length: int) -> bytes:
        if ptr + length > self.size:
            self._refresh(ptr + length)
        return bytes(self.view[ptr : ptr + length])

    def write(self, ptr: int, data: bytes) -> None:
        end = ptr + len(data)
        if end > self.size:
            self._refresh(end)
        self.view[ptr:end] = data

    def _refresh(self, end: int) -> None:
        if not self.mem:
            raise CapabilityError(EG_INVALID, "the plugin has no memory yet")
        self.size = min(_data_size(self.ctx, self.mem), len(self.view))
        if end > self.size:
            raise CapabilityError(EG_INVALID, f"a buffer ends at {end}, past the end of memory ({self.size} bytes)")

    def time_left(self) -> float:
        left = self.deadline - _monotonic()
        if left <= 0:
            raise CapabilityError(EG_TIMEOUT, "the reaction's deadline has passed")
        return left

    def warn(self, message: str) -> None:
        self.log.write(2, f"(host) {message}")

    # -- kv -------------------------------------------------------------------------------------

    def _key(self, ptr: int, length: int) -> bytes:
        if not length:
            raise CapabilityError(EG_INVALID, "a kv key may not be empty")
        if length > self.limits.max_kv_key_bytes:
            raise CapabilityError(EG_TOO_LARGE, "the key is over max_kv_key_bytes")
        return self.read(ptr, length)

    def _ttl(self, ttl_ms: int) -> int:
        if not 0 <= ttl_ms <= MAX_TTL_MS:
            raise CapabilityError(EG_INVALID, f"ttl_ms {ttl_ms} is not 0..{MAX_TTL_MS}")
        return ttl_ms

    def _timeout(self) -> float:
        return self.time_left() if self.kv.blocking else 1.0  # type: ignore[union-attr]

    def kv_get(self, key_ptr: int, key_len: int, buf: int, buf_len: int) -> int:
        if not self.charge(self.limits.host_call_fuel + key_len):
            return EG_NO_FUEL
        key = self._key(key_ptr, key_len)
        value = self.kv.get(self.plugin, key, self._timeout())  # type: ignore[union-attr]
        if value is None:
            return EG_NOT_FOUND
        n = len(value)
        if n <= buf_len:
            if not self.charge(n):
                return EG_NO_FUEL
            self.write(buf, value)
        return n

    def kv_set(self, key_ptr: int, key_len: int, value_ptr: int, value_len: int, ttl_ms: int) -> int:
        limits = self.limits
        if not self.charge(limits.host_call_fuel + key_len + value_len):
            return EG_NO_FUEL
        key = self._key(key_ptr, key_len)
        if value_len > limits.max_kv_value_bytes:
            raise CapabilityError(EG_TOO_LARGE, "the value is over max_kv_value_bytes")
        ttl = self._ttl(ttl_ms)
        self.kv.set(self.plugin, key, self.read(value_ptr, value_len), ttl, limits, self._timeout())  # type: ignore[union-attr]
        return EG_OK

    def kv_delete(self, key_ptr: int, key_len: int) -> int:
        if not self.charge(self.limits.host_call_fuel + key_len):
            return EG_NO_FUEL
        return 1 if self.kv.delete(self.plugin, self._key(key_ptr, key_len), self._timeout()) else 0  # type: ignore[union-attr]

    def kv_incr(self, key_ptr: int, key_len: int, delta: int, ttl_ms: int, out: int) -> int:
        limits = self.limits
        if not self.charge(limits.host_call_fuel + key_len):
            return EG_NO_FUEL
        key = self._key(key_ptr, key_len)
        ttl = self._ttl(ttl_ms)
        if out + 8 > self.size:
            self._refresh(out + 8)  # checked before the increment: a bad `out` changes nothing
        total = self.kv.incr(self.plugin, key, delta, ttl, limits, self._timeout())  # type: ignore[union-attr]
        self.write(out, _I64_PACK(total))
        return EG_OK

    def kv_cas(self, key_ptr: int, key_len: int, exp_ptr: int, exp_len: int, value_ptr: int, value_len: int,
               ttl_ms: int) -> int:
        limits = self.limits
        absent = exp_len == _U32_MAX
        if not self.charge(limits.host_call_fuel + key_len + (0 if absent else exp_len) + value_len):
            return EG_NO_FUEL
        key = self._key(key_ptr, key_len)
        if value_len > limits.max_kv_value_bytes or (not absent and exp_len > limits.max_kv_value_bytes):
            raise CapabilityError(EG_TOO_LARGE, "a value is over max_kv_value_bytes")
        expected = None if absent else self.read(exp_ptr, exp_len)
        ttl = self._ttl(ttl_ms)
        swapped = self.kv.cas(self.plugin, key, expected, self.read(value_ptr, value_len), ttl,  # type: ignore[union-attr]
                              limits, self._timeout())
        return 1 if swapped else 0

    # -- http -----------------------------------------------------------------------------------

    def http_request(self, req_ptr: int, req_len: int) -> int:
        limits = self.limits
        if not self.charge(limits.http_call_fuel + req_len):
            return EG_NO_FUEL
        self.response = None
        if req_len > limits.max_http_request_bytes:
            raise CapabilityError(EG_TOO_LARGE, "the request is over max_http_request_bytes")
        raw = self.read(req_ptr, req_len)
        self.time_left()
        response = http_request(self.plugin, self.grants.http, raw, self.deadline, limits, self.warn)
        self.response = response
        return len(response)

    def http_response(self, buf: int, buf_len: int) -> int:
        if not self.charge(self.limits.host_call_fuel):
            return EG_NO_FUEL
        response = self.response
        if response is None:
            return EG_NOT_FOUND
        n = len(response)
        if n <= buf_len:
            if not self.charge(n):
                return EG_NO_FUEL
            self.write(buf, response)
        return n

    # -- metrics --------------------------------------------------------------------------------

    def metric(self, kind: int, name_ptr: int, name_len: int, labels_ptr: int, labels_len: int, value: float) -> int:
        if not self.charge(self.limits.host_call_fuel + name_len + labels_len):
            return EG_NO_FUEL
        if name_len > 64 or labels_len > 4096:
            raise CapabilityError(EG_INVALID, "the metric name or labels are too long")
        name = self.read(name_ptr, name_len)
        labels = self.read(labels_ptr, labels_len) if labels_len else b""
        metrics = self.metrics
        # Bytes not seen before are decoded and checked (~13 µs, six times a cached call): paid for
        # before that work, so fuel bounds a plugin spelling its labels anew on every call too.
        if not metrics.cached(name, labels) and not self.charge(METRIC_DECODE_CALLS * self.limits.host_call_fuel):  # type: ignore[union-attr]
            return EG_NO_FUEL
        metrics.record(kind, name, labels, value, self.limits.max_metric_series)  # type: ignore[union-attr]
        return EG_OK


def _make(method_name: str, fmt: str) -> Any:
    """The C callback of one import: unpack the raw argument slots (16 bytes each) with `fmt`, run
    `HostCallState.<method_name>` of this thread's current instance, write the i32 result into slot 0.
    Never raises."""
    unpack_from = struct.Struct(fmt).unpack_from
    method: Callable[..., int] = getattr(HostCallState, method_name)
    current = _current

    def callback(env: int, caller: int, args: int, nargs: int) -> int:
        try:
            state = current.state
            ctx = _caller_context(caller)
            if state is None or state.ctx != ctx:
                state = _by_ctx.get(ctx)
            if state is None:
                result = EG_UNAVAILABLE
            else:
                result = method(state, *unpack_from(_PROCESS, args))
        except CapabilityError as exc:
            result = exc.code
        except Exception:  # noqa: BLE001 - a host call must never trap the plugin over a host problem
            logger.warning("capability call %s failed in the host", method_name, exc_info=True)
            result = EG_UNAVAILABLE
        _I32_INTO(_PROCESS, args, result)
        return 0

    return native.HOST_CALLBACK(callback)


# i32 arguments are read unsigned ("I": pointers and lengths), i64 signed ("q"), f64 ("d"); each in a
# 16-byte slot whose low bytes hold the value.
_SLOT_I32, _SLOT_I64, _SLOT_F64 = "I12x", "q8x", "d8x"
_SLOT = {"i32": _SLOT_I32, "i64": _SLOT_I64, "f64": _SLOT_F64}
_VAL = {"i32": wasmtime.ValType.i32(), "i64": wasmtime.ValType.i64(), "f64": wasmtime.ValType.f64()}

#: Import name -> (capability, functype, C callback). Module globals: they live as long as the process,
#: so no store can ever call a freed callback.
CALLBACKS: dict[str, tuple[str, wasmtime.FuncType, Any]] = {
    name: (capability, wasmtime.FuncType([_VAL[p] for p in params], [_VAL[r] for r in results]),
           _make(name, "<" + "".join(_SLOT[p] for p in params)))
    for name, (capability, params, results) in CAPABILITY_IMPORTS.items()
}


# -- eventgateway.log -----------------------------------------------------------------------------

#: log(level: i32, ptr: i32, len: i32): the level signed (an unknown one, negative too, logs as info),
#: the pointer and length unsigned.
LOG_TYPE = wasmtime.FuncType([_VAL["i32"]] * 3, [])
_LOG_ARGS = struct.Struct("<i12xI12xI12x").unpack_from
#: A linker's `env` number -> (its plugin's log sink, fuel per call). The sink is held weakly (its
#: module holds it); the entry goes with the sink, and a call finding no sink logs nothing.
_log_sinks: dict[int, tuple[weakref.ref[PluginLog], int]] = {}
_log_ids = itertools.count(1)


def _log(env: int | None, caller: int, args: int, nargs: int) -> int:
    """`eventgateway.log` (ABI.md section 3): pay `Limits.log_call_fuel` first (a call the plugin cannot
    pay for logs nothing and leaves it with no fuel), check the buffer against the caller's own memory
    (found from the C API's caller: the calling store, whichever instance is current on this thread),
    copy at most `max_log_message_bytes` of it and hand it to the plugin's `PluginLog` (rate limit,
    cut, escaping). Never raises: a logging problem is never a trap in the plugin."""
    sink = None
    try:
        entry = _log_sinks.get(env or 0)
        if entry is None or (sink := entry[0]()) is None:
            return 0
        fuel = entry[1]
        ctx = _caller_context(caller)
        left = ctypes.c_uint64(0)
        if not _get_fuel(ctx, ctypes.addressof(left)):  # fuel is always on for our engines
            remaining = left.value
            _set_fuel(ctx, remaining - fuel if remaining > fuel else 0)
            if remaining <= fuel:
                return 0
        memory = native.caller_memory(caller, ctx)
        if memory is None:
            sink.write(2, b"(host) log called but the plugin exports no memory")
            return 0
        level, ptr, length = _LOG_ARGS(_PROCESS, args)
        base, size = memory
        if ptr + length > size:
            sink.write(2, f"(host) log buffer ptr={ptr} len={length} is outside memory of {size} bytes".encode())
            return 0
        # Copy no more than the cap: a plugin cannot make the host copy 64 MiB per line.
        start = base + ptr
        sink.write(level, bytes(_PROCESS[start : start + min(length, sink.max_message_bytes)]), total_bytes=length)
    except Exception:  # noqa: BLE001 - a logging problem must never become a trap in the plugin
        logger.debug("eventgateway.log failed for plugin %r", getattr(sink, "plugin", None), exc_info=True)
    return 0


_LOG_CALLBACK = native.HOST_CALLBACK(_log)  # a module global: no store can ever call it freed


def define_log(linker: wasmtime.Linker, module: str, sink: PluginLog, call_fuel: int) -> None:
    """Define `module.log` in `linker` as a C-level host function writing to `sink`, each call costing
    `call_fuel` before any work."""
    key = next(_log_ids)
    _log_sinks[key] = (weakref.ref(sink), call_fuel)
    weakref.finalize(sink, _log_sinks.pop, key, None)
    native.define_host_func(linker, module, "log", LOG_TYPE, _LOG_CALLBACK, key)


def define_capabilities(linker: wasmtime.Linker, module: str, grants: Grants) -> None:
    """Define every capability function `grants` allows in `linker`."""
    for name, (capability, functype, callback) in CALLBACKS.items():
        if grants.has(capability):  # type: ignore[arg-type]
            native.define_host_func(linker, module, name, functype, callback)
