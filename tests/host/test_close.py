"""Closing plugins: explicitly, and at interpreter exit (where WASI Stores used to abort the process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from wasm_abi import Plugin, PluginFault, Reaction

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
