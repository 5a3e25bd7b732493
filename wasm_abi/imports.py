"""What a plugin may import, and the linker that provides it.

ABI v1 gives a plugin `eventgateway.log` and the capability functions an operator granted it (kv,
http, metrics: ABI.md section 7.1), both C-level host functions in `hostcalls`, and (if it asks) a
WASI preview 1 with no capabilities at all.  Anything else refuses the load, naming the
import, so a plugin author learns at load time rather than from a trap at the first event.
"""

from __future__ import annotations

import ctypes
import logging
import os
import struct
import weakref
from collections.abc import Callable

import wasmtime

from . import native
from .capabilities import CAPABILITY_IMPORTS, GRANT_SYNTAX, NO_GRANTS, Grants
from .errors import PluginLoadError
from .hostcalls import define_capabilities, define_log
from .plugin_log import PluginLog, StreamLog

logger = logging.getLogger("wasm_abi.host")

HOST_MODULE = "eventgateway"
WASI_MODULE = "wasi_snapshot_preview1"

_I32 = wasmtime.ValType.i32()


def _describe(ty: object) -> str:
    if isinstance(ty, wasmtime.FuncType):
        params = ", ".join(str(p) for p in ty.params)
        results = ", ".join(str(r) for r in ty.results)
        return f"func ({params}) -> ({results})"
    return type(ty).__name__.replace("Type", "").lower()


#: More imports than any ABI v1 plugin needs (log plus a few dozen WASI functions). Reading each
#: import's type through wasmtime-py costs ~0.2 ms of Python holding the GIL, and a module may
#: declare 100 000: the cap keeps a hostile module from stalling the gateway for seconds here.
MAX_IMPORTS = 1000


def check_imports(plugin: str, module: wasmtime.Module, grants: Grants = NO_GRANTS) -> bool:
    """Refuse imports outside ABI v1 and capability imports that `grants` does not allow
    (`not_granted`, naming the import and the grant); returns whether the module imports WASI."""
    imports = module.imports
    if len(imports) > MAX_IMPORTS:
        raise PluginLoadError(
            plugin, f"declares {len(imports)} imports; an ABI v1 plugin may import at most {MAX_IMPORTS} "
            f"(only {HOST_MODULE}.log, the capability functions and {WASI_MODULE}.* exist)", "forbidden_import",
        )
    uses_wasi = False
    for imp in imports:
        module_name = imp.module
        if module_name == WASI_MODULE:
            uses_wasi = True
            continue
        name = imp.name
        where = f"{module_name}.{name}"
        if module_name == HOST_MODULE and name == "log":
            ty = imp.type
            if not isinstance(ty, wasmtime.FuncType) or [str(p) for p in ty.params] != ["i32"] * 3 or ty.results:
                raise PluginLoadError(
                    plugin,
                    f"import {where} has type {_describe(ty)}; ABI v1 defines log(level: i32, ptr: i32, len: i32)",
                    "forbidden_import",
                )
            continue
        if module_name == HOST_MODULE and name in CAPABILITY_IMPORTS:
            capability, params, results = CAPABILITY_IMPORTS[name]
            ty = imp.type
            if (not isinstance(ty, wasmtime.FuncType) or [str(p) for p in ty.params] != params
                    or [str(r) for r in ty.results] != results):
                raise PluginLoadError(
                    plugin, f"import {where} has type {_describe(ty)}; ABI v1 defines {name}"
                    f"({', '.join(params)}) -> ({', '.join(results)})", "forbidden_import",
                )
            if not grants.has(capability):
                raise PluginLoadError(
                    plugin, f"module imports {where}, which needs the {capability} capability; grant "
                    f"{GRANT_SYNTAX[capability]} to allow it", "not_granted",
                )
            continue
        raise PluginLoadError(
            plugin,
            f"imports {where} ({_describe(imp.type)}), which the host does not provide; "
            f"ABI v1 allows only {HOST_MODULE}.log, the capability functions of ABI.md section 7.1 and "
            f"{WASI_MODULE}.*",
            "forbidden_import",
        )
    return uses_wasi


