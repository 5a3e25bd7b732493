"""The capability-less WASI and the `eventgateway.log` import."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wasm_abi import Limits, Plugin, PluginFault, Reaction

from tests.wat import wat_bytes

MakePlugin = Callable[..., Plugin]
LOG_IMPORT = '(import "eventgateway" "log" (func $log (param i32 i32 i32)))'


def plugin_records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "wasm_abi.plugin" and getattr(r, "plugin", None) == name]


def test_wasi_plugin_cannot_open_files_read_env_args_or_stdin(
    wat_file: Callable[[str], Path], plugin_logs: pytest.LogCaptureFixture
) -> None:
    plugin = Plugin.from_file(wat_file("wasi_sandbox.wat"))
    assert plugin.uses_wasi
    assert plugin.react({"type": "x"}) == Reaction()  # it rejects with "sandbox escaped: ..." otherwise
    records = plugin_records(plugin_logs, "wasi_sandbox")
    assert [(r.plugin_level, r.getMessage()) for r in records] == [  # type: ignore[attr-defined]
        ("info", "[plugin wasi_sandbox] hello from wasi stdout"),
        ("error", "[plugin wasi_sandbox] and from stderr"),
    ]


def test_log_import_levels_and_handler(make_plugin: MakePlugin, plugin_logs: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, str, str]] = []
    react = """
      (call $log (i32.const 0) (i32.const 3000) (i32.const 5))
      (call $log (i32.const 1) (i32.const 3000) (i32.const 5))
      (call $log (i32.const 2) (i32.const 3000) (i32.const 5))
      (call $log (i32.const 3) (i32.const 3000) (i32.const 5))
      (call $log (i32.const 1) (local.get $ptr) (i32.const 0))
      (i64.const 0)"""
    plugin = make_plugin(name="talker", imports=LOG_IMPORT, react=react, extra='(data (i32.const 3000) "hello")',
                         log_handler=lambda *args: seen.append(args))
    assert plugin.react({}) == Reaction()
    assert seen == [("talker", "debug", "hello"), ("talker", "info", "hello"), ("talker", "warn", "hello"),
                    ("talker", "error", "hello"), ("talker", "info", "")]
    records = plugin_records(plugin_logs, "talker")
    assert [r.levelno for r in records] == [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.INFO]
    assert records[0].getMessage() == "[plugin talker] hello"


def test_log_messages_are_length_capped(make_plugin: MakePlugin) -> None:
    seen: list[str] = []
    plugin = make_plugin(name="long", imports=LOG_IMPORT, limits=Limits(max_log_message_bytes=10),
                         react="(call $log (i32.const 1) (i32.const 3000) (i32.const 36)) (i64.const 0)",
                         extra='(data (i32.const 3000) "0123456789abcdefghijklmnopqrstuvwxyz")',
                         log_handler=lambda _n, _l, m: seen.append(m))
    plugin.react({})
    assert seen == ["0123456789 [truncated 26 bytes]"]


def test_log_out_of_bounds_buffer_is_ignored_not_a_trap(make_plugin: MakePlugin,
                                                        plugin_logs: pytest.LogCaptureFixture) -> None:
    plugin = make_plugin(name="oob", imports=LOG_IMPORT,
                         react="(call $log (i32.const 1) (i32.const 65530) (i32.const 100)) (i64.const 0)")
    assert plugin.react({}) == Reaction()
    assert any("outside memory" in r.getMessage() for r in plugin_records(plugin_logs, "oob"))


def test_log_rate_limit_drops_and_says_so_once(make_plugin: MakePlugin, plugin_logs: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    react = """
      (global.set $i (i32.const 0))
      (loop $again
        (call $log (i32.const 1) (i32.const 3000) (i32.const 5))
        (global.set $i (i32.add (global.get $i) (i32.const 1)))
        (br_if $again (i32.lt_u (global.get $i) (i32.const 50))))
      (i64.const 0)"""
    plugin = make_plugin(name="flood", imports=LOG_IMPORT, react=react, extra='(data (i32.const 3000) "spam!") (global $i (mut i32) (i32.const 0))',
                         limits=Limits(log_rate_per_second=0.001, log_burst=5),
                         log_handler=lambda _n, _l, m: seen.append(m))
    plugin.react({})
    assert seen == ["spam!"] * 5
    warnings = [r.getMessage() for r in plugin_records(plugin_logs, "flood") if "rate limit" in r.getMessage()]
    assert len(warnings) == 1 and "dropping messages" in warnings[0]


def test_wasi_stdout_is_logged_by_line(make_plugin: MakePlugin) -> None:
    seen: list[tuple[str, str]] = []
    text = b"one\ntwo\nthree"
    imports = '(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))'
    react = f"""
      (i32.store (i32.const 600) (i32.const 3000))
      (i32.store (i32.const 604) (i32.const {len(text)}))
      (drop (call $fd_write (i32.const 1) (i32.const 600) (i32.const 1) (i32.const 608)))
      (i64.const 0)"""
    plugin = make_plugin(name="printer", imports=imports, react=react,
                         extra=f"(data (i32.const 3000) {wat_bytes(text)})",
                         log_handler=lambda _n, level, m: seen.append((level, m)))
    plugin.react({})
    assert seen == [("info", "one"), ("info", "two")]  # "three" waits for its newline
    plugin.react({})
    assert seen[2:] == [("info", "threeone"), ("info", "two")]


def test_wasi_sleep_returns_at_once_instead_of_blocking(make_plugin: MakePlugin) -> None:
    """poll_oneoff on a 60 s clock must not block the caller (fuel and epochs cannot stop a
    host call); the plugin checks it got its one event back with the right userdata."""
    imports = ('(import "wasi_snapshot_preview1" "poll_oneoff" '
               '(func $poll_oneoff (param i32 i32 i32 i32) (result i32)))')
    react = """
      (i64.store (i32.const 4096) (i64.const 0x1234))          ;; userdata
      (i32.store8 (i32.const 4104) (i32.const 0))               ;; tag: clock
      (i32.store (i32.const 4112) (i32.const 1))                ;; clock id: monotonic
      (i64.store (i32.const 4120) (i64.const 60000000000))      ;; timeout: 60 s
      (i64.store (i32.const 4128) (i64.const 0))                ;; precision
      (i32.store16 (i32.const 4136) (i32.const 0))              ;; flags: relative
      (if (result i64)
        (i32.and
          (i32.eqz (call $poll_oneoff (i32.const 4096) (i32.const 4160) (i32.const 1) (i32.const 4200)))
          (i32.and (i32.eq (i32.load (i32.const 4200)) (i32.const 1))
                   (i64.eq (i64.load (i32.const 4160)) (i64.const 0x1234))))
        (then (i64.const 0))
        (else unreachable))"""
    plugin = make_plugin(name="sleeper", imports=imports, react=react)
    started = time.monotonic()
    assert plugin.react({}) == Reaction()
    assert time.monotonic() - started < 30  # far below the 60 s it asked for


@pytest.mark.parametrize("ptr, length", [(3000, 5), (-1, -1)], ids=["in_bounds", "out_of_bounds"])
def test_log_in_a_loop_runs_out_of_fuel_not_into_the_deadline(make_plugin: MakePlugin, ptr: int, length: int) -> None:
    """Each log call costs `log_call_fuel`: a plugin logging forever ends as `out_of_fuel`, as a
    computing loop would, instead of holding the caller until the wall-clock deadline."""
    seen: list[str] = []
    react = f"(loop (call $log (i32.const 1) (i32.const {ptr}) (i32.const {length})) (br 0)) (i64.const 0)"
    limits = Limits(sync_fuel=1_000_000, log_call_fuel=100_000, sync_timeout=5, log_burst=1000)
    plugin = make_plugin(name="chatty", imports=LOG_IMPORT, react=react, limits=limits,
                         extra='(data (i32.const 3000) "hello")', log_handler=lambda _n, _l, m: seen.append(m))
    with pytest.raises(PluginFault, match="ran out of fuel") as info:
        plugin.react({})
    assert info.value.kind == "out_of_fuel"
    if length > 0:
        assert seen == ["hello"] * 9  # 1 M fuel pays for 9 calls of 100 k (the rest went to instructions)
    assert make_plugin(name="after", reaction={"error": "fine"}).react({}) == Reaction("fine")


def test_log_call_fuel_is_charged_to_the_reaction(make_plugin: MakePlugin) -> None:
    react = "(call $log (i32.const 1) (i32.const 3000) (i32.const 5)) (i64.const 0)"
    plugin = make_plugin(imports=LOG_IMPORT, react=react, extra='(data (i32.const 3000) "hello")',
                         limits=Limits(log_call_fuel=12_345))
    quiet = make_plugin(imports=LOG_IMPORT, react="(i64.const 0)")
    assert plugin.react({}).fuel_used - quiet.react({}).fuel_used >= 12_345


FD_WRITE = '(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))'
RANDOM_GET = '(import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))'


def expect(call: str, errno: int) -> str:
    """WAT: trap unless `call` returns `errno`."""
    return f"(if (i32.ne {call} (i32.const {errno})) (then unreachable))"


def test_wasi_fd_write_errors_and_count(make_plugin: MakePlugin) -> None:
    """Only stdout and stderr exist; buffers outside memory are EFAULT; nwritten is the total."""
    seen: list[tuple[str, str]] = []
    react = f"""
      (i32.store (i32.const 600) (i32.const 3000)) (i32.store (i32.const 604) (i32.const 3))
      (i32.store (i32.const 608) (i32.const 3003)) (i32.store (i32.const 612) (i32.const 3))
      {expect("(call $fd_write (i32.const 2) (i32.const 600) (i32.const 2) (i32.const 620))", 0)}
      (if (i32.ne (i32.load (i32.const 620)) (i32.const 6)) (then unreachable))
      {expect("(call $fd_write (i32.const 0) (i32.const 600) (i32.const 2) (i32.const 620))", 8)}
      {expect("(call $fd_write (i32.const 3) (i32.const 600) (i32.const 2) (i32.const 620))", 8)}
      {expect("(call $fd_write (i32.const -1) (i32.const 600) (i32.const 2) (i32.const 620))", 8)}
      {expect("(call $fd_write (i32.const 1) (i32.const 65532) (i32.const 1) (i32.const 620))", 21)}
      {expect("(call $fd_write (i32.const 1) (i32.const 600) (i32.const 1) (i32.const 65534))", 21)}
      (i32.store (i32.const 640) (i32.const 65000)) (i32.store (i32.const 644) (i32.const 1000))
      {expect("(call $fd_write (i32.const 1) (i32.const 640) (i32.const 1) (i32.const 620))", 21)}
      (i64.const 0)"""
    plugin = make_plugin(name="writer", imports=FD_WRITE, react=react, extra='(data (i32.const 3000) "ab\\ncd\\n")',
                         log_handler=lambda _n, level, m: seen.append((level, m)))
    assert plugin.react({}) == Reaction()
    assert seen == [("error", "ab"), ("error", "cd")]


def test_wasi_random_get_fills_the_buffer(make_plugin: MakePlugin) -> None:
    """64 random bytes are not all zero (chance 2^-512); outside memory is EFAULT."""
    react = f"""
      {expect("(call $random_get (i32.const 4000) (i32.const 64))", 0)}
      (if (i64.eqz (i64.or (i64.or (i64.load (i32.const 4000)) (i64.load (i32.const 4008)))
                           (i64.or (i64.load (i32.const 4048)) (i64.load (i32.const 4056)))))
        (then unreachable))
      {expect("(call $random_get (i32.const 65500) (i32.const 64))", 21)}
      {expect("(call $random_get (i32.const -1) (i32.const 2))", 21)}
      {expect("(call $random_get (i32.const 0) (i32.const 0))", 0)}
      (i64.const 0)"""
    assert make_plugin(imports=RANDOM_GET, react=react).react({}) == Reaction()


@pytest.mark.parametrize(
    "imports, loop",
    [
        (FD_WRITE, "(drop (call $fd_write (i32.const 1) (i32.const 600) (i32.const 1) (i32.const 620)))"),
        (RANDOM_GET, "(drop (call $random_get (i32.const 4000) (i32.const 60000)))"),
    ],
    ids=["fd_write", "random_get"],
)
def test_wasi_calls_in_a_loop_run_out_of_fuel(make_plugin: MakePlugin, imports: str, loop: str) -> None:
    """Host work is paid in fuel, so with an hour of wall clock the loop still ends as out_of_fuel."""
    react = f"""(i32.store (i32.const 600) (i32.const 3000)) (i32.store (i32.const 604) (i32.const 100))
      (loop {loop} (br 0)) (i64.const 0)"""
    plugin = make_plugin(imports=imports, react=react, limits=Limits(sync_timeout=5, log_rate_per_second=1e6))
    with pytest.raises(PluginFault, match="ran out of fuel") as info:
        plugin.react({})
    assert info.value.kind == "out_of_fuel"


def test_wasi_poll_oneoff_is_paid_per_subscription(make_plugin: MakePlugin) -> None:
    """A poll over 1 024 (zeroed: clock) subscriptions costs 1 000 fuel each, over a 1 M budget:
    it does nothing and answers EAGAIN, leaving the plugin no fuel; 100 subscriptions are paid;
    more than MAX_POLL_SUBSCRIPTIONS (1 024) is EINVAL before any work."""
    imports = ('(import "wasi_snapshot_preview1" "poll_oneoff" '
               '(func $poll_oneoff (param i32 i32 i32 i32) (result i32)))')
    memory = '(memory (export "memory") 20)'

    def plugin(count: int, errno: int) -> Plugin:
        call = f"(call $poll_oneoff (i32.const 65536) (i32.const 65536) (i32.const {count}) (i32.const 600))"
        return make_plugin(imports=imports, memory=memory, react=f"{expect(call, errno)} (i64.const 0)",
                           limits=Limits(sync_timeout=5, sync_fuel=1_000_000))

    paid = plugin(100, 0).react({})
    assert 100_000 < paid.fuel_used < 1_000_000
    assert plugin(1024, 6).react({}).fuel_used == 1_000_000
    assert plugin(1025, 28).react({}).fuel_used < 1000


def test_wasi_clocks_work(make_plugin: MakePlugin) -> None:
    """Realtime and monotonic clocks answer (a realtime clock after 2020 proves it is the real one)."""
    imports = '(import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))'
    react = f"""
      {expect("(call $clock (i32.const 0) (i64.const 1) (i32.const 4000))", 0)}
      (if (i64.lt_u (i64.load (i32.const 4000)) (i64.const 1577836800000000000)) (then unreachable))
      {expect("(call $clock (i32.const 1) (i64.const 1) (i32.const 4008))", 0)}
      (if (result i64) (i32.gt_u (local.get $len) (i32.const 1))
        (then (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 65535))) (i64.const 0))
        (else (i64.const 0)))"""
    plugin = make_plugin(imports=imports, react=react)
    assert plugin.react({}) == Reaction()
    # wasmtime's own WASI functions fail a pointer outside memory as a trap, not EFAULT.
    with pytest.raises(PluginFault, match="clock_time_get.*out of bounds") as info:
        plugin.react({"a": 1})
    assert info.value.kind == "trap"


def test_wasi_proc_exit_is_a_trap_fault(make_plugin: MakePlugin) -> None:
    imports = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
    plugin = make_plugin(imports=imports, react="(call $exit (i32.const 3)) (i64.const 0)")
    with pytest.raises(PluginFault, match=r"react called WASI proc_exit\(3\)") as info:
        plugin.react({})
    assert info.value.kind == "trap"
    assert make_plugin(name="after", reaction={"error": "fine"}).react({}) == Reaction("fine")


def test_unknown_log_level_is_info(make_plugin: MakePlugin) -> None:
    seen: list[tuple[str, str]] = []
    react = """(call $log (i32.const 7) (i32.const 3000) (i32.const 2))
               (call $log (i32.const -1) (i32.const 3000) (i32.const 2)) (i64.const 0)"""
    plugin = make_plugin(imports=LOG_IMPORT, react=react, extra='(data (i32.const 3000) "hi")',
                         log_handler=lambda _n, level, m: seen.append((level, m)))
    plugin.react({})
    assert seen == [("info", "hi"), ("info", "hi")]
