"""Zig examples compile with PyPI's `ziglang` for wasm32-freestanding; the kit is passed to the
compiler as the module `eventgateway`, so a plugin only writes `@import("eventgateway")`."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from plugin_examples.build import ToolchainMissing
from plugin_examples.c.builder import run

INSTALL_HINT = "run `just toolchains` (pip install ziglang)"
ABI_EXPORTS = ("eventgateway_abi_v1", "alloc", "subscriptions", "init", "react")


def check_toolchain() -> None:
    try:
        import ziglang  # noqa: F401
    except ImportError as exc:
        raise ToolchainMissing("zig", INSTALL_HINT) from exc


def build(example_dir: Path, kit_dir: Path, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="eg-zig-") as tmp:
        target = Path(tmp) / "plugin.wasm"
        command = [
            sys.executable, "-m", "ziglang", "build-exe",
            "-target", "wasm32-freestanding", "-fno-entry", "-O", "ReleaseSmall", "-fstrip",
            *(f"--export={name}" for name in ABI_EXPORTS),
            "--cache-dir", str(Path(tmp) / "zig-cache"),
            f"-femit-bin={target}",
            "--dep", "eventgateway",
            f"-Mroot={example_dir / 'plugin.zig'}",
            f"-Meventgateway={kit_dir / 'eventgateway.zig'}",
        ]
        run(command, Path(tmp))
        out.write_bytes(target.read_bytes())
