"""Everything this host takes from wasmtime-py's private API, in one place.

The hot path calls a few wasmtime C API functions directly: wasmtime-py declares its C functions
with typed-pointer arguments, which makes ctypes check and convert every argument object on each
call. Declared with `c_void_p` arguments and called with plain integer addresses, the same calls
cost about half as much -- and a sync reaction is made of little else. Callers must keep the objects
behind those addresses (store, function structs, argument arrays) alive; `PluginInstance` holds them
for its whole life.

wasmtime-py's private names this needs (`_bindings`, `_func.LAST_EXCEPTION`, `_extern.wrap_extern`,
`Store._context()`, `Caller._context()`, `Memory._memory`, `Func._func`, `Instance._instance`,
`Trap._from_ptr`, `WasmtimeError._from_ptr`) are used here and nowhere else in `wasm_abi`; the rest of
the package calls the functions below. wasmtime-py may change any of them in any release (the
dependency pins the major version): `check_private_api()` tries every one and names the first that is
missing with the installed wasmtime version (tests/wasm_abi/test_native.py runs it), and this module's
import fails the same way if a module-level name is gone.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
from ctypes import c_size_t, c_uint64, c_void_p
from collections.abc import Callable
from typing import Any

import wasmtime

WASMTIME_VERSION = importlib.metadata.version("wasmtime")


class PrivateApiChanged(RuntimeError):
    """wasmtime-py no longer has a private name this host relies on."""

    def __init__(self, name: str, detail: str = "") -> None:
        super().__init__(
            f"wasmtime {WASMTIME_VERSION} has no {name}, which wasm_abi/native.py uses (private wasmtime-py "
            f"API){': ' + detail if detail else ''}; adapt wasm_abi/native.py to this wasmtime version"
        )
        self.name = name


try:
    import wasmtime._func as _wasmtime_func
    from wasmtime import _bindings as ffi
    from wasmtime._extern import wrap_extern as _wrap_extern
except ImportError as exc:  # pragma: no cover - only on an incompatible wasmtime
    raise PrivateApiChanged(getattr(exc, "name", None) or str(exc), str(exc)) from exc

for _name in ("wasmtime_val_raw", "wasmtime_extern_t", "wasmtime_instance_export_get", "wasmtime_memory_data",
              "wasmtime_error_t", "wasm_trap_t", "dll"):
    if not hasattr(ffi, _name):  # pragma: no cover - only on an incompatible wasmtime
        raise PrivateApiChanged(f"wasmtime._bindings.{_name}")
if not hasattr(_wasmtime_func, "LAST_EXCEPTION"):  # pragma: no cover
    raise PrivateApiChanged("wasmtime._func.LAST_EXCEPTION")

# The same library loaded as a PyDLL: its functions keep the GIL.  Used for the trivial
# getters/setters, where releasing and re-taking the GIL costs more than the call itself; calls
# that run Wasm go through `ffi.dll` and release it, so reactions on other threads run in parallel.
_dll: ctypes.CDLL = vars(ffi)["dll"]  # re-exported by _bindings without being declared there
_dll_keep_gil = ctypes.PyDLL(_dll._name)


def _declare(name: str, restype: Any, *argtypes: Any, keep_gil: bool = False) -> Any:
    lib = _dll_keep_gil if keep_gil else _dll
    func = lib._FuncPtr((name, lib))
    func.restype = restype
    func.argtypes = list(argtypes)
    return func


#: (context, func*, args_and_results*, len, trap**) -> error* (as int or None)
call_unchecked: Callable[[int, int, int, int, int], int | None] = _declare("wasmtime_func_call_unchecked", c_void_p, c_void_p, c_void_p, c_void_p, c_size_t,
                          c_void_p)
#: (context, fuel) -> error*
set_fuel: Callable[[int, int], int | None] = _declare("wasmtime_context_set_fuel", c_void_p, c_void_p, c_uint64, keep_gil=True)
#: (context, uint64* fuel) -> error*
get_fuel: Callable[[int, int], int | None] = _declare("wasmtime_context_get_fuel", c_void_p, c_void_p, c_void_p, keep_gil=True)
#: (context, ticks beyond the current epoch)
set_epoch_deadline: Callable[[int, int], None] = _declare("wasmtime_context_set_epoch_deadline", None, c_void_p, c_uint64, keep_gil=True)
#: (engine*): one atomic increment; keeping the GIL spares the epoch ticker a second GIL hand-over per tick
increment_epoch: Callable[[int], None] = _declare("wasmtime_engine_increment_epoch", None, c_void_p, keep_gil=True)
#: (context, memory*) -> size in bytes
memory_data_size: Callable[[int, int], int] = _declare("wasmtime_memory_data_size", c_size_t, c_void_p, c_void_p, keep_gil=True)

#: A host function as the C API calls it without wasmtime-py's trampoline:
#: (env, caller*, args_and_results*, len) -> trap* (0: no trap).
HOST_CALLBACK = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_void_p, c_size_t)
#: (linker*, module, module_len, name, name_len, functype*, callback, env, finalizer) -> error*
_define_unchecked = _declare("wasmtime_linker_define_func_unchecked", c_void_p, c_void_p, ctypes.c_char_p,
                             c_size_t, ctypes.c_char_p, c_size_t, c_void_p, HOST_CALLBACK, c_void_p, c_void_p)
#: (caller*) -> context*, inside a host function
caller_context_raw: Callable[[int], int] = _declare("wasmtime_caller_context", c_void_p, c_void_p, keep_gil=True)
#: (caller*, name, name_len, wasmtime_extern_t*) -> found, inside a host function
_caller_export_get = _declare("wasmtime_caller_export_get", ctypes.c_bool, c_void_p, ctypes.c_char_p, c_size_t,
                              c_void_p, keep_gil=True)
#: (context, memory*) -> address of byte 0
_memory_data = _declare("wasmtime_memory_data", c_void_p, c_void_p, c_void_p, keep_gil=True)
_EXTERN_MEMORY = 3  # WASMTIME_EXTERN_MEMORY


def caller_memory(caller: int, ctx: int) -> tuple[int, int] | None:
    """(address of byte 0, size in bytes) of the calling instance's exported `memory`, inside a C-level
    host function (`caller`, `ctx`: its raw caller and that caller's context); None if it exports no
    memory by that name. Valid only until the host function returns (the plugin may grow it after)."""
    item = ffi.wasmtime_extern_t()
    if not _caller_export_get(caller, b"memory", 6, ctypes.addressof(item)) or item.kind != _EXTERN_MEMORY:  # type: ignore[comparison-overlap]  # a field reads as int
        return None
    mem = ctypes.addressof(item.of.memory)
    return _memory_data(ctx, mem) or 0, memory_data_size(ctx, mem)


def define_host_func(linker: wasmtime.Linker, module: str, name: str, functype: wasmtime.FuncType,
                     callback: Any, env: int | None = None) -> None:
    """Define `module.name` in `linker` as a C-level host function (`HOST_CALLBACK`): no wasmtime-py
    trampoline, no value conversion (~1 µs per call instead of tens). The caller keeps `callback` alive
    as long as any store linked through `linker` may call it (hostcalls keeps its callbacks in module
    globals). The callback must never raise and must write its results into the slots itself. `env` is
    handed to every call as the callback's first argument (an integer the callback looks things up by)."""
    module_raw, name_raw = module.encode(), name.encode()
    err = _define_unchecked(address(linker.ptr()), module_raw, len(module_raw), name_raw, len(name_raw),
                            address(functype.ptr()), callback, env, None)
    if err:
        raise take_error(err)


#: The process's whole address space as one byte view, for reading and writing the raw argument and
#: result slots a C-level host function is handed (`struct.unpack_from(PROCESS_MEMORY, args)`: ~0.08 µs,
#: where `ctypes.string_at` + `unpack` cost ~0.4 µs). Making it maps nothing; it must only ever be
#: indexed at addresses wasmtime handed over for the duration of the call (hostcalls does nothing else).
PROCESS_MEMORY: memoryview = memoryview((ctypes.c_ubyte * (1 << 62)).from_address(0)).cast("B")

#: Bytes of one argument/result slot of `call_unchecked` (a `wasmtime_val_raw_t`).
VAL_RAW_SIZE: int = ctypes.sizeof(ffi.wasmtime_val_raw)


def address(obj: Any) -> int:
    """The address of a ctypes object, or of what a ctypes pointer points to."""
    if isinstance(obj, ctypes._Pointer):
        return ctypes.cast(obj, c_void_p).value or 0
    return ctypes.addressof(obj)


def new_slots(count: int) -> Any:
    """A zeroed array of `count` argument/result slots for `call_unchecked`."""
    return (ffi.wasmtime_val_raw * count)()


def engine_address(engine: wasmtime.Engine) -> int:
    """The address of an engine (what `increment_epoch` takes); `engine` must outlive its use."""
    return address(engine.ptr())


def store_context(store: wasmtime.Store) -> int:
    """The address of a store's context (what every native call takes)."""
    return address(store._context())


def caller_context(caller: wasmtime.Caller) -> int:
    """The address of the calling store's context, inside a host function."""
    return address(caller._context())


def export_get(store: wasmtime.Store, instance: wasmtime.Instance, name: str) -> Any:
    """One export of `instance` by name (a `Func`, `Memory`, ...), or None. (`Instance.exports()` wraps every export, asking
    wasmtime for the n-th one each time: quadratic, 30 s for a module with 20 000 exports.)"""
    raw = name.encode()
    item = ffi.wasmtime_extern_t()
    if not ffi.wasmtime_instance_export_get(store._context(), ctypes.byref(instance._instance),
                                            ctypes.create_string_buffer(raw), len(raw), ctypes.byref(item)):
        return None
    return _wrap_extern(item)


def memory_address(memory: wasmtime.Memory) -> int:
    """The address of a memory's `wasmtime_memory_t` (kept alive by `memory`)."""
    return ctypes.addressof(memory._memory)


def memory_base(store: wasmtime.Store, memory: wasmtime.Memory) -> int:
    """The address of byte 0 of a linear memory."""
    return address(ffi.wasmtime_memory_data(store._context(), ctypes.byref(memory._memory)))


def func_address(func: wasmtime.Func) -> int:
    """The address of a function's `wasmtime_func_t` (kept alive by `func`)."""
    return ctypes.addressof(func._func)


def take_trap(ptr: int) -> wasmtime.Trap:
    """The `Trap` at `ptr` (a `wasm_trap_t*` a call returned), taking ownership of it."""
    return wasmtime.Trap._from_ptr(ctypes.cast(ptr, ctypes.POINTER(ffi.wasm_trap_t)))


def take_error(ptr: int) -> wasmtime.WasmtimeError:
    """The `WasmtimeError` at `ptr` (a `wasmtime_error_t*` a call returned), taking ownership of it;
    an `ExitTrap` for WASI `proc_exit`."""
    return wasmtime.WasmtimeError._from_ptr(ctypes.cast(ptr, ctypes.POINTER(ffi.wasmtime_error_t)))


def forget_host_exception() -> None:
    """Drop the exception a Python host function left behind when it raised: wasmtime-py keeps it in a
    global to re-raise from its own `Func.__call__`, which this host does not use; left there, it would
    leak into an unrelated later call."""
    _wasmtime_func.LAST_EXCEPTION = None


_CHECK_WAT = """(module
  (import "m" "f" (func $f))
  (memory (export "memory") 1)
  (func (export "run") (call $f))
  (func (export "boom") unreachable))"""


def check_private_api() -> None:
    """Use every private name above once on a tiny module; raise `PrivateApiChanged` naming the first
    one this wasmtime version lacks (or that no longer behaves as this module expects)."""
    checks: list[tuple[str, Any]] = []
    try:
        engine = wasmtime.Engine()
        store = wasmtime.Store(engine)
        module = wasmtime.Module(engine, _CHECK_WAT)
        seen: list[int] = []

        def host(caller: wasmtime.Caller) -> None:
            seen.append(caller_context(caller))

        func = wasmtime.Func(store, wasmtime.FuncType([], []), host, access_caller=True)
        instance = wasmtime.Instance(store, module, [func])
        checks = [
            ("Store._context()", lambda: store_context(store)),
            ("Instance._instance / wasmtime._extern.wrap_extern", lambda: export_get(store, instance, "run")),
            ("Memory._memory", lambda: memory_address(export_get(store, instance, "memory"))),
            ("wasmtime._bindings.wasmtime_memory_data", lambda: memory_base(store, export_get(store, instance,
                                                                                              "memory"))),
            ("Func._func", lambda: func_address(export_get(store, instance, "run"))),
        ]  # export_get returns Any: a wrong extern type shows as the AttributeError of its check
        for name, check in checks:
            try:
                value = check()
            except (AttributeError, TypeError) as exc:
                raise PrivateApiChanged(name, f"{type(exc).__name__}: {exc}") from exc
            if not value:
                raise PrivateApiChanged(name, "it returned nothing")
        args = new_slots(2)
        trap = c_void_p(None)
        ctx = store_context(store)
        for export, expect_trap in (("run", False), ("boom", True)):
            callee = export_get(store, instance, export)  # alive across the call: the call uses its struct
            err = call_unchecked(ctx, func_address(callee), ctypes.addressof(args), 2, ctypes.addressof(trap))
            if err:
                take_error(err)
                raise PrivateApiChanged("wasmtime_func_call_unchecked", f"calling {export!r} failed")
            if bool(trap.value) != expect_trap:
                raise PrivateApiChanged("wasmtime_func_call_unchecked", f"calling {export!r} did not behave")
        if not seen:
            raise PrivateApiChanged("Caller._context()", "the host function never ran")
        try:
            caught = take_trap(trap.value or 0)
        except (AttributeError, TypeError) as exc:
            raise PrivateApiChanged("Trap._from_ptr", f"{type(exc).__name__}: {exc}") from exc
        if caught.trap_code != wasmtime.TrapCode.UNREACHABLE:
            raise PrivateApiChanged("Trap._from_ptr", f"the trap code is {caught.trap_code!r}")
        if not hasattr(wasmtime.WasmtimeError, "_from_ptr"):
            raise PrivateApiChanged("WasmtimeError._from_ptr")
        forget_host_exception()
    except PrivateApiChanged:
        raise
    except AttributeError as exc:  # wasmtime-py's own code tripped over a name it no longer has
        owner = exc.obj.__name__ if isinstance(exc.obj, type) else type(exc.obj).__name__
        raise PrivateApiChanged(f"{owner}.{exc.name}", str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - any other surprise is the same news
        raise PrivateApiChanged("(unknown)", f"{type(exc).__name__}: {exc}") from exc
