"""Closing plugins: explicitly, and at interpreter exit (where WASI Stores used to abort the process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from wasm_abi import Limits, Plugin, PluginFault, Reaction

REPO = Path(__file__).resolve().parents[2]


def test_close_frees_instances_and_refuses_later_reactions(wat_file: Callable[[str], Path]) -> None:
    plugin = Plugin.from_file(wat_file("wasi_sandbox.wat"))
    assert plugin.react({"type": "x"}) == Reaction()
    plugin.close()
    plugin.close()  # idempotent
    with pytest.raises(PluginFault) as caught:
        plugin.react({"type": "x"})
    assert caught.value.kind == "closed"
    assert plugin._pool.size == 0  # no Store left alive


def test_wasi_plugins_alive_at_exit_do_not_abort_the_interpreter(
    wat_file: Callable[[str], Path], cache_dir: Path
) -> None:
    """A WASI plugin kept alive until exit by a reference cycle and a module global: the process must
    exit 0 with no wasmtime runtime panic (it aborted with status 134 now and then before)."""
    script = textwrap.dedent(f"""
        from wasm_abi import Plugin
        KEEP = []
        for _ in range(3):
            plugin = Plugin.from_file({str(wat_file("wasi_sandbox.wat"))!r})
            plugin.react({{"type": "x"}})
            KEEP.append(plugin)
        class Cycle: pass
        cycle = Cycle(); cycle.self = cycle; cycle.plugins = KEEP
        print("done")
    """)
    for _ in range(5):
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                                cwd=REPO, env={"PYTHONPATH": str(REPO), "EVENT_GATEWAY_CACHE_DIR": str(cache_dir),
                                               "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stderr[-2000:]
        assert "panicked" not in result.stderr, result.stderr[-2000:]
        assert result.stdout.strip() == "done"


# -- teardown: no workaround needed --------------------------------------------------------------------

TEARDOWN_MODES = ("close", "with", "global", "cycle", "thread_exit", "exit_while_reacting")


@pytest.fixture(scope="module")
def wasi_modules() -> list[Path]:
    """A WAT WASI plugin and two Go (WASI reactor) plugins: what used to abort at interpreter exit."""
    from plugin_examples.build import build

    return [Path(__file__).parent / "wat" / "wasi_sandbox.wat", build("go", "logger"), build("go", "guard")]


@pytest.mark.parametrize("mode", TEARDOWN_MODES)
def test_wasi_plugins_leave_the_interpreter_cleanly(mode: str, wasi_modules: list[Path], cache_dir: Path) -> None:
    """WAT and Go WASI plugins freed by close(), by `with`, or not at all until interpreter exit (a module
    global, a reference cycle, a thread that called sys.exit, daemon threads still reacting): exit status
    0 and no wasmtime panic, every run. Before the host stopped giving wasmtime Python callbacks for WASI
    stdout/stderr, freeing a WASI Store during finalization made a wasmtime runtime thread call into a
    half torn-down Python ("panic in a function that cannot unwind", exit status 134 now and then); an
    atexit hook with a sleep papered over it. Neither the hook nor any sleep exists now."""
    script = Path(__file__).parent / "teardown_script.py"
    for _ in range(5):
        result = subprocess.run([sys.executable, str(script), mode, *map(str, wasi_modules)], capture_output=True,
                                text=True, timeout=120, cwd=REPO,
                                env={"PYTHONPATH": str(REPO), "EVENT_GATEWAY_CACHE_DIR": str(cache_dir),
                                     "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
        assert "panicked" not in result.stderr and "Fatal Python error" not in result.stderr, result.stderr[-3000:]
        assert result.stdout.strip() == "done"


def test_no_teardown_workaround_is_left() -> None:
    """The host registers no atexit hook, keeps no registry of live plugins, and gives wasmtime no Python
    stream callback (the real cause of the teardown race)."""
    import wasm_abi.imports
    import wasm_abi.plugin

    for module in (wasm_abi.plugin, wasm_abi.imports):
        source = Path(module.__file__ or "").read_text()
        for word in ("atexit", "_LIVE", "WeakSet", "stdout_custom =", "stderr_custom =", "time.sleep"):
            assert word not in source, f"{module.__name__} uses {word}"


def test_plugin_is_a_context_manager(wat_file: Callable[[str], Path]) -> None:
    with Plugin.from_file(wat_file("wasi_sandbox.wat")) as plugin:
        assert plugin.react({"type": "x"}) == Reaction()
    with pytest.raises(PluginFault) as caught:
        plugin.react({"type": "x"})
    assert caught.value.kind == "closed"
    assert plugin._pool.size == 0
    plugin.close()  # closing again is harmless


def test_close_frees_the_stores_before_it_returns(wat_file: Callable[[str], Path]) -> None:
    """No garbage collection needed: the Stores of idle instances are gone when close() returns."""
    import gc
    import weakref

    gc.disable()
    try:
        plugin = Plugin.from_file(wat_file("wasi_sandbox.wat"))
        stores = [weakref.ref(instance.store) for instance in plugin._pool.snapshot()]
        assert stores
        plugin.close()
        assert [ref() for ref in stores] == [None] * len(stores)
    finally:
        gc.enable()


def test_an_instance_busy_during_close_is_dropped_when_its_reaction_returns(
    make_plugin: Callable[..., Plugin],
) -> None:
    """close() while a reaction runs on another thread: the reaction finishes, and its instance is freed on
    return rather than put back into the (closed) pool; its success is still counted."""
    import threading
    import time
    import weakref

    spin = ("(func $spin (result i64) (local $i i32) (local.set $i (i32.const 5000000)) (loop $l (local.set $i "
            "(i32.sub (local.get $i) (i32.const 1))) (br_if $l (local.get $i))) (i64.const 0))")
    # A generous async deadline: on a loaded machine the spin must end on its own, not as a timeout.
    plugin = make_plugin(react="(call $spin)", extra=spin, limits=Limits(async_timeout=30.0))
    started, stores = threading.Event(), []
    result: list[object] = []

    def react() -> None:
        started.set()
        try:
            result.append(plugin.react({"type": "x"}, "async"))
        except Exception as exc:  # shown by the assert below instead of lost in the thread
            result.append(exc)

    instance = plugin._pool.snapshot()[0]
    stores.append(weakref.ref(instance.store))
    del instance
    thread = threading.Thread(target=react)
    thread.start()
    started.wait()
    while plugin._pool._idle:  # until the reaction has taken the instance
        time.sleep(0.0005)
    plugin.close()
    thread.join()
    assert result == [Reaction()]
    assert plugin._pool.size == 0 and not plugin._pool._idle
    assert stores[0]() is None
    assert plugin.state.reactions["async"] == 1
