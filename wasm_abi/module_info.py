"""Describing a module without running it (for the CLI's `inspect`)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from .imports import _describe
from .limits import Limits
from .loader import ABI_MARKER_PREFIX, compile_checked, to_wasm_binary


@dataclass(frozen=True)
class ModuleInfo:
    """What a module exports and imports, its memory and size, and its declared ABI version."""

    size: int  # bytes of the file/bytes given
    wasm_size: int  # bytes of the Wasm binary (differs for WAT text)
    sha256: str
    abi_versions: tuple[str, ...]  # e.g. ("eventgateway_abi_v1",)
    exports: tuple[tuple[str, str], ...]  # (name, description)
    imports: tuple[tuple[str, str, str], ...]  # (module, name, description)
    memory_min_pages: int | None
    memory_max_pages: int | None


def inspect_module(source: bytes | str | os.PathLike[str], limits: Limits | None = None) -> ModuleInfo:
    """Compile (without instantiating) a module from a path or bytes and describe it."""
    limits = limits or Limits()
    if isinstance(source, (bytes, bytearray)):
        data, origin, name = bytes(source), "module", "module"
    else:
        path = Path(source)
        with path.open("rb") as f:  # bounded: a device has no meaningful size
            data = f.read(limits.max_module_bytes + 1)
        origin, name = str(path), path.stem
    wasm = to_wasm_binary(name, data, limits, origin)
    module = compile_checked(name, wasm, limits, origin, cache_dir=None)
    exports = tuple((e.name, _describe(e.type)) for e in module.exports)
    imports = tuple((i.module, i.name or "", _describe(i.type)) for i in module.imports)
    memory = next((e.type for e in module.exports if e.name == "memory"), None)
    mem_min = memory.limits.min if isinstance(memory, wasmtime.MemoryType) else None
    mem_max = memory.limits.max if isinstance(memory, wasmtime.MemoryType) else None
    return ModuleInfo(
        size=len(data),
        wasm_size=len(wasm),
        sha256=hashlib.sha256(data).hexdigest(),
        abi_versions=tuple(n for n, _ in exports if n.startswith(ABI_MARKER_PREFIX)),
        exports=exports,
        imports=imports,
        memory_min_pages=mem_min,
        memory_max_pages=mem_max,
    )