def needed_capabilities(module: wasmtime.Module) -> list[str]:
    """The capabilities a module's imports need (without checking anything else), in a fixed order."""
    needed = {CAPABILITY_IMPORTS[imp.name][0] for imp in module.imports[:MAX_IMPORTS]
              if imp.module == HOST_MODULE and imp.name in CAPABILITY_IMPORTS}
    return [c for c in ("kv", "http", "metrics") if c in needed]


def charge_fuel(caller: wasmtime.Caller, fuel: int) -> bool:
    """Take `fuel` from the calling store for host work; False if it had less (it is then left
    empty, so the plugin stops with `out_of_fuel` at its next loop iteration or call)."""
    ctx = native.caller_context(caller)
    left = ctypes.c_uint64(0)
    if native.get_fuel(ctx, ctypes.addressof(left)):
        return True  # fuel is always enabled on our engines; never fail a log call over it
    remaining = left.value
    native.set_fuel(ctx, remaining - fuel if remaining > fuel else 0)
    return remaining > fuel


def build_linker(engine: wasmtime.Engine, uses_wasi: bool, sink: PluginLog, log_call_fuel: int,
                 grants: Grants = NO_GRANTS) -> wasmtime.Linker:
    """A linker holding this plugin's `eventgateway.log`, the capability functions it is granted
    (ABI.md section 7.1) and WASI, if the module wants it."""
    linker = wasmtime.Linker(engine)
    define_capabilities(linker, HOST_MODULE, grants)
    define_log(linker, HOST_MODULE, sink, log_call_fuel)
    if uses_wasi:
        linker.define_wasi()
        # WASI's poll_oneoff would sleep inside a host call, where neither fuel nor epoch
        # deadlines can stop it: a sync plugin could stall the event loop.  Replace it with one
        # that reports every subscription as ready at once: sleeping returns immediately.
        linker.allow_shadowing = True
        linker.define_func(WASI_MODULE, "poll_oneoff", POLL_ONEOFF_TYPE, _poll_oneoff(log_call_fuel),
                           access_caller=True)
        # fd_write is done here too: wasmtime's own hands stdout/stderr to a Python callback on
        # one of its runtime threads, where no fuel can be charged, so a plugin printing in a
        # loop ran until the wall-clock net. Here it costs fuel like `log`, on the caller's thread.
        linker.define_func(WASI_MODULE, "fd_write", FD_WRITE_TYPE, _fd_write(log_call_fuel), access_caller=True)
        # Likewise random_get, whose cost grows with the buffer: one fuel per byte.
        linker.define_func(WASI_MODULE, "random_get", RANDOM_GET_TYPE, _random_get(log_call_fuel),
                           access_caller=True)
        linker.allow_shadowing = False
    return linker


POLL_ONEOFF_TYPE = wasmtime.FuncType([_I32, _I32, _I32, _I32], [_I32])
_SUBSCRIPTION_SIZE = 48
_EVENT_SIZE = 32
_ERRNO_SUCCESS, _ERRNO_AGAIN, _ERRNO_FAULT, _ERRNO_INVAL = 0, 6, 21, 28


#: Fuel per subscription of one poll_oneoff call, for the Python loop over them (~0.5 µs each).
POLL_SUBSCRIPTION_FUEL = 1_000
#: Most subscriptions one poll_oneoff call may pass (more is EINVAL). Real programs poll a
#: handful; the cap bounds the host's loop per call whatever fuel the caller has.
MAX_POLL_SUBSCRIPTIONS = 1024
#: Most iovecs one fd_write call may pass (POSIX's usual IOV_MAX; more is EINVAL).
MAX_IOVECS = 1024
#: Fuel per iovec of one fd_write call, paid before the iovec table is read.
IOVEC_FUEL = 100
#: Most bytes one random_get call may ask for (more is EINVAL): filling it runs in the host,
#: where no deadline can stop it, so one call is kept to about a millisecond.
MAX_RANDOM_BYTES = 1024 * 1024


