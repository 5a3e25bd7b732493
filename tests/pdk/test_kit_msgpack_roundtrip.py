"""The Rust, AssemblyScript and Go kits' msgpack readers and writers against the reference vectors.

Each kit's roundtrip module (built from `wasm_abi/pdk/<lang>/testing/roundtrip/` in the test run)
decodes every encoding of every vector and re-encodes it: the output must hold the vector's value in
its canonical encoding. Malformed input must be refused with a message naming the byte offset, and
values past the reference vectors' sizes (16/32-bit headers) must round-trip. The WAT, C and Zig kits
go through `test_kit_vectors.py`, whose test modules export `react` instead of `roundtrip`.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.pdk.roundtrip_harness import (
    LONG_VALUES,
    MALFORMED,
    KitCodec,
    check_long,
    check_malformed,
    check_vector,
)
from tests.pdk.vectors import Vector, load_vectors

LANGUAGES = ("rust", "assemblyscript", "go")
VECTORS = load_vectors()


@pytest.fixture(scope="module", params=LANGUAGES)
def codec(request: pytest.FixtureRequest) -> KitCodec:
    return KitCodec.build(request.param)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.id)
def test_reference_vector(codec: KitCodec, vector: Vector) -> None:
    check_vector(codec, vector)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_input_is_refused(codec: KitCodec, name: str) -> None:
    check_malformed(codec, *MALFORMED[name])


@pytest.mark.parametrize("name", sorted(LONG_VALUES))
def test_long_headers(codec: KitCodec, name: str) -> None:
    value: Any = LONG_VALUES[name]
    check_long(codec, value)
