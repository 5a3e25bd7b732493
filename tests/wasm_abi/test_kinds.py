"""Fault and load-error kinds are closed sets, defined once (wasm_abi/errors.py) and all listed in ABI.md."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import wasm_abi
from wasm_abi import FAULT_KINDS, LOAD_ERROR_KINDS, InputTooLarge, Limits, PluginFault

REPO = Path(__file__).resolve().parents[2]
ABI = (Path(wasm_abi.__file__).parent / "ABI.md").read_text()


def _kinds_in_table(after: str) -> set[str]:
    """The backquoted names in the first column of the first table after the line containing ``after``."""
    lines = ABI[ABI.index(after):].splitlines()[1:]
    start = next(i for i, line in enumerate(lines) if line.startswith("| kind"))
    kinds: set[str] = set()
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        kinds.update(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    return kinds


def test_abi_md_lists_every_fault_kind() -> None:
    assert _kinds_in_table("A misbehaving call raises `PluginFault`") == FAULT_KINDS


def test_abi_md_lists_every_load_error_kind() -> None:
    assert _kinds_in_table("A module that cannot be loaded raises `PluginLoadError`") == LOAD_ERROR_KINDS


def _kind_literals(path: Path) -> list[tuple[str, str, int]]:
    """(class, kind, line) of every PluginFault(...)/PluginLoadError(...) built with a literal kind."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("PluginFault",
                                                                                               "PluginLoadError"):
            position = 1 if node.func.id == "PluginFault" else 2
            if len(node.args) > position and isinstance(node.args[position], ast.Constant):
                found.append((node.func.id, node.args[position].value, node.lineno))
    return found


def test_every_kind_the_code_produces_is_in_the_closed_sets() -> None:
    """wasm_abi is type-checked (mypy strict: the kinds are Literal types); this also covers the gateway."""
    paths = [*sorted((REPO / "wasm_abi").glob("*.py")), *sorted((REPO / "gateway").rglob("*.py"))]
    seen = 0
    for path in paths:
        for cls, kind, line in _kind_literals(path):
            allowed = FAULT_KINDS if cls == "PluginFault" else LOAD_ERROR_KINDS
            assert kind in allowed, f"{path.relative_to(REPO)}:{line}: {cls} kind {kind!r} is not in the closed set"
            seen += 1
    assert seen > 20


def test_an_oversized_input_is_an_input_too_large_fault_and_a_value_error(
    make_plugin: Callable[..., wasm_abi.Plugin],
) -> None:
    plugin = make_plugin(limits=Limits(max_input_bytes=100))
    with pytest.raises(PluginFault) as caught:
        plugin.react({"type": "x", "data": "y" * 200})
    fault = caught.value
    assert isinstance(fault, InputTooLarge) and isinstance(fault, ValueError)
    assert fault.kind == "input_too_large" and fault.limit == 100 and fault.size > 100
    assert "over the input limit of 100 bytes" in fault.message
    # Nothing ran: not a fault of the plugin's health.
    assert plugin.state.faults == {} and plugin.state.consecutive_faults == 0
    with pytest.raises(ValueError, match="over the input limit"):  # what callers caught before
        plugin.react_encoded(b"\x80" * 101, "x")
