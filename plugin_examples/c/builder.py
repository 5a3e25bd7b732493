"""C examples compile with the C compiler bundled in Zig (`python -m ziglang cc`, from PyPI's `ziglang`)
for freestanding wasm32: no libc, no WASI, just the kit's `eventgateway.c` next to the plugin's sources."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from plugin_examples.build import BuildError, ToolchainMissing

INSTALL_HINT = "run `just toolchains` (installs Zig, whose `zig cc` builds C: pip install ziglang)"


def zig_command() -> list[str]:
    return [sys.executable, "-m", "ziglang"]


def check_toolchain() -> None:
    try:
        import ziglang  # noqa: F401
    except ImportError as exc:
        raise ToolchainMissing("c", INSTALL_HINT) from exc


def run(command: list[str], cwd: Path) -> None:
    """Run a compiler; a failure raises BuildError carrying the command and its output."""
    done = subprocess.run(command, cwd=cwd, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def build(example_dir: Path, kit_dir: Path, out: Path) -> None:
    sources = sorted(str(p) for p in example_dir.glob("*.c")) + [str(kit_dir / "eventgateway.c")]
    with tempfile.TemporaryDirectory(prefix="eg-c-") as tmp:
        # zig keeps its cache next to the work dir unless told otherwise; send it to ~/.cache.
        command = [
            *zig_command(), "cc", "--target=wasm32-freestanding", "-nostdlib", "-O2", "-std=c11",
            "-Wall", "-Werror=implicit-function-declaration", f"-I{kit_dir}",
            "-Wl,--no-entry", "-Wl,--strip-all",
            "-o", str(Path(tmp) / "plugin.wasm"), *sources,
        ]
        run(command, Path(tmp))
        out.write_bytes((Path(tmp) / "plugin.wasm").read_bytes())