def _poll_oneoff(call_fuel: int) -> Callable[..., int]:
    def poll_oneoff(caller: wasmtime.Caller, in_ptr: int, out_ptr: int, count: int, nevents_ptr: int) -> int:
        return poll_oneoff_without_sleeping(caller, in_ptr, out_ptr, count, nevents_ptr, call_fuel)

    return poll_oneoff


def poll_oneoff_without_sleeping(caller: wasmtime.Caller, in_ptr: int, out_ptr: int, count: int,
                                 nevents_ptr: int, call_fuel: int = 0) -> int:
    """`poll_oneoff` where every clock has already expired and every fd is ready."""
    try:
        in_ptr, out_ptr, count, nevents_ptr = (v & 0xFFFFFFFF for v in (in_ptr, out_ptr, count, nevents_ptr))
        if count == 0 or count > MAX_POLL_SUBSCRIPTIONS:
            return _ERRNO_INVAL
        # Paid before any work: the loop below is bounded by the cap and paid for in fuel.
        if not charge_fuel(caller, call_fuel + count * POLL_SUBSCRIPTION_FUEL):
            return _ERRNO_AGAIN
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            return _ERRNO_FAULT
        size = memory.data_len(caller)
        if (in_ptr + count * _SUBSCRIPTION_SIZE > size or out_ptr + count * _EVENT_SIZE > size
                or nevents_ptr + 4 > size):
            return _ERRNO_FAULT
        subs = bytes(memory.read(caller, in_ptr, in_ptr + count * _SUBSCRIPTION_SIZE))
        events = bytearray(count * _EVENT_SIZE)
        for i in range(count):
            sub = subs[i * _SUBSCRIPTION_SIZE : (i + 1) * _SUBSCRIPTION_SIZE]
            event = i * _EVENT_SIZE
            events[event : event + 8] = sub[0:8]  # userdata
            events[event + 10] = sub[8]  # event type = subscription tag (clock, fd_read, fd_write)
        memory.write(caller, bytes(events), out_ptr)
        memory.write(caller, count.to_bytes(4, "little"), nevents_ptr)
        return _ERRNO_SUCCESS
    except Exception:  # a host call must not raise into Wasm
        logger.debug("poll_oneoff failed", exc_info=True)
        return _ERRNO_FAULT


FD_WRITE_TYPE = wasmtime.FuncType([_I32, _I32, _I32, _I32], [_I32])
_ERRNO_BADF = 8
_IOVEC_SIZE = 8
_iovecs = struct.Struct("<II").iter_unpack


class WasiStreams:
    """The stdout/stderr line buffers of one instance, found from a host call by its store,
    with that plugin's cap on bytes per `fd_write` call."""

    __slots__ = ("__weakref__", "err", "max_write_bytes", "out")

    def __init__(self, out: StreamLog, err: StreamLog, max_write_bytes: int) -> None:
        self.out, self.err = out, err
        self.max_write_bytes = max_write_bytes


#: Store context address -> that instance's streams. The instance holds the only strong
#: reference, so an entry goes away with its instance (a new store at a reused address
#: registers its own before any of its code runs).
_STREAMS: weakref.WeakValueDictionary[int, WasiStreams] = weakref.WeakValueDictionary()


def register_streams(ctx: int, out: StreamLog, err: StreamLog, max_write_bytes: int) -> WasiStreams:
    streams = _STREAMS[ctx] = WasiStreams(out, err, max_write_bytes)
    return streams


