"""`eventgateway.log` against a hostile plugin: buffers past memory (unsigned, to the byte), a log call
made while another plugin runs inside the first one's log call, and a flood of calls."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import wasmtime

from wasm_abi import Limits, Plugin, PluginFault, Reaction

from tests.wat import plugin_wat

MakePlugin = Callable[..., Plugin]
LOG_IMPORT = '(import "eventgateway" "log" (func $log (param i32 i32 i32)))'
PAGE = 65536


def host_warnings(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "wasm_abi.plugin" and getattr(r, "plugin", None) == name and "(host)" in r.getMessage()]


@pytest.mark.parametrize("ptr, length, reported", [
    (PAGE - 1, 2, f"ptr={PAGE - 1} len=2"),  # one byte past the end
    (0, -1, "ptr=0 len=4294967295"),  # len 2^32-1: unsigned, not -1
    (-1, 1, "ptr=4294967295 len=1"),  # ptr 2^32-1: unsigned, and ptr+len does not wrap around
    (-1, -1, "ptr=4294967295 len=4294967295"),
    (PAGE, 0, None),  # an empty message right at the end is in bounds
])
def test_log_buffer_past_memory_is_a_host_warning_not_a_trap_or_a_read(
        make_plugin: MakePlugin, plugin_logs: pytest.LogCaptureFixture, ptr: int, length: int,
        reported: str | None) -> None:
    seen: list[str] = []
    plugin = make_plugin(name="oob", imports=LOG_IMPORT, log_handler=lambda _n, _l, m: seen.append(m),
                         react=f"(call $log (i32.const 1) (i32.const {ptr}) (i32.const {length})) (i64.const 0)")
    assert plugin.react({}) == Reaction()
    if reported is None:
        assert seen == [""] and host_warnings(plugin_logs, "oob") == []
    else:
        assert seen == [f"(host) log buffer {reported} is outside memory of {PAGE} bytes"]
    assert plugin.react({}) == Reaction()  # and the instance is still fine


def test_log_reads_the_memory_as_it_is_after_growing(make_plugin: MakePlugin) -> None:
    """The bound is the memory's size at the call, not at load: a message in a page grown by this very
    reaction is read."""
    seen: list[str] = []
    react = f"""(drop (memory.grow (i32.const 1)))
      (i64.store (i32.const {PAGE + 100}) (i64.const 0x2121776f72676e69))
      (call $log (i32.const 1) (i32.const {PAGE + 100}) (i32.const 8)) (i64.const 0)"""
    plugin = make_plugin(name="grower", imports=LOG_IMPORT, react=react, limits=Limits(max_memory_bytes=4 * PAGE),
                         log_handler=lambda _n, _l, m: seen.append(m))
    assert plugin.react({}) == Reaction()
    assert seen == ["ingrow!!"]


def test_a_log_call_made_inside_another_plugins_log_call_reads_its_own_memory_and_goes_to_its_own_log() -> None:
    """Plugin A logs; A's log_handler runs plugin B on the same thread, which logs from its own (smaller)
    memory; then A logs again. Each call must read the calling plugin's memory, be charged to the calling
    plugin's fuel, and reach that plugin's handler: A's second message sits past the end of B's memory."""
    seen: list[tuple[str, str]] = []
    b_wat = plugin_wat(imports=LOG_IMPORT, extra='(data (i32.const 3000) "b-says")',
                       react="(call $log (i32.const 2) (i32.const 3000) (i32.const 6)) (i64.const 0)")
    plugin_b = Plugin.from_bytes(bytes(wasmtime.wat2wasm(b_wat)), name="b",
                                 log_handler=lambda name, _l, text: seen.append((name, text)))
    a_react = f"""(call $log (i32.const 1) (i32.const 3000) (i32.const 6))
      (call $log (i32.const 1) (i32.const {PAGE + 10}) (i32.const 8)) (i64.const 0)"""
    a_wat = plugin_wat(imports=LOG_IMPORT, react=a_react, memory='(memory (export "memory") 2)',
                       extra=f'(data (i32.const 3000) "a-says") (data (i32.const {PAGE + 10}) "a-page-2")')
    b_fuel: list[int] = []

    def handler(name: str, _level: str, text: str) -> None:
        seen.append((name, text))
        if text == "a-says":
            b_fuel.append(plugin_b.react({}).fuel_used)

    with plugin_b, Plugin.from_bytes(bytes(wasmtime.wat2wasm(a_wat)), name="a", log_handler=handler,
                                     limits=Limits(log_call_fuel=1_000_000)) as plugin_a:
        a_fuel = plugin_a.react({}).fuel_used
    assert seen == [("a", "a-says"), ("b", "b-says"), ("a", "a-page-2")]
    assert a_fuel >= 2_000_000  # A paid its own two calls at its own price...
    assert b_fuel[0] < 1_000_000  # ...and B's call was paid by B at B's (the default 50 000)


def test_a_flood_of_log_calls_ends_out_of_fuel_with_the_burst_logged_and_the_rest_counted(
        make_plugin: MakePlugin, plugin_logs: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    react = "(loop (call $log (i32.const 3) (i32.const 3000) (i32.const 5)) (br 0)) (i64.const 0)"
    limits = Limits(sync_fuel=20_000_000, log_call_fuel=10_000, sync_timeout=5, log_burst=3,
                    log_rate_per_second=0.001)
    plugin = make_plugin(name="flood", imports=LOG_IMPORT, react=react, limits=limits,
                         extra='(data (i32.const 3000) "spam!")', log_handler=lambda _n, _l, m: seen.append(m))
    with pytest.raises(PluginFault) as info:
        plugin.react({})
    assert info.value.kind == "out_of_fuel"  # ~2 000 calls, each paid before its work
    assert seen == ["spam!"] * 3
    dropping = [r for r in plugin_logs.records if r.name == "wasm_abi.plugin" and "rate limit" in r.getMessage()]
    assert len(dropping) == 1 and dropping[0].levelno == logging.WARNING


def test_a_log_call_the_plugin_cannot_pay_for_logs_nothing(make_plugin: MakePlugin) -> None:
    """Fuel is taken before any work: with less left than one call costs, nothing is read or logged, and
    the plugin is left with none (its loop after the call stops at once)."""
    seen: list[str] = []
    plugin = make_plugin(name="poor", imports=LOG_IMPORT, extra='(data (i32.const 3000) "hello")',
                         react="(call $log (i32.const 1) (i32.const 3000) (i32.const 5)) (loop (br 0)) (i64.const 0)",
                         limits=Limits(sync_fuel=100_000, log_call_fuel=10_000_000),
                         log_handler=lambda _n, _l, m: seen.append(m))
    with pytest.raises(PluginFault) as info:
        plugin.react({})
    assert info.value.kind == "out_of_fuel"
    assert seen == []
