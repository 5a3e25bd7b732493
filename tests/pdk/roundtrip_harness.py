"""Shared harness of the guest kits' msgpack tests.

Each kit ships a test module in `wasm_abi/pdk/<lang>/testing/roundtrip/` that exports `alloc` and
`roundtrip(ptr, len) -> i64`: it decodes the bytes with the kit's own msgpack reader and answers the
packed (ptr << 32 | len) re-encoding from the kit's writer, or 0 after logging why the input is not
msgpack. The module is built with the language's `builder.py` (cached by content hash, like the
example plugins) and run on wasmtime directly: it is a codec under test, not a plugin, so it goes
around `wasm_abi.Plugin` on purpose, with the same capability-less WASI the host gives plugins.

The reference vectors are the npm package `msgpack-test-suite` (installed by `just toolchains` into
`wasm_abi/pdk/assemblyscript/node_modules`). A missing toolchain or vector file fails the tests.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest
import wasmtime

from plugin_examples.build import BUILD_DIR, KITS_DIR, REPO_ROOT, builder_for

VECTORS_PATH = KITS_DIR / "assemblyscript" / "node_modules" / "msgpack-test-suite" / "dist" / "msgpack-test-suite.json"


@dataclass(frozen=True)
class VectorGroup:
    """One entry of the suite: a value and every msgpack encoding of it the suite accepts."""

    name: str  # "<file>#<index>", for test ids and failure messages
    kind: str  # nil, bool, binary, number, bignum, string, array, map, timestamp, ext
    value: Any
    encodings: tuple[bytes, ...]


def _expected(kind: str, raw: Any) -> Any:
    if kind == "binary":
        return bytes.fromhex(raw.replace("-", ""))
    if kind == "bignum":
        return int(raw)
    if kind == "timestamp":
        return msgpack.Timestamp(raw[0], raw[1])
    if kind == "ext":
        return msgpack.ExtType(raw[0], bytes.fromhex(raw[1].replace("-", "")))
    return raw


def load_vectors() -> list[VectorGroup]:
    if not VECTORS_PATH.is_file():
        raise FileNotFoundError(f"msgpack reference vectors not found at {VECTORS_PATH}: run `just toolchains`")
    suite = json.loads(VECTORS_PATH.read_text())
    groups: list[VectorGroup] = []
    for file_name, entries in suite.items():
        for index, entry in enumerate(entries):
            # Bignum entries carry an approximate `number` too; the exact `bignum` string wins.
            kind = "bignum" if "bignum" in entry else next(k for k in entry if k != "msgpack")
            encodings = tuple(bytes.fromhex(h.replace("-", "")) for h in entry["msgpack"])
            groups.append(VectorGroup(f"{file_name}#{index}", kind, _expected(kind, entry[kind]), encodings))
    return groups


def _roundtrip_inputs(lang: str) -> list[Path]:
    kit = KITS_DIR / lang
    files = [path for path in sorted(kit.rglob("*")) if path.is_file() and "node_modules" not in path.parts]
    return [*files, REPO_ROOT / "plugin_examples" / lang / "builder.py"]


def build_roundtrip_module(lang: str) -> Path:
    """Build (or reuse) the kit's roundtrip test module; the stamp is a hash of the kit and builder."""
    digest = hashlib.sha256()
    for path in _roundtrip_inputs(lang):
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    out = BUILD_DIR.parent / "pdk-tests" / lang / "roundtrip.wasm"
    stamp = out.with_suffix(".wasm.stamp")
    if out.is_file() and stamp.is_file() and stamp.read_text().strip() == digest.hexdigest():
        return out
    builder = builder_for(lang)
    builder.check_toolchain()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(f".wasm.{os.getpid()}.tmp")
    try:
        builder.build(KITS_DIR / lang / "testing" / "roundtrip", KITS_DIR / lang, partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    stamp.write_text(digest.hexdigest() + "\n")
    return out


class RoundtripModule:
    """One instance of a kit's roundtrip module, with the log lines it wrote."""

    def __init__(self, path: Path) -> None:
        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        self.store.set_wasi(wasmtime.WasiConfig())  # no files, env, args or stdio
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        self.logs: list[tuple[int, str]] = []
        linker.define_func(
            "eventgateway", "log",
            wasmtime.FuncType([wasmtime.ValType.i32()] * 3, []),
            self._log, access_caller=True,
        )
        instance = linker.instantiate(self.store, wasmtime.Module.from_file(engine, str(path)))
        exports = instance.exports(self.store)
        if "_initialize" in exports:
            exports["_initialize"](self.store)
        self._memory = exports["memory"]
        self._alloc = exports["alloc"]
        self._roundtrip = exports["roundtrip"]

    def _log(self, caller: wasmtime.Caller, level: int, ptr: int, length: int) -> None:
        memory = caller["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self.logs.append((level, memory.read(caller, ptr, ptr + length).decode("utf-8", "replace")))

    def roundtrip(self, data: bytes) -> bytes | None:
        """Re-encode `data` through the kit; None when the kit refused it (see `logs`)."""
        ptr = self._alloc(self.store, len(data))
        assert isinstance(ptr, int) and ptr != 0, f"alloc({len(data)}) failed"
        self._memory.write(self.store, data, ptr)
        packed = self._roundtrip(self.store, ptr, len(data))
        assert isinstance(packed, int)
        if packed == 0:
            return None
        packed &= (1 << 64) - 1
        out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
        return self._memory.read(self.store, out_ptr, out_ptr + out_len)


def decode_reference(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False, timestamp=0)


VECTORS = load_vectors() if VECTORS_PATH.is_file() else []


def vector_params() -> list[Any]:
    """pytest params of every group; when the suite is missing, one param whose test fails loudly."""
    if not VECTORS:
        return [pytest.param(None, id="msgpack-test-suite-missing")]
    return [pytest.param(group, id=group.name) for group in VECTORS]


def check_group(module: RoundtripModule, group: VectorGroup | None) -> None:
    """Every accepted encoding of the group must come back as one of them, holding the same value."""
    if group is None:
        load_vectors()  # raises FileNotFoundError naming the fix
        return
    for encoding in group.encodings:
        out = module.roundtrip(encoding)
        assert out is not None, f"{group.name}: the kit refused {encoding.hex('-')}: {module.logs[-1:]}"
        assert out in group.encodings, (
            f"{group.name}: {encoding.hex('-')} came back as {out.hex('-')}, "
            f"not one of {[e.hex('-') for e in group.encodings]}"
        )
        decoded = decode_reference(out)
        assert decoded == group.value and type(decoded) is not bool or group.kind == "bool", (
            f"{group.name}: {encoding.hex('-')} came back holding {decoded!r}, expected {group.value!r}"
        )


# Inputs every kit must refuse, with the offset its error message must name.
MALFORMED: list[tuple[str, bytes, int]] = [
    ("truncated-uint32", bytes.fromhex("ce0001"), 1),
    ("reserved-byte-c1", bytes.fromhex("c1"), 0),
    ("trailing-bytes", bytes.fromhex("c0c0"), 1),
    ("truncated-array", bytes.fromhex("9301"), 2),
    ("str-invalid-utf8", bytes.fromhex("a3e228a1"), 1),
    ("map-count-lies", bytes.fromhex("df7fffffff"), 5),
]


def check_malformed(module: RoundtripModule, data: bytes, offset: int) -> None:
    module.logs.clear()
    assert module.roundtrip(data) is None, f"{data.hex('-')} was accepted"
    assert len(module.logs) == 1 and module.logs[0][0] == 3, module.logs
    message = module.logs[0][1]
    assert "msgpack" in message and f"byte {offset}" in message, message


def large_values() -> list[Any]:
    """Values whose lengths need the 16- and 32-bit headers, which the suite does not exercise."""
    return [
        "x" * 70_000,
        b"\x01" * 70_000,
        list(range(70_000)),
        {f"k{i}": i for i in range(70_000)},
        ["é" * 300, {"nested": [None, True, False, -1, 2**63, -(2**63), 1.5]}],
    ]


def check_large(module: RoundtripModule, value: Any) -> None:
    data = msgpack.packb(value, use_bin_type=True)
    out = module.roundtrip(data)
    assert out is not None, module.logs[-1:]
    assert decode_reference(out) == value
    assert out == data  # Python's msgpack also writes shortest forms (floats aside; 1.5 is float64 both ways)
