"""The WAT, C and Zig kits' allocators: scratch memory is reused from one call to the next (an instance
does not grow with the number of events), and an allocation the host's memory limit refuses makes
`alloc` answer 0, as the ABI asks, instead of trapping."""

from __future__ import annotations

import msgpack
import pytest

from tests.pdk.roundtrip import RoundTrip, build_roundtrip
from tests.pdk.test_kit_vectors import SOURCES


@pytest.mark.parametrize("lang", sorted(SOURCES))
def test_scratch_memory_is_reused_between_calls(lang: str) -> None:
    round_trip = RoundTrip(build_roundtrip(lang, SOURCES[lang]))
    document = msgpack.packb({"data": {"blob": "x" * 200_000, "items": list(range(5000))}})
    assert round_trip(document) == document
    size_after_first = round_trip.memory_bytes
    for _ in range(50):
        assert round_trip(document) == document
    assert round_trip.memory_bytes == size_after_first


@pytest.mark.parametrize("lang", sorted(SOURCES))
def test_alloc_answers_zero_when_memory_cannot_grow(lang: str) -> None:
    round_trip = RoundTrip(build_roundtrip(lang, SOURCES[lang]), memory_limit=4 * 1024 * 1024)
    assert round_trip.alloc(8 * 1024 * 1024) == 0
    assert round_trip.alloc(-1) == 0
    small = msgpack.packb({"still": "works"})
    assert round_trip(small) == small


@pytest.mark.parametrize("lang", ["rust", "assemblyscript", "go"])
def test_decoding_kits_memory_levels_off_across_events(lang: str) -> None:
    """The kits that decode each event into a heap of Values must free them: after a warm-up (Go's
    collector sizes its heap in the first calls), a hundred more large events grow no memory."""
    from plugin_examples.build import build
    from wasm_abi import system_event

    incoming = {"specversion": "1.0", "type": "user.created", "id": "1", "source": "/s",
                "data": {"items": list(range(5000)), "names": ["abc"] * 5000}}
    event = msgpack.packb(system_event("eventgateway.event.received", {"event": incoming, "path": "/", "headers": {}}))
    round_trip = RoundTrip(build(lang, "logger"))
    for _ in range(100):
        assert round_trip(event) == b""  # continue
    size_after_warm_up = round_trip.memory_bytes
    for _ in range(100):
        assert round_trip(event) == b""
    assert round_trip.memory_bytes == size_after_warm_up