def _fd_write(call_fuel: int) -> Callable[..., int]:
    def fd_write(caller: wasmtime.Caller, fd: int, iovs: int, count: int, nwritten_ptr: int) -> int:
        """WASI `fd_write` for a plugin with no files: stdout and stderr go to its log.

        Bounded before any work: at most `MAX_IOVECS` iovecs (more is EINVAL), paid for in fuel
        before the table is read; at most `Limits.max_write_bytes` bytes taken (a short write:
        the count written says how many), paid for (one fuel per byte) before they are copied.
        Splitting lines and rate-limiting them run in batches at C speed (see StreamLog)."""
        try:
            ctx = native.caller_context(caller)
            streams = _STREAMS.get(ctx)
            if fd not in (1, 2) or streams is None:
                return _ERRNO_BADF
            iovs, count, nwritten_ptr = (v & 0xFFFFFFFF for v in (iovs, count, nwritten_ptr))
            if count > MAX_IOVECS:
                return _ERRNO_INVAL
            if not charge_fuel(caller, call_fuel + count * IOVEC_FUEL):
                return _ERRNO_AGAIN  # nothing written; out of fuel, the plugin stops at its next loop or call
            memory = caller.get("memory")
            if not isinstance(memory, wasmtime.Memory):
                return _ERRNO_FAULT
            size = memory.data_len(caller)
            if iovs + count * _IOVEC_SIZE > size or nwritten_ptr + 4 > size:
                return _ERRNO_FAULT
            # Take whole iovecs, then part of one, up to the cap: a short write.
            room = streams.max_write_bytes
            spans: list[tuple[int, int]] = []
            for ptr, length in _iovecs(bytes(memory.read(caller, iovs, iovs + count * _IOVEC_SIZE))):
                if ptr + length > size:
                    return _ERRNO_FAULT
                if length:
                    take = min(length, room)
                    spans.append((ptr, take))
                    room -= take
                    if not room:
                        break
            total = streams.max_write_bytes - room
            # One byte of output costs one fuel on top of the call: copying and splitting lines
            # is host work the plugin's instruction count does not show.
            if total and not charge_fuel(caller, total):
                return _ERRNO_AGAIN
            data = b"".join(bytes(memory.read(caller, ptr, ptr + length)) for ptr, length in spans)
            (streams.out if fd == 1 else streams.err)(data)
            memory.write(caller, total.to_bytes(4, "little"), nwritten_ptr)
            return _ERRNO_SUCCESS
        except Exception:  # a host call must not raise into Wasm
            logger.debug("fd_write failed", exc_info=True)
            return _ERRNO_FAULT

    return fd_write


RANDOM_GET_TYPE = wasmtime.FuncType([_I32, _I32], [_I32])


def _random_get(call_fuel: int) -> Callable[..., int]:
    def random_get(caller: wasmtime.Caller, buf: int, length: int) -> int:
        """WASI `random_get` from the OS's CSPRNG, paid for in fuel (one per byte) like any host
        work, at most `MAX_RANDOM_BYTES` per call (more is EINVAL)."""
        try:
            buf, length = buf & 0xFFFFFFFF, length & 0xFFFFFFFF
            if length > MAX_RANDOM_BYTES:
                return _ERRNO_INVAL
            if not charge_fuel(caller, call_fuel + length):
                return _ERRNO_AGAIN  # nothing written; out of fuel, the plugin stops at its next loop or call
            memory = caller.get("memory")
            if not isinstance(memory, wasmtime.Memory):
                return _ERRNO_FAULT
            if buf + length > memory.data_len(caller):
                return _ERRNO_FAULT
            if length:
                memory.write(caller, os.urandom(length), buf)
            return _ERRNO_SUCCESS
        except Exception:  # a host call must not raise into Wasm
            logger.debug("random_get failed", exc_info=True)
            return _ERRNO_FAULT

    return random_get


def wasi_config(sink: PluginLog) -> tuple[wasmtime.WasiConfig, list[StreamLog]]:
    """A WASI with no capabilities (no dirs, env, args; empty stdin), and the stdout/stderr line
    buffers that the host's own `fd_write` writes to the plugin's log.

    No Python callback is given to wasmtime for the streams (`stdout_custom`): the only WASI call
    that writes to them is `fd_write`, which is ours, so wasmtime's streams are its default sinks
    and never see a byte. That is what makes teardown safe: wasmtime drops a WASI context's output
    streams on one of its runtime (tokio) threads, and a Python stream callback made that thread
    call into Python (to free the callback) -- when the Store was freed during interpreter
    finalization (a plugin kept alive by a module global or a reference cycle), into a half
    torn-down interpreter, and the process aborted (exit status 134, "panic in a function that
    cannot unwind"). With no Python callback registered there, no wasmtime thread ever runs Python.
    """
    return wasmtime.WasiConfig(), [StreamLog(sink, "info"), StreamLog(sink, "error")]
