"""Every kit's msgpack reader and writer on the edge cases the reference vectors leave out.

The msgpack-test-suite vectors only have string map keys and no containers mixed with extension
values; events from the host can carry neither, but a kit's codec is also the plugin author's
`decode`/`encode` for payloads that hold msgpack themselves. Each input here is already in canonical
form (shortest header, a float keeps its width), so the kit must give the same bytes back. The WAT,
C and Zig kits run through their `react` round-trip modules, the Rust, AssemblyScript and Go kits
through their `roundtrip` exports.
"""

from __future__ import annotations

from collections.abc import Callable

import msgpack
import pytest

from tests.pdk.roundtrip import RoundTrip, build_roundtrip
from tests.pdk.roundtrip_harness import KitCodec
from tests.pdk.test_kit_vectors import SOURCES

LANGUAGES = ("wat", "c", "zig", "rust", "assemblyscript", "go")


def _packed(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


# name -> canonical encoding
CASES: dict[str, bytes] = {
    "int-keys": _packed({1: "a", -1: "b", 2**40: "c", -(2**63): "d"}),
    "nil-float-bin-bool-keys": _packed({None: 1, 1.5: 2, b"k": 3, True: 4}),
    "array-key": bytes.fromhex("81" "92" "01" "a1" "61" "a1" "76"),  # {[1, "a"]: "v"}
    "map-key": bytes.fromhex("81" "81" "a1" "6b" "c0" "c3"),  # {{"k": nil}: true}
    "empty-containers": _packed({"": {}, "a": [], "s": "", "b": b"", "n": [{}, [], [[]], {"x": {}}]}),
    "ext-inside-containers": bytes.fromhex(
        "83" "a1" "61" "d4" "01" "ff"                 # "a": fixext1 type 1
        "a1" "62" "92" "c7" "00" "05" "d8" "7f" + "00" * 16 +  # "b": [ext8 len 0 type 5, fixext16 type 127]
        "a1" "63" "c7" "03" "80" "010203"             # "c": ext8 len 3 type -128
    ),
    "integer-limits": _packed([2**64 - 1, 2**63, 2**63 - 1, -(2**63), -33, -32, -129, -128, 2**32, 2**32 - 1,
                               -(2**31) - 1, 255, 256, 65535, 65536]),
    "float32-specials": bytes.fromhex("94" "ca7fc00000" "ca7f800000" "caff800000" "ca80000000"),
    "float64-specials": bytes.fromhex("94" "cb7ff8000000000000" "cb7ff0000000000000" "cbfff0000000000000"
                                      "cb8000000000000000"),
    "str8-str16-str32": _packed(["x" * 32, "x" * 255, "x" * 256, "x" * 65535, "x" * 65536]),
    "bin8-bin16-bin32": _packed([b"\x00" * 255, b"\x00" * 256, b"\x00" * 65535, b"\x00" * 65536]),
    "nested-400-deep": b"\x91" * 400 + b"\xc0",
}


@pytest.fixture(scope="module", params=LANGUAGES)
def roundtrip(request: pytest.FixtureRequest) -> Callable[[bytes], bytes | None]:
    lang = request.param
    if lang in SOURCES:
        return RoundTrip(build_roundtrip(lang, SOURCES[lang]))
    return KitCodec.build(lang).roundtrip


@pytest.mark.parametrize("name", sorted(CASES))
def test_edge_case_round_trips_byte_for_byte(roundtrip: Callable[[bytes], bytes | None], name: str) -> None:
    data = CASES[name]
    out = roundtrip(data)
    assert out is not None, f"{name} was refused"
    assert out.hex("-") == data.hex("-")
