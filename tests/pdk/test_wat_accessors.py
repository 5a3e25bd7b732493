"""The wat kit's typed access to events, through the gateway's plugin host (see accessors_scenario)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.pdk.accessors_scenario import EVENT_0_1, EVENT_1_0, check_report, load_accessors_plugin
from wasm_abi import Plugin

LANG = "wat"


@pytest.fixture(scope="module")
def plugin() -> Plugin:
    return load_accessors_plugin(LANG)


@pytest.mark.parametrize("incoming", [EVENT_1_0, EVENT_0_1], ids=["cloudevents-1.0", "cloudevents-0.1"])
def test_typed_access(plugin: Plugin, incoming: dict[str, Any]) -> None:
    check_report(plugin, incoming)
