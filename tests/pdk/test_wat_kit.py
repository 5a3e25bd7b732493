"""The WAT kit is a template copied into each module, so check that every copy is the current kit and
that every string constant's length comment matches its text (the code passes those lengths around)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from plugin_examples.build import EXAMPLES_DIR, KITS_DIR, examples_for

KIT = (KITS_DIR / "wat" / "kit.wat").read_text()
MODULES = [EXAMPLES_DIR / "wat" / f"{example}.wat" for example in examples_for("wat")] + [
    Path(__file__).parent / "wat" / "roundtrip.wat",
    KITS_DIR / "wat" / "testing" / "accessors" / "plugin.wat",
    KITS_DIR / "wat" / "testing" / "capabilities" / "plugin.wat",
]
#: The optional blocks of capabilities.wat (kv imports, metrics imports, codes, kv, metrics), by name.
CAPABILITY_BLOCKS = dict(re.findall(
    r"(?s)(  ;; ==== BEGIN EVENTGATEWAY WAT KIT ([a-z ]+) v1 ====\n.*?  ;; ==== END EVENTGATEWAY WAT KIT \2 v1 ====\n)",
    (KITS_DIR / "wat" / "capabilities.wat").read_text()))
DATA = re.compile(r'\(data \(i32\.const (\d+)\) "([^"]*)"\)\s*;;\s*(\d+)')


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_module_embeds_the_current_kit(module: Path) -> None:
    assert KIT in module.read_text(), f"{module} does not contain wasm_abi/pdk/wat/kit.wat verbatim"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_string_constants_fit_their_slots(module: Path) -> None:
    segments = sorted((int(at), text, int(length)) for at, text, length in DATA.findall(module.read_text()))
    assert segments, "no string constants found"
    for (at, text, length), following in zip(segments, segments[1:] + [(16384, "", 0)], strict=True):
        assert len(text.encode()) == length, f"{text!r} at {at} is {len(text.encode())} bytes, not {length}"
        assert at + length <= following[0], f"{text!r} at {at} overlaps the constant at {following[0]}"


def test_capabilities_wat_has_its_five_blocks() -> None:
    assert set(CAPABILITY_BLOCKS.values()) == {"kv imports", "metrics imports", "codes", "kv", "metrics"}


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_module_embeds_the_current_capability_blocks_it_uses(module: Path) -> None:
    text = module.read_text()
    for block, name in CAPABILITY_BLOCKS.items():
        if f"BEGIN EVENTGATEWAY WAT KIT {name} v1" in text:
            assert block in text, f"{module} has an outdated copy of the {name!r} block of capabilities.wat"
