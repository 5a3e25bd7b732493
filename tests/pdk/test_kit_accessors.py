"""Every kit's typed access to events, through the gateway's plugin host (see accessors_scenario).

One accessor plugin per kit (built from `wasm_abi/pdk/<lang>/testing/accessors/` in the test run)
reads every value type of a CloudEvents 1.0 and a 0.1 event and reports what it saw.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.pdk.accessors_scenario import EVENT_0_1, EVENT_1_0, check_report, load_accessors_plugin
from wasm_abi import Plugin

LANGUAGES = ("wat", "c", "zig", "rust", "assemblyscript", "go")


@pytest.fixture(scope="module", params=LANGUAGES)
def plugin(request: pytest.FixtureRequest) -> Plugin:
    return load_accessors_plugin(request.param)


@pytest.mark.parametrize("incoming", [EVENT_1_0, EVENT_0_1], ids=["cloudevents-1.0", "cloudevents-0.1"])
def test_typed_access(plugin: Plugin, incoming: dict[str, Any]) -> None:
    check_report(plugin, incoming)
