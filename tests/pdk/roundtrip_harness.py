"""Codec harness shared by the Rust, AssemblyScript and Go kits' msgpack tests.

Those kits' test modules (`wasm_abi/pdk/<lang>/testing/roundtrip/`) export `alloc` and
`roundtrip(ptr, len) -> i64` rather than `react` (the Go kit's glue already owns `react`): the
export decodes the bytes with the kit's reader and answers the packed re-encoding from its writer,
or 0 after logging why the input is not msgpack. The reference vectors and the canonical-encoding
rule are the ones every kit is held to (`tests/pdk/vectors.py`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import msgpack
import wasmtime

from plugin_examples.build import KITS_DIR, REPO_ROOT, build_source
from tests.pdk.vectors import Vector, canonical, decode

TEST_MODULES_DIR = REPO_ROOT / "build" / "test-modules"
ERROR_LEVEL = 3


def roundtrip_source(lang: str) -> Path:
    return KITS_DIR / lang / "testing" / "roundtrip"


class KitCodec:
    """One instance of a kit's roundtrip module, recording the log lines it writes."""

    def __init__(self, wasm: Path) -> None:
        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        self.store.set_wasi(wasmtime.WasiConfig())  # capability-less, as the host runs plugins
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        linker.define_func(
            "eventgateway", "log", wasmtime.FuncType([wasmtime.ValType.i32()] * 3, []), self._log, access_caller=True
        )
        self.logs: list[tuple[int, str]] = []
        exports = linker.instantiate(self.store, _compiled(engine, wasm)).exports(self.store)
        if "_initialize" in exports:
            exports["_initialize"](self.store)
        self._memory = exports["memory"]
        self._alloc = exports["alloc"]
        self._roundtrip = exports["roundtrip"]

    @classmethod
    def build(cls, lang: str) -> KitCodec:
        """Compile the kit's roundtrip module (cached by content hash) and instantiate it."""
        return cls(build_source(lang, roundtrip_source(lang), TEST_MODULES_DIR / lang / "roundtrip.wasm"))

    def _log(self, caller: wasmtime.Caller, level: int, ptr: int, length: int) -> None:
        memory = caller["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self.logs.append((level, bytes(memory.read(caller, ptr, ptr + length)).decode("utf-8", "replace")))

    def roundtrip(self, data: bytes) -> bytes | None:
        """The kit's re-encoding of `data`, or None when it refused the input (see `logs`)."""
        ptr = self._alloc(self.store, len(data))
        assert isinstance(ptr, int) and ptr != 0, f"alloc({len(data)}) failed"
        self._memory.write(self.store, data, ptr)
        packed = self._roundtrip(self.store, ptr, len(data))
        assert isinstance(packed, int)
        if packed == 0:
            return None
        packed &= (1 << 64) - 1
        out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
        return bytes(self._memory.read(self.store, out_ptr, out_ptr + out_len))


def _compiled(engine: wasmtime.Engine, wasm: Path) -> wasmtime.Module:
    """Compile once per module content: a Go module takes seconds to compile, ms to deserialize.

    The cache holds only artifacts this harness serialized itself, keyed by the module's hash.
    """
    digest = hashlib.sha256(wasm.read_bytes()).hexdigest()[:32]
    cached = wasm.with_name(f"{wasm.stem}.{digest}.cwasm")
    if cached.is_file():
        try:
            return wasmtime.Module.deserialize_file(engine, str(cached))
        except wasmtime.WasmtimeError:
            cached.unlink(missing_ok=True)  # another wasmtime version or config: compile again
    module = wasmtime.Module.from_file(engine, str(wasm))
    for stale in wasm.parent.glob(f"{wasm.stem}.*.cwasm"):
        stale.unlink(missing_ok=True)
    partial = cached.with_suffix(".tmp")
    partial.write_bytes(module.serialize())
    partial.replace(cached)
    return module


def check_vector(codec: KitCodec, vector: Vector) -> None:
    out = codec.roundtrip(vector.encoding)
    assert out is not None, f"the kit refused {vector.encoding.hex('-')}: {codec.logs[-1:]}"
    assert decode(out) == vector.value
    assert out.hex("-") == canonical(vector.encoding).hex("-")


# Inputs every kit must refuse, and the byte offset its message must name.
MALFORMED: dict[str, tuple[bytes, int]] = {
    "truncated-uint32": (bytes.fromhex("ce0001"), 1),
    "reserved-byte-c1": (bytes.fromhex("c1"), 0),
    "trailing-bytes": (bytes.fromhex("c0c0"), 1),
    "truncated-array": (bytes.fromhex("9301"), 2),
    "str-not-utf8": (bytes.fromhex("a3e228a1"), 1),
    "empty-input": (b"", 0),
    "array-count-lies": (bytes.fromhex("dd7fffffff"), 5),
    "map-count-lies": (bytes.fromhex("df7fffffff"), 5),
}


def check_malformed(codec: KitCodec, data: bytes, offset: int) -> None:
    codec.logs.clear()
    assert codec.roundtrip(data) is None, f"{data.hex('-')} was accepted"
    assert [level for level, _ in codec.logs] == [ERROR_LEVEL], codec.logs
    message = codec.logs[0][1]
    assert message.startswith(f"invalid msgpack at byte {offset}: "), message


# Values whose lengths need the 16- and 32-bit headers, which the reference vectors never reach.
LONG_VALUES: dict[str, Any] = {
    "str32": "x" * 70_000,
    "str16-utf8": "é" * 300,
    "bin32": b"\x01" * 70_000,
    "array32": list(range(70_000)),
    "map32": {f"k{i}": i for i in range(70_000)},
    "array16-of-mixed": [None, True, False, -1, 2**63, -(2**63), 1.5, {"a": [b"", ""]}] * 10,
}


def check_long(codec: KitCodec, value: Any) -> None:
    data = msgpack.packb(value, use_bin_type=True)
    out = codec.roundtrip(data)
    assert out is not None, codec.logs[-1:]
    assert out == data  # the reference packer writes the shortest headers too
