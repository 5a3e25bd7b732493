"""`event-gateway plugin check | react` with WASI (Go and WAT) plugins exit normally, without `os._exit`.

The CLI used to leave with `os._exit` because wasmtime's WASI runtime threads could abort the process
(exit status 134) while the interpreter finalized. The commands now close the plugin they load, and the
host gives wasmtime no Python callback that could run during finalization (tests/wasm_abi/test_close.py),
so the process finalizes like any other: these runs would show the abort if it came back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "gateway", "plugin"]


@pytest.fixture(scope="module")
def wasi_modules() -> list[Path]:
    from plugin_examples.build import build

    return [Path(__file__).parent / "wat" / "wasi_sandbox.wat", build("go", "logger"), build("go", "guard")]


def _run(cache_dir: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "EVENT_GATEWAY_CACHE_DIR": str(cache_dir),
                               "PATH": "/usr/bin:/bin"})


def test_cli_does_not_leave_with_os_exit() -> None:
    source = (REPO / "gateway" / "plugin_cli.py").read_text()
    assert "os._exit" not in source


@pytest.mark.parametrize("command", ["check", "react"])
def test_plugin_commands_with_wasi_plugins_exit_cleanly(command: str, wasi_modules: list[Path], cache_dir: Path,
                                                         tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"specversion": "1.0", "type": "user.created", "source": "cli-test", "id": "1",
                                 "data": {"name": "Ada"}}))
    for _ in range(4):
        for module in wasi_modules:
            args = (command, module) if command == "check" else (command, module, event)
            done = _run(cache_dir, *args)
            assert done.returncode == 0, (module.name, done.returncode, done.stderr[-3000:])
            assert "panicked" not in done.stderr and "Fatal Python error" not in done.stderr, done.stderr[-3000:]
            if command == "check":
                assert done.stdout.rstrip().endswith("ok")
            else:
                assert "fuelUsed" in json.loads(done.stdout)
