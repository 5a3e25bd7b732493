"""The typed-access scenario shared by the Rust, AssemblyScript and Go kits' accessor tests.

Each kit has a test plugin (`wasm_abi/pdk/<lang>/testing/accessors/`) that reads one incoming event
through the kit's typed API (CloudEvent attributes in both spec versions, nested maps, strings,
bytes, ints, unsigned ints, floats, bools, arrays, nil, missing keys) and rewrites the event's data
into a report of what it read. The test loads it through `wasm_abi.Plugin`, like the gateway does.
"""

from __future__ import annotations

from typing import Any

from plugin_examples.build import KITS_DIR, REPO_ROOT, build_source
from wasm_abi import Plugin, system_event

TEST_MODULES_DIR = REPO_ROOT / "build" / "test-modules"

DATA: dict[str, Any] = {
    "count": 41,
    "ratio": 1.25,
    "flag": True,
    "blob": b"\x00\x01\xff",
    "tags": ["a", "b", "c"],
    "user": {"name": "ada", "roles": ["admin", "ops"]},
    "nothing": None,
    "big": 2**64 - 1,
    "negative": -5,
}

EVENT_1_0 = {"specversion": "1.0", "type": "user.created", "id": "evt-1", "source": "/crm", "data": DATA}
EVENT_0_1 = {"cloudEventsVersion": "0.1", "eventType": "user.created", "eventID": "evt-1", "source": "/crm",
             "data": DATA}

EXPECTED_REPORT: dict[str, Any] = {
    "systemType": "eventgateway.event.received",
    "type": "user.created",
    "id": "evt-1",
    "source": "/crm",
    "path": "/users",
    "header": "yes",
    "countPlusOne": 42,
    "ratioTimesTwo": 2.5,
    "notFlag": False,
    "blobLength": 3,
    "blob": b"\x00\x01\xff",
    "tagCount": 3,
    "lastTag": "c",
    "userName": "ada",
    "firstRole": "admin",
    "nothingIsNil": True,
    "missingIsNil": True,
    "big": 2**64 - 1,
    "negative": -5,
    "countAsString": True,
}


def load_accessors_plugin(lang: str) -> Plugin:
    source = KITS_DIR / lang / "testing" / "accessors"
    wasm = build_source(lang, source, TEST_MODULES_DIR / lang / "accessors.wasm")
    return Plugin.from_file(wasm, name=f"{lang}-accessors")


def check_report(plugin: Plugin, incoming: dict[str, Any]) -> None:
    received = system_event(
        "eventgateway.event.received", {"event": incoming, "path": "/users", "headers": {"x-probe": "yes"}}
    )
    reaction = plugin.react(received)
    assert reaction.error is None, reaction
    assert reaction.event == {**incoming, "data": EXPECTED_REPORT}
