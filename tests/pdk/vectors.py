"""The msgpack reference test vectors (npm `msgpack-test-suite`, installed by `just toolchains`).

Every kit is checked the same way: its round-trip module decodes each encoding of a vector with the
kit's reader and re-encodes it with the kit's writer. The result must decode to the vector's value and
be the canonical encoding of it (smallest header; a float keeps its width), which is what the
reference packer `msgpack.packb` produces.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import yaml

SUITE_DIR = Path(
    os.environ.get("MSGPACK_TEST_SUITE_DIR", Path.home() / ".cache" / "msgpack-test-suite")
) / "node_modules" / "msgpack-test-suite" / "src"

KINDS = ("nil", "bool", "binary", "bignum", "number", "string", "array", "map", "timestamp", "ext")


@dataclass(frozen=True)
class Vector:
    file: str
    kind: str
    value: Any
    encoding: bytes

    @property
    def id(self) -> str:
        return f"{self.file}:{self.kind}:{self.encoding.hex('-')}"


def _value(kind: str, raw: Any, entry: dict[str, Any]) -> Any:
    if kind == "binary":
        return bytes.fromhex(raw.replace("-", ""))
    if kind == "bignum":
        return int(raw)
    if kind == "timestamp":
        return msgpack.Timestamp(raw[0], raw[1])
    if kind == "ext":
        return msgpack.ExtType(raw[0], bytes.fromhex(raw[1].replace("-", "")))
    return raw


def load_vectors() -> list[Vector]:
    """Every (value, encoding) pair of the suite; a missing suite is an error, never an empty list."""
    if not SUITE_DIR.is_dir():
        raise RuntimeError(
            f"msgpack test vectors not found in {SUITE_DIR}: run `just toolchains` "
            "(scripts/toolchains/msgpack-test-suite.sh installs the npm package msgpack-test-suite)"
        )
    vectors: list[Vector] = []
    for path in sorted(SUITE_DIR.glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text()):
            kind = next(k for k in KINDS if k in entry)
            for hex_bytes in entry["msgpack"]:
                encoding = bytes.fromhex(hex_bytes.replace("-", ""))
                vectors.append(Vector(path.stem, kind, _value(kind, entry[kind], entry), encoding))
    if not vectors:
        raise RuntimeError(f"no msgpack test vectors in {SUITE_DIR}")
    return vectors


def decode(data: bytes) -> Any:
    return msgpack.unpackb(data, strict_map_key=False, raw=False)


def canonical(encoding: bytes) -> bytes:
    """The reference packer's encoding of the vector's value, keeping a float32 a float32."""
    return msgpack.packb(decode(encoding), use_bin_type=True, use_single_float=encoding[0] == 0xCA)
