"""Build a Rust example with Debian's `rustc` for `wasm32-unknown-unknown`, without Cargo.

The kit is compiled first as an rlib (`eventgateway_pdk`), then the example's `lib.rs` as a
`cdylib` linked against it. Debian's rustc is called by absolute path because the rustup toolchain
that may come first on PATH has no wasm32 standard library and cannot download one here.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from plugin_examples.build import BuildError, ToolchainMissing

RUSTC = Path("/usr/bin/rustc")
TARGET = "wasm32-unknown-unknown"
INSTALL_HINT = "run `just toolchains` (scripts/toolchains/rust.sh: apt-get install rustc libstd-rust-dev-wasm32 lld-14)"
# Debian's rustc links wasm32 modules with `rust-lld`, a link to lld-14 from a package it only suggests.
LINKER = Path("/usr/bin/rust-lld")
_COMMON_FLAGS = ("--edition", "2021", "--target", TARGET, "-C", "opt-level=s", "-C", "panic=abort")


def check_toolchain() -> None:
    if not RUSTC.is_file():
        raise ToolchainMissing("rust", f"{RUSTC} not found; {INSTALL_HINT}")
    sysroot = subprocess.run([str(RUSTC), "--print", "sysroot"], check=False, capture_output=True, text=True).stdout.strip()
    if not (Path(sysroot) / "lib" / "rustlib" / TARGET).is_dir():
        raise ToolchainMissing("rust", f"{RUSTC} has no {TARGET} standard library; {INSTALL_HINT}")
    if not LINKER.resolve().is_file():
        raise ToolchainMissing("rust", f"{LINKER} (the wasm32 linker, from lld-14) not found; {INSTALL_HINT}")


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"`{' '.join(command)}` failed ({done.returncode}):\n{done.stderr}{done.stdout}")


def build(example_dir: Path, kit_dir: Path, out: Path) -> None:
    source = example_dir / "lib.rs"
    if not source.is_file():
        raise BuildError(f"{source} does not exist (a Rust plugin is one lib.rs next to the kit crate)")
    with tempfile.TemporaryDirectory(prefix="eg-rust-") as tmp:
        work = Path(tmp)
        _run(
            [str(RUSTC), *_COMMON_FLAGS, "--crate-type", "rlib", "--crate-name", "eventgateway_pdk",
             "-o", str(work / "libeventgateway_pdk.rlib"), str(kit_dir / "lib.rs")],
            cwd=work,
        )
        _run(
            [str(RUSTC), *_COMMON_FLAGS, "--crate-type", "cdylib", "-C", "strip=symbols",
             "--crate-name", "plugin", "--extern", f"eventgateway_pdk={work / 'libeventgateway_pdk.rlib'}",
             "-o", str(work / "plugin.wasm"), str(source)],
            cwd=work,
        )
        shutil.copyfile(work / "plugin.wasm", out)
