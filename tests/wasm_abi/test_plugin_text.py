"""Plugin-supplied text is capped where it enters the host.

A module chooses its function names (the name section goes into every trap message), its export and
import names, its reactions' `error` strings and its subscriptions: any of them may be megabytes. Each
fault message, load error and reaction error is capped (MAX_MESSAGE_CHARS, 4096 characters, with a
"... (N more characters)" marker) before it is stored (`lastFault`), logged or returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgpack
import pytest
import wasmtime

from wasm_abi import Plugin, PluginFault, PluginLoadError
from wasm_abi.errors import MAX_MESSAGE_CHARS

from tests.wat import plugin_wat, wat_bytes

MakePlugin = Callable[..., Plugin]
HUGE = 3_800_000  # the size that made a 3.8 MB lastFault


def capped(text: str) -> bool:
    return len(text) <= MAX_MESSAGE_CHARS + 40


def test_a_trap_in_a_function_with_a_multi_megabyte_name_is_capped(make_plugin: MakePlugin) -> None:
    name = "f" * HUGE
    plugin = make_plugin(react=f"(call ${name})", extra=f"(func ${name} (result i64) unreachable)")
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(PluginFault) as info:
            plugin.react({})
        assert time.monotonic() - started < 2.0
        fault = info.value
        assert fault.kind == "trap" and fault.message.startswith("react trapped:")
        assert capped(fault.message) and capped(str(fault)), len(fault.message)
        assert "more characters)" in fault.message
    state = plugin.state
    assert state.last_fault_kind == "trap" and capped(state.last_fault_message or "")


def test_a_trap_at_load_with_a_huge_name_is_a_capped_load_error() -> None:
    name = "g" * HUGE
    wat = plugin_wat(initialize=f"(call ${name})", extra=f"(func ${name} unreachable)")
    with pytest.raises(PluginLoadError) as info:
        Plugin.from_bytes(bytes(wasmtime.wat2wasm(wat)), name="loader")
    assert info.value.kind == "trap" and capped(info.value.message)


def test_a_huge_import_name_is_a_capped_load_error() -> None:
    """90 000 characters: wasmparser refuses names over 100 000 bytes itself."""
    wat = plugin_wat(imports=f'(import "eventgateway" "{"h" * 90_000}" (func))')
    with pytest.raises(PluginLoadError) as info:
        Plugin.from_bytes(bytes(wasmtime.wat2wasm(wat)), name="importer")
    assert info.value.kind == "forbidden_import" and capped(info.value.message)
    assert info.value.message.startswith("imports eventgateway.hhh")


def test_a_huge_subscription_event_type_is_a_capped_load_error(make_plugin: MakePlugin) -> None:
    subs = msgpack.packb([{"eventType": "e" * 500_000, "type": "sync"}])
    with pytest.raises(PluginLoadError) as info:
        make_plugin(subscriptions=subs, memory='(memory (export "memory") 10)')
    assert info.value.kind == "bad_subscriptions" and len(info.value.message) < 1000
    assert "subscriptions[0].eventType is 'eee" in info.value.message


def test_a_huge_replacement_type_is_a_capped_fault(make_plugin: MakePlugin) -> None:
    body = msgpack.packb({"event": {"type": "eventgateway." + "x" * 500_000}})
    plugin = make_plugin(memory='(memory (export "memory") 10)',
                         extra=f"(data (i32.const 65536) {wat_bytes(body)})",
                         react=f"(i64.const {(65536 << 32) | len(body)})")
    with pytest.raises(PluginFault) as info:
        plugin.react({"type": "eventgateway.event.received"})
    assert info.value.kind == "bad_output" and len(info.value.message) < 1000


def test_a_huge_reaction_error_is_capped(make_plugin: MakePlugin) -> None:
    body = msgpack.packb({"error": "E" * 900_000})
    plugin = make_plugin(memory='(memory (export "memory") 20)', extra=f"(data (i32.const 65536) {wat_bytes(body)})",
                         react=f"(i64.const {(65536 << 32) | len(body)})")
    error = plugin.react({}).error or ""
    assert error.startswith("E" * MAX_MESSAGE_CHARS) and error.endswith(f"({900_000 - MAX_MESSAGE_CHARS} more characters)")
