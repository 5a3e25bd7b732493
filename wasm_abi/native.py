"""The few wasmtime C API functions on the hot path, declared for speed.

wasmtime-py declares its C functions with typed-pointer arguments, which makes ctypes check
and convert every argument object on each call.  Declared with `c_void_p` arguments and called
with plain integer addresses, the same calls cost about half as much — and a sync reaction is
made of little else.  Callers must keep the objects behind those addresses (store, function
structs, argument arrays) alive; `PluginInstance` holds them for its whole life.
"""

from __future__ import annotations

import ctypes
from ctypes import c_size_t, c_uint64, c_void_p
from typing import Any

from wasmtime import _bindings as ffi

# The same library loaded as a PyDLL: its functions keep the GIL.  Used for the trivial
# getters/setters, where releasing and re-taking the GIL costs more than the call itself; calls
# that run Wasm go through `ffi.dll` and release it, so reactions on other threads run in parallel.
_dll_keep_gil = ctypes.PyDLL(ffi.dll._name)


def _declare(name: str, restype: Any, *argtypes: Any, keep_gil: bool = False) -> Any:
    lib = _dll_keep_gil if keep_gil else ffi.dll
    func = lib._FuncPtr((name, lib))
    func.restype = restype
    func.argtypes = list(argtypes)
    return func


#: (context, func*, args_and_results*, len, trap**) -> error* (as int or None)
call_unchecked = _declare("wasmtime_func_call_unchecked", c_void_p, c_void_p, c_void_p, c_void_p, c_size_t,
                          c_void_p)
#: (context, fuel) -> error*
set_fuel = _declare("wasmtime_context_set_fuel", c_void_p, c_void_p, c_uint64, keep_gil=True)
#: (context, uint64* fuel) -> error*
get_fuel = _declare("wasmtime_context_get_fuel", c_void_p, c_void_p, c_void_p, keep_gil=True)
#: (context, ticks beyond the current epoch)
set_epoch_deadline = _declare("wasmtime_context_set_epoch_deadline", None, c_void_p, c_uint64, keep_gil=True)
#: (context, memory*) -> size in bytes
memory_data_size = _declare("wasmtime_memory_data_size", c_size_t, c_void_p, c_void_p, keep_gil=True)


def address(obj: Any) -> int:
    """The address of a ctypes object, or of what a ctypes pointer points to."""
    if isinstance(obj, ctypes._Pointer):  # type: ignore[attr-defined]
        return ctypes.cast(obj, c_void_p).value or 0
    return ctypes.addressof(obj)


def as_error(ptr: int) -> Any:
    return ctypes.cast(ptr, ctypes.POINTER(ffi.wasmtime_error_t))


def as_trap(ptr: int) -> Any:
    return ctypes.cast(ptr, ctypes.POINTER(ffi.wasm_trap_t))
