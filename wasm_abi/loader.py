"""Turning bytes into a checked, compiled, linkable plugin module.

Every check ABI v1 makes before running any plugin code lives here, so that a refused module
gets one precise `PluginLoadError` naming what is wrong (bad bytes, size, version marker,
exports, imports) and nothing of it ever executes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import wasmtime

from .compile_worker import (
    CompileFailed,
    CompileMemoryExceeded,
    CompileTimeout,
    ShapeRefused,
    wat2wasm_in_child,
)
from .engine import PROPOSALS, engine_for
from .capabilities import NO_GRANTS, Grants
from .errors import PluginLoadError
from .imports import build_linker, check_imports
from .limits import Limits
from .module_cache import compile_module
from .plugin_log import PluginLog

WASM_MAGIC = b"\0asm"
ABI_MARKER = "eventgateway_abi_v1"
ABI_MARKER_PREFIX = "eventgateway_abi_v"

# name -> (params, results) as wasmtime prints value types
REQUIRED_FUNCS: dict[str, tuple[list[str], list[str]]] = {
    ABI_MARKER: ([], []),
    "alloc": (["i32"], ["i32"]),
    "subscriptions": ([], ["i64"]),
    "react": (["i32", "i32"], ["i64"]),
}
OPTIONAL_FUNCS: dict[str, tuple[list[str], list[str]]] = {
    "_initialize": ([], []),
    "init": (["i32", "i32"], ["i64"]),
}

#: WAT text up to this size is assembled in-process (~50 bytes of memory per byte of text at
#: worst: a few MB and milliseconds); longer text is assembled by a compile child, under
#: `Limits.compile_memory_bytes` and `Limits.compile_timeout` (32 MiB of hostile WAT text took
#: 4 s and 2 GB in-process).
WAT_IN_PROCESS_MAX_BYTES = 64 * 1024

#: Fragments of wasmtime's validation errors for a turned-off proposal -> the proposal's name.
_PROPOSAL_ERRORS: tuple[tuple[str, str], ...] = (
    ("stack switching", "stack switching (typed continuations)"),
    ("continuation", "stack switching (typed continuations)"),
    ("exceptions proposal", "exception handling"),
    ("tail call", "tail calls"),
    ("function references", "function references"),
    ("relaxed simd", "relaxed SIMD"),
    ("without the gc feature", "GC"),
    ("requires gc", "GC"),
    ("gc proposal", "GC"),
    ("gc types are disallowed", "GC (externref needs the GC runtime)"),
    ("shared memor", "threads"),
    ("threads", "threads"),
    ("memory64", "memory64"),
    ("multiple memories", "multi-memory"),
    ("wide arithmetic", "wide arithmetic"),
    ("custom page sizes", "custom page sizes"),
)
ENABLED_PROPOSALS_TEXT = ("MVP, mutable globals, sign extension, non-trapping float-to-int, "
                          + ", ".join(n.removeprefix("wasm_").replace("_", " ")
                                      for n, on in PROPOSALS.items() if on))


def _disabled_proposal(message: str) -> str | None:
    """The proposal a wasmtime validation error says is turned off, if it says so."""
    lowered = message.lower()
    for fragment, proposal in _PROPOSAL_ERRORS:
        if fragment in lowered:
            return proposal
    if "not enabled" in lowered or "must be enabled" in lowered or "support is not" in lowered:
        return "a WebAssembly proposal"
    return None


def _invalid_module_error(name: str, origin: str, message: str) -> PluginLoadError:
    proposal = _disabled_proposal(message)
    if proposal is not None:
        return PluginLoadError(
            name, f"{origin} uses the {proposal} proposal, which this host turns off (enabled: "
            f"{ENABLED_PROPOSALS_TEXT}): {message}", "unsupported_feature",
        )
    return PluginLoadError(name, f"{origin} is not a valid WebAssembly module: {message}", "invalid_module")


def _limit_error(name: str, origin: str, exc: Exception) -> PluginLoadError:
    return PluginLoadError(name, f"{origin}: {exc}; the compiler was stopped", "compile_limit")


def to_wasm_binary(name: str, data: bytes, limits: Limits, origin: str) -> bytes:
    """The module as Wasm binary: bytes starting with `\\0asm` as they are, WAT text compiled."""
    if len(data) > limits.max_module_bytes:
        raise PluginLoadError(
            name, f"{origin} is {len(data)} bytes, over the module size limit of {limits.max_module_bytes}",
            "too_large",
        )
    if data.startswith(WASM_MAGIC):
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PluginLoadError(
            name, f"{origin} is neither a WebAssembly binary (no \\0asm magic) nor WAT text", "invalid_module"
        ) from None
    try:
        if len(data) <= WAT_IN_PROCESS_MAX_BYTES:
            return bytes(wasmtime.wat2wasm(text))
        return wat2wasm_in_child(data, limits.compile_timeout, limits.compile_memory_bytes)
    except (wasmtime.WasmtimeError, CompileFailed) as exc:
        raise PluginLoadError(name, f"{origin} is not a WebAssembly binary and not valid WAT: {exc}",
                              "invalid_module") from None
    except (CompileTimeout, CompileMemoryExceeded) as exc:
        raise PluginLoadError(name, f"{origin}: assembling its WAT text: {exc}; the assembler was stopped",
                              "compile_limit") from None


def _signature(ty: wasmtime.FuncType) -> tuple[list[str], list[str]]:
    return [str(p) for p in ty.params], [str(r) for r in ty.results]


def _fmt(sig: tuple[list[str], list[str]]) -> str:
    return f"({', '.join(sig[0])}) -> ({', '.join(sig[1])})"


def check_exports(name: str, module: wasmtime.Module) -> list[str]:
    """Check the version marker and the ABI exports; returns the function exports to resolve."""
    # Only the types of the exports ABI v1 names are read: each costs Python time, and a module
    # may have 100 000 exports.
    wanted = {"memory", *REQUIRED_FUNCS, *OPTIONAL_FUNCS}
    exports: dict[str, Any] = {}
    for export in module.exports:
        name = export.name
        exports[name] = export.type if name in wanted else None
    if ABI_MARKER not in exports:
        others = sorted(n for n in exports if n.startswith(ABI_MARKER_PREFIX))
        if others:
            raise PluginLoadError(
                name, f"declares ABI version marker {', '.join(others)}, but this host supports only "
                f"{ABI_MARKER} (ABI v1)", "abi_version",
            )
        raise PluginLoadError(
            name, f"has no {ABI_MARKER} export, so it does not declare a known ABI version; an event "
            f"gateway plugin must export the function {ABI_MARKER}: () -> ()", "abi_version",
        )
    missing = [n for n in ["memory", *REQUIRED_FUNCS] if n not in exports]
    if missing:
        raise PluginLoadError(name, f"is missing required export(s): {', '.join(missing)}", "missing_export")
    memory = exports["memory"]
    if not isinstance(memory, wasmtime.MemoryType):
        raise PluginLoadError(name, "export 'memory' must be a linear memory", "bad_export")
    if memory.is_64:
        raise PluginLoadError(name, "export 'memory' is a 64-bit memory; ABI v1 uses 32-bit memory", "bad_export")
    funcs = []
    for table in (REQUIRED_FUNCS, OPTIONAL_FUNCS):
        for func, want in table.items():
            ty = exports.get(func)
            if ty is None:
                continue
            if not isinstance(ty, wasmtime.FuncType):
                raise PluginLoadError(name, f"export {func!r} must be a function {_fmt(want)}", "bad_export")
            got = _signature(ty)
            if got != (want[0], want[1]):
                raise PluginLoadError(
                    name, f"export {func!r} has type {_fmt(got)}; ABI v1 requires {_fmt(want)}", "bad_export"
                )
            if func != ABI_MARKER:
                funcs.append(func)
    return funcs


def compile_checked(name: str, wasm: bytes, limits: Limits, origin: str, cache_dir: Path | None) -> wasmtime.Module:
    """Compile (or fetch from the cache) in a child under `Limits.compile_memory_bytes` and
    `Limits.compile_timeout`, as a `PluginLoadError` naming the problem when the module has a
    refused shape ("module_shape"), uses a turned-off proposal ("unsupported_feature"), is
    invalid ("invalid_module") or is over a compile limit ("compile_limit")."""
    engine, settings = engine_for(limits.max_stack_bytes)
    try:
        return compile_module(engine, settings, wasm, hashlib.sha256(wasm).hexdigest(), cache_dir,
                              max_stack_bytes=limits.max_stack_bytes, timeout=limits.compile_timeout,
                              memory_bytes=limits.compile_memory_bytes)
    except wasmtime.WasmtimeError as exc:  # deserializing our own child's output failed
        raise PluginLoadError(name, f"{origin} could not be compiled: {exc}", "compile_failed") from None
    except ShapeRefused as exc:
        raise PluginLoadError(name, f"{origin} is refused before compiling: {exc} (see ABI.md section 8, "
                              "module shape)", "module_shape") from None
    except CompileFailed as exc:
        if exc.invalid:
            raise _invalid_module_error(name, origin, str(exc)) from None
        raise PluginLoadError(name, f"{origin} could not be compiled: {exc}", "compile_failed") from None
    except (CompileTimeout, CompileMemoryExceeded) as exc:
        raise _limit_error(name, origin, exc) from None


@dataclass
class LoadedModule:
    """A plugin module that passed every load-time check, with what instances need."""

    name: str
    sha256: str
    limits: Limits
    engine: wasmtime.Engine
    module: wasmtime.Module
    pre: wasmtime.InstancePre
    uses_wasi: bool
    functions: list[str]
    config_bytes: bytes
    log: PluginLog
    linker: wasmtime.Linker = field(repr=False)
    grants: Grants = NO_GRANTS


def load_module(
    data: bytes,
    *,
    name: str,
    limits: Limits,
    config: dict[str, Any] | None,
    log: PluginLog,
    origin: str,
    cache_dir: Path | None,
    grants: Grants = NO_GRANTS,
) -> LoadedModule:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"plugin module must be bytes, got {type(data).__name__}")
    data = bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    wasm = to_wasm_binary(name, data, limits, origin)
    if len(wasm) > limits.max_module_bytes:
        raise PluginLoadError(name, f"{origin} compiles to {len(wasm)} bytes, over the module size limit of "
                              f"{limits.max_module_bytes}", "too_large")
    module = compile_checked(name, wasm, limits, origin, cache_dir)
    engine, _ = engine_for(limits.max_stack_bytes)  # the one compile_checked compiled for
    functions = check_exports(name, module)
    uses_wasi = check_imports(name, module, grants)
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise TypeError(f"plugin config must be a dict, got {type(config).__name__}")
    try:
        config_bytes = msgpack.packb(config, use_bin_type=True)
    except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types
        raise PluginLoadError(name, f"config cannot be encoded as msgpack: {exc}", "bad_config") from None
    linker = build_linker(engine, uses_wasi, log, limits.log_call_fuel, grants)
    try:
        pre = linker.instantiate_pre(module)
    except wasmtime.WasmtimeError as exc:
        raise PluginLoadError(name, f"cannot link the module's imports: {exc}", "forbidden_import") from None
    return LoadedModule(name, sha256, limits, engine, module, pre, uses_wasi, functions, config_bytes, log, linker,
                        grants)
