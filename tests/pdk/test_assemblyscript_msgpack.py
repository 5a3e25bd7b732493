"""The assemblyscript kit's msgpack reader and writer against the msgpack reference test vectors.

The kit's roundtrip module (built from `wasm_abi/pdk/assemblyscript/testing/roundtrip/` in the test run)
decodes every encoding of every vector and re-encodes it: the output must hold the vector's value in
its canonical encoding. Malformed input must be refused with a message naming the byte offset.
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

LANG = "assemblyscript"
VECTORS = load_vectors()


@pytest.fixture(scope="module")
def codec() -> KitCodec:
    return KitCodec.build(LANG)


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
