"""react: the event round trip and every reaction shape ABI v1 defines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from wasm_abi import (
    EVENT_RECEIVED,
    FUNCTION_INVOKED,
    FUNCTION_INVOKING,
    Limits,
    Plugin,
    PluginFault,
    Reaction,
    system_event,
)

from wasm_abi.reaction import MAX_ERROR_CHARS

from tests.wat import REACTION_AT, packed, wat_bytes

ECHO = "(i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len)))"

MakePlugin = Callable[..., Plugin]


def received(data_event: dict[str, Any] | None = None) -> dict[str, Any]:
    return system_event(EVENT_RECEIVED, {"event": data_event or {"eventType": "user.created", "data": {}},
                                         "path": "/", "headers": {"content-type": "application/json"}})


def raw_reaction_plugin(make_plugin: MakePlugin, raw: bytes) -> Plugin:
    return make_plugin(react=packed(REACTION_AT, raw), extra=f"(data (i32.const {REACTION_AT}) {wat_bytes(raw)})")


@pytest.mark.parametrize("reaction", [None, {}, {"future": [1, 2], "x": None}])
def test_continue_reactions(make_plugin: MakePlugin, reaction: Any) -> None:
    plugin = make_plugin(reaction=reaction) if reaction is not None else make_plugin()
    assert plugin.react(received()) == Reaction(None, None, None)


def test_nil_reaction_is_continue(make_plugin: MakePlugin) -> None:
    assert raw_reaction_plugin(make_plugin, msgpack.packb(None)).react(received()) == Reaction()


def test_error_reaction_with_and_without_status(make_plugin: MakePlugin) -> None:
    assert make_plugin(reaction={"error": "denied", "status": 403}).react(received()) == Reaction("denied", 403, None)
    assert make_plugin(reaction={"error": "bad"}).react(received()) == Reaction("bad", None, None)


def test_event_round_trips_byte_for_byte(make_plugin: MakePlugin) -> None:
    """The echo plugin returns its input buffer, so the reaction is the event we sent."""
    echo = make_plugin(react=ECHO)
    event = {"error": "x" * 1000, "status": 418, "blob": b"\x00\x01", "n": [1, 2.5, None]}
    assert echo.react(event) == Reaction("x" * 1000, 418, None)
    # 64 KiB crosses intact (the sync path copies it out); its `error` is then capped like every
    # plugin-supplied text (MAX_ERROR_CHARS), with a marker saying how much was cut.
    big = {"error": "y" * (64 * 1024)}
    capped = "y" * MAX_ERROR_CHARS + f"... ({64 * 1024 - MAX_ERROR_CHARS} more characters)"
    assert echo.react(big).error == capped
    assert echo.react(big, mode="async").error == capped


@pytest.mark.parametrize("event_type", [EVENT_RECEIVED, FUNCTION_INVOKING])
def test_sync_reaction_may_replace_the_event(make_plugin: MakePlugin, event_type: str) -> None:
    replacement = {"eventType": "user.renamed", "cloudEventsVersion": "0.1", "data": {"a": 1}}
    plugin = make_plugin(reaction={"event": replacement})
    assert plugin.react({"type": event_type, "data": {}}) == Reaction(None, None, replacement)


def test_replacement_is_ignored_where_it_cannot_apply(make_plugin: MakePlugin) -> None:
    plugin = make_plugin(reaction={"event": {"type": "user.renamed"}})
    assert plugin.react(received(), mode="async") == Reaction()
    assert plugin.react({"type": FUNCTION_INVOKED, "data": {}}) == Reaction()


@pytest.mark.parametrize("status", [400, 599])
def test_status_bounds_are_inclusive(make_plugin: MakePlugin, status: int) -> None:
    assert make_plugin(reaction={"error": "e", "status": status}).react(received()) == Reaction("e", status, None)


def test_status_without_error_is_continue(make_plugin: MakePlugin) -> None:
    """`status` only qualifies a rejection; alone (and valid) it changes nothing."""
    assert make_plugin(reaction={"status": 404}).react(received()) == Reaction()


def test_nil_values_count_as_absent_keys(make_plugin: MakePlugin) -> None:
    plugin = make_plugin(reaction={"error": None, "status": None, "event": None, "later": {"x": 1}})
    assert plugin.react(received()) == Reaction(None, None, None)


def test_reaction_defaults_and_equality() -> None:
    assert Reaction() == Reaction(None, None, None) == Reaction(error=None, status=None, event=None)
    assert Reaction("no", 403) == Reaction(error="no", status=403, event=None) != Reaction("no", 404)
    assert not Reaction().rejected and Reaction("no").rejected


@pytest.mark.parametrize("event", [[1, 2], "event", None])
def test_event_that_is_not_a_map_is_a_caller_error(make_plugin: MakePlugin, event: Any) -> None:
    plugin = make_plugin(reaction={"error": "x"})
    with pytest.raises(TypeError, match="event for plugin 'test' must be a dict"):
        plugin.react(event)
    assert plugin.state.faults == {} and plugin.react({}) == Reaction("x")


def test_event_that_msgpack_cannot_encode_is_a_caller_error(make_plugin: MakePlugin) -> None:
    plugin = make_plugin()
    with pytest.raises(TypeError, match=r"event for plugin 'test' cannot be encoded as msgpack: .*object"):
        plugin.react({"data": {"when": object()}})
    assert plugin.state.faults == {} and plugin.react({}) == Reaction()


def test_error_wins_over_event(make_plugin: MakePlugin) -> None:
    plugin = make_plugin(reaction={"error": "no", "event": {"type": "a.b"}})
    assert plugin.react(received()) == Reaction("no", None, None)


@pytest.mark.parametrize(
    "reaction, message",
    [
        ({"error": 12}, "'error' must be a string, got int"),
        ({"error": "x", "status": "500"}, "'status' must be an integer, got str"),
        ({"error": "x", "status": True}, "'status' must be an integer, got bool"),
        ({"error": "x", "status": 200}, "'status' must be between 400 and 599, got 200"),
        ({"error": "x", "status": 399}, "'status' must be between 400 and 599, got 399"),
        ({"error": "x", "status": 600}, "'status' must be between 400 and 599, got 600"),
        ({"error": "x", "status": -403}, "'status' must be between 400 and 599, got -403"),
        ({"error": "x", "status": 404.0}, "'status' must be an integer, got float"),
        ({"status": 700}, "'status' must be between 400 and 599, got 700"),
        ({"error": b"bytes"}, "'error' must be a string, got bytes"),
        ({"error": None, "event": "user.created"}, "'event' must be a map, got str"),
        ({"event": [1]}, "'event' must be a map, got list"),
        ({"event": {"data": 1}}, "no string 'type'"),
        ({"event": {"type": "eventgateway.event.received"}}, "may not become a system event type"),
        ([1, 2], "must be a msgpack map or nil, got list"),
        ("continue", "must be a msgpack map or nil, got str"),
    ],
)
def test_wrong_types_are_bad_output_faults(make_plugin: MakePlugin, reaction: Any, message: str) -> None:
    plugin = make_plugin(reaction=reaction)
    with pytest.raises(PluginFault, match=message) as info:
        plugin.react(received())
    assert info.value.kind == "bad_output" and info.value.plugin == "test"


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\xc1", "not valid msgpack"),
        (b"\x82\xa5error", "not valid msgpack"),  # truncated map
        (msgpack.packb({}) + b"\x00", "trailing bytes"),
        (msgpack.packb({1: "int key"}), "map key of type int: map keys must be strings"),
    ],
)
def test_malformed_msgpack_is_a_bad_output_fault(make_plugin: MakePlugin, raw: bytes, message: str) -> None:
    with pytest.raises(PluginFault, match=message) as info:
        raw_reaction_plugin(make_plugin, raw).react(received())
    assert info.value.kind == "bad_output"


def test_fuel_used_is_reported_but_not_compared(make_plugin: MakePlugin) -> None:
    reaction = make_plugin(react=ECHO).react({"error": "e"})
    assert reaction.fuel_used > 0
    assert reaction == Reaction("e", None, None, fuel_used=0)


def test_bad_mode_is_a_caller_error(make_plugin: MakePlugin) -> None:
    with pytest.raises(ValueError, match="mode must be 'sync' or 'async'"):
        make_plugin().react(received(), mode="later")


def test_counters_track_reactions(make_plugin: MakePlugin) -> None:
    plugin = make_plugin()
    plugin.react(received())
    plugin.react(received(), mode="async")
    plugin.react(received(), mode="async")
    assert plugin.state.reactions == {"sync": 1, "async": 2}
    assert plugin.state.faults == {}


def test_system_event_envelope_is_checked() -> None:
    event = received()
    assert event["specversion"] == "1.0" and event["type"] == EVENT_RECEIVED
    assert set(event) == {"specversion", "type", "source", "id", "time", "datacontenttype", "data"}
    with pytest.raises(ValueError, match="needs data fields"):
        system_event(FUNCTION_INVOKED, {"space": "s"})


def test_event_over_the_input_limit_is_refused_before_any_call(make_plugin: MakePlugin) -> None:
    plugin = make_plugin(limits=Limits(max_input_bytes=100))
    with pytest.raises(ValueError, match="over the input limit of 100 bytes"):
        plugin.react({"blob": "x" * 200})
    assert plugin.state.faults == {}


def test_packed_buffer_of_length_zero_is_nothing(make_plugin: MakePlugin) -> None:
    """ptr 4096, len 0: nothing to read, so continue, whatever the pointer."""
    for ptr in (4096, 0xFFFF_FFFF):
        value = ptr << 32
        signed = value - (1 << 64) if value >= 1 << 63 else value
        assert make_plugin(react=f"(i64.const {signed})").react(received()) == Reaction()


@pytest.mark.parametrize(
    "depth, message",
    [
        (150, "reaction 'event' nests maps/arrays deeper than 100 levels"),
        (5000, "reaction is nested too deeply to decode"),
    ],
)
def test_deeply_nested_replacement_is_bad_output(make_plugin: MakePlugin, depth: int, message: str) -> None:
    """A replacement event the gateway could not re-encode (json stops near 1000 levels) is refused."""
    raw = msgpack.packb({"event": {"type": "a.b", "data": None}})[:-1] + b"\x91" * depth + b"\xc0"
    plugin = make_plugin(react=packed(4096, raw), memory='(memory (export "memory") 2)',
                         extra=f"(data (i32.const 4096) {wat_bytes(raw)})")
    with pytest.raises(PluginFault, match=message) as info:
        plugin.react(received())
    assert info.value.kind == "bad_output"


def test_replacement_at_the_depth_limit_is_accepted(make_plugin: MakePlugin) -> None:
    inner: Any = "leaf"
    for _ in range(98):
        inner = [inner]
    event = {"type": "a.b", "data": {"x": inner}}  # event map, data map, 98 arrays: 100 levels
    assert make_plugin(reaction={"event": event}).react(received()).event == event
    deeper = {"type": "a.b", "data": {"x": [inner]}}
    with pytest.raises(PluginFault, match="deeper than 100 levels"):
        make_plugin(reaction={"event": deeper}).react(received())
