"""Run a kit's round-trip test module: bytes in through `alloc` + `react`, bytes out of the packed result.

This drives the module with wasmtime directly rather than through `wasm_abi.Plugin`, because the output
is a bare msgpack value, not a reaction: the point is to test the kit's codec, not the host.
"""

from __future__ import annotations

from pathlib import Path

import wasmtime

from plugin_examples.build import REPO_ROOT, build_source

TEST_MODULES_DIR = REPO_ROOT / "build" / "test-modules"


def build_roundtrip(lang: str, source: Path) -> Path:
    """Compile `source` against `lang`'s kit (cached by content hash like the examples)."""
    return build_source(lang, source, TEST_MODULES_DIR / lang / f"{source.stem}.wasm")


class RoundTrip:
    def __init__(self, wasm: Path, memory_limit: int | None = None) -> None:
        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        if memory_limit is not None:
            self.store.set_limits(memory_size=memory_limit)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        self.store.set_wasi(wasmtime.WasiConfig())
        linker.define_func(
            "eventgateway", "log", wasmtime.FuncType([wasmtime.ValType.i32()] * 3, []), lambda *args: None
        )
        instance = linker.instantiate(self.store, wasmtime.Module.from_file(engine, str(wasm)))
        exports = instance.exports(self.store)
        if "_initialize" in exports:
            exports["_initialize"](self.store)
        self._alloc = exports["alloc"]
        self._react = exports["react"]
        self._memory = exports["memory"]

    def alloc(self, size: int) -> int:
        return self._alloc(self.store, size)

    @property
    def memory_bytes(self) -> int:
        return self._memory.data_len(self.store)

    def __call__(self, data: bytes) -> bytes:
        ptr = self._alloc(self.store, len(data))
        assert ptr != 0, "alloc failed"
        self._memory.write(self.store, data, ptr)
        packed = self._react(self.store, ptr, len(data))
        out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
        return bytes(self._memory.read(self.store, out_ptr, out_ptr + out_len))
