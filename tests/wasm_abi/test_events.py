"""System event identity and the one envelope builder (wasm_abi/events.py), as ABI.md section 5 says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import wasm_abi
from wasm_abi import events
from wasm_abi.events import (
    DATACONTENTTYPE,
    EVENT_RECEIVED,
    FUNCTION_INVOCATION_FAILED,
    FUNCTION_INVOKED,
    FUNCTION_INVOKING,
    SYSTEM_EVENT_FIELDS,
    SYSTEM_EVENT_TYPES,
)

ABI = (Path(wasm_abi.__file__).parent / "ABI.md").read_text()
INCOMING = {"specversion": "1.0", "type": "user.created", "source": "s", "id": "1", "data": {}}
BUILT = {
    EVENT_RECEIVED: events.event_received(INCOMING, "/users", {"Content-Type": "application/json"}),
    FUNCTION_INVOKING: events.function_invoking("default", "fn", INCOMING),
    FUNCTION_INVOKED: events.function_invoked("default", "fn", INCOMING, {"ok": True}),
    FUNCTION_INVOCATION_FAILED: events.function_invocation_failed("default", "fn", INCOMING, "refused"),
}


def test_system_events_are_json_data_in_a_cloudevents_1_0_envelope() -> None:
    assert DATACONTENTTYPE == "application/json"
    assert set(BUILT) == SYSTEM_EVENT_TYPES
    for event_type, event in BUILT.items():
        assert list(event) == ["specversion", "type", "source", "id", "time", "datacontenttype", "data"]
        assert event["specversion"] == "1.0" and event["type"] == event_type
        assert event["source"] == events.SOURCE == "https://serverless.com/event-gateway"
        assert event["datacontenttype"] == "application/json"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["time"])
        assert tuple(event["data"]) == SYSTEM_EVENT_FIELDS[event_type]
    assert len({event["id"] for event in BUILT.values()}) == 4


def test_the_checked_builder_makes_the_same_envelope() -> None:
    event = wasm_abi.system_event(FUNCTION_INVOKING, {"space": "default", "functionId": "fn", "event": INCOMING},
                                  event_id="id-1", time="2026-01-01T00:00:00.000Z")
    assert event == {**BUILT[FUNCTION_INVOKING], "id": "id-1", "time": "2026-01-01T00:00:00.000Z"}
    with pytest.raises(ValueError, match="unknown system event type"):
        wasm_abi.system_event("user.created", {})


def test_the_reserved_prefix() -> None:
    assert all(events.is_system_event_type(t) for t in SYSTEM_EVENT_TYPES)
    assert events.is_system_event_type("eventgateway.anything")
    assert not events.is_system_event_type("user.created") and not events.is_system_event_type(None)


def test_abi_md_and_the_cli_agree_on_the_envelope() -> None:
    assert "| `datacontenttype` | `\"application/json\"`:" in ABI
    assert "application/msgpack" not in ABI
    for event_type, fields in SYSTEM_EVENT_FIELDS.items():
        row = next(line for line in ABI.splitlines() if line.startswith(f"| `{event_type}` |"))
        assert re.findall(r"^\| `[^`]+` \| (.*)$", row)
        for field in fields:
            assert f"`{field}`" in row, (event_type, field)
    from gateway.plugin_cli import sample_system_event

    for event_type in SYSTEM_EVENT_TYPES:
        sample = sample_system_event(event_type, INCOMING)
        assert sample["datacontenttype"] == "application/json" and sample["source"] == events.SOURCE
        assert tuple(sample["data"]) == SYSTEM_EVENT_FIELDS[event_type] or set(sample["data"]) == set(
            SYSTEM_EVENT_FIELDS[event_type])
