"""The WAT, C and Zig kits' msgpack readers and writers against the msgpack reference test vectors.

Each kit's round-trip module (built from source here) decodes every encoding of every vector with the
kit's typed accessors and re-encodes it with the kit's writer; the output must decode to the vector's
value and be the canonical encoding (smallest header; a float keeps its width).
"""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from tests.pdk.roundtrip import RoundTrip, build_roundtrip
from tests.pdk.vectors import Vector, canonical, decode, load_vectors

HERE = Path(__file__).parent
SOURCES = {
    "wat": HERE / "wat" / "roundtrip.wat",
    "c": HERE / "c" / "roundtrip",
    "zig": HERE / "zig" / "roundtrip",
}
VECTORS = load_vectors()


@pytest.fixture(scope="module", params=sorted(SOURCES))
def kit(request: pytest.FixtureRequest) -> tuple[str, RoundTrip]:
    lang = request.param
    return lang, RoundTrip(build_roundtrip(lang, SOURCES[lang]))


def test_vectors_cover_every_kind() -> None:
    kinds = {v.kind for v in VECTORS}
    assert kinds >= {"nil", "bool", "binary", "number", "bignum", "string", "array", "map", "ext", "timestamp"}


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.id)
def test_round_trip(kit: tuple[str, RoundTrip], vector: Vector) -> None:
    _, round_trip = kit
    out = round_trip(vector.encoding)
    assert decode(out) == vector.value
    assert out.hex("-") == canonical(vector.encoding).hex("-")


def test_nested_document(kit: tuple[str, RoundTrip]) -> None:
    """A shape like a real system event: deep nesting, long strings (str16), map16, array16."""
    document = {
        "specversion": "1.0",
        "data": {"event": {"data": {"k" * 40: "v" * 300, "list": list(range(-40, 40)), "big": 2**40}}},
        "many": {f"key{i}": [i, None, True, False, -(2**33)] for i in range(20)},
        "long": "x" * 70_000,
    }
    encoded = msgpack.packb(document)
    _, round_trip = kit
    out = round_trip(encoded)
    assert decode(out) == document
    assert out == encoded
