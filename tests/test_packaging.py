"""The wheel and the sdist carry every kit source file under wasm_abi/pdk and nothing that installing or
building a kit leaves there (the AS kit's node_modules is ~100 MB): built with the project's own build
backend, as pyproject.toml's [build-system] names it, from a copy of the tree into which such leftovers
were put."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PDK = "wasm_abi/pdk/"

pytestmark = pytest.mark.slow

#: What a developer's tree may hold under the kits after `just toolchains` / building the kits.
LEFTOVERS = [
    "assemblyscript/node_modules/assemblyscript/bin/asc.js",
    "assemblyscript/node_modules/.bin/asc",
    "assemblyscript/node_modules/@types/node/index.d.ts",
    "assemblyscript/build/debug.wasm",
    "assemblyscript/testing/accessors/node_modules/x/index.js",
    "rust/target/wasm32-unknown-unknown/release/libkit.rlib",
    "zig/.zig-cache/o/0123/eventgateway.o",
    "zig/zig-cache/h/timestamp",
    "zig/zig-out/bin/plugin.wasm",
    "go/dist/plugin.wasm",
    "c/.cache/clangd/index/eventgateway.c.idx",
    "c/__pycache__/x.cpython-311.pyc",
    "wat/kit.wasm",
]


@pytest.fixture(scope="module")
def build_backend(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The [build-system] requirements installed with ``pip install --target`` (the environment's own
    setuptools may be older than the one the project requires). PyPI is part of this test's environment:
    if pip cannot install them the test fails, never skips."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    target = tmp_path_factory.mktemp("build-backend")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet",
         "--target", str(target), *requires], capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        pytest.fail(f"pip install --target {target} {' '.join(requires)} failed:\n{result.stdout}\n{result.stderr}",
                    pytrace=False)
    return target


def _tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


def test_wheel_and_sdist_ship_every_kit_source_and_no_leftovers(build_backend: Path, tmp_path: Path) -> None:
    tree, out = tmp_path / "tree", tmp_path / "dist"
    tracked = _tracked_files()
    for name in tracked:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    for leftover in LEFTOVERS:
        path = tree / PDK / leftover
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("left over by a build\n")
    kit_sources = {name for name in tracked if name.startswith(PDK)}
    assert len(kit_sources) > 40 and f"{PDK}assemblyscript/index.ts" in kit_sources

    build = subprocess.run(
        [sys.executable, "-c", "import sys; from setuptools import build_meta as backend; out = sys.argv[1]; "
         "backend.build_sdist(out); backend.build_wheel(out)", str(out)],
        cwd=tree, env={**os.environ, "PYTHONPATH": str(build_backend)},
        capture_output=True, text=True, timeout=300, check=False)
    assert build.returncode == 0, f"the build failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    [wheel_path], [sdist_path] = out.glob("*.whl"), out.glob("*.tar.gz")

    with zipfile.ZipFile(wheel_path) as wheel:
        in_wheel = {name for name in wheel.namelist() if name.startswith(PDK)}
        assert "wasm_abi/ABI.md" in wheel.namelist()
    assert in_wheel == kit_sources, (sorted(in_wheel - kit_sources), sorted(kit_sources - in_wheel))

    with tarfile.open(sdist_path) as sdist:
        prefix = sdist_path.name.removesuffix(".tar.gz") + "/"
        in_sdist = {m.name.removeprefix(prefix) for m in sdist.getmembers() if m.isfile()}
    in_sdist_kits = {name for name in in_sdist if name.startswith(PDK)}
    assert in_sdist_kits == kit_sources, (sorted(in_sdist_kits - kit_sources), sorted(kit_sources - in_sdist_kits))
    assert not any("node_modules" in name for name in in_sdist)
