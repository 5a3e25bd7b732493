"""Module files named by ``--plugin`` and plugins.toml are read through a bounded read (issue 10): at most
the plugin's ``max_module_bytes`` + 1 bytes, whatever ``stat()`` says, so ``/dev/zero`` (or any endless
or huge file) is a clear start-up error, quickly, without the gateway's memory growing with it."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.plugins.config_file import PluginsConfigError, load_plugins_config

# `python -m gateway serve` subprocesses
pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_MAX = 32 * 1024 * 1024


def _serve(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "gateway", "serve", "--db", "memory", "--events-port", "0",
                           "--config-port", "0", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    return done, time.monotonic() - began


def _children_max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


@pytest.mark.parametrize("how", ["flag", "file"])
def test_dev_zero_as_a_module_is_a_quick_clear_error(how: str, tmp_path: Path) -> None:
    if how == "flag":
        done, seconds = _serve("--plugin", "/dev/zero")
    else:
        config = tmp_path / "plugins.toml"
        config.write_text('[plugins.zero]\npath = "/dev/zero"\n')
        done, seconds = _serve("--plugins-config", str(config))
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "/dev/zero" in output and f"module size limit of {DEFAULT_MAX} bytes" in output, output[-2000:]
    if how == "file":
        assert f"{tmp_path / 'plugins.toml'}:2: plugins.zero.path" in output, output[-2000:]
    assert seconds < 20, seconds
    # The read stopped one byte past 32 MiB: the process stayed far below what reading on would take.
    assert _children_max_rss_mb() < 600


def test_plugins_toml_module_over_its_own_limit(tmp_path: Path) -> None:
    module = tmp_path / "big.wasm"
    module.write_bytes(b"\0asm\1\0\0\0" + b"\0" * 4096)
    config = tmp_path / "plugins.toml"
    config.write_text('[plugins.big]\npath = "big.wasm"\n\n[plugins.big.limits]\nmax_module_bytes = 1024\n')
    with pytest.raises(PluginsConfigError) as caught:
        load_plugins_config(config)
    message = str(caught.value)
    assert message.startswith(f"{config}:2: plugins.big.path: module {module} is over the module size limit of "
                              "1024 bytes (limits.max_module_bytes)"), message
