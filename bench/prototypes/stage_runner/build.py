"""Builds the prototype's two native libraries with the system C compiler into a cache directory (never into
the source tree): `libstage_runner.so` (called through ctypes) and the `stage_ext` CPython extension."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
SOURCES = (HERE / "stage_runner.c", HERE / "stage_ext.c")


def build() -> Path:
    """The directory holding both built libraries (rebuilt when a source changes)."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise SystemExit("the stage runner prototype needs a C compiler (gcc or cc) on PATH")
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in SOURCES)).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"eventgateway-stage-runner-{digest}"
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    runner, ext = out / "libstage_runner.so", out / f"stage_ext{suffix}"
    if not (runner.exists() and ext.exists()):
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(runner), str(SOURCES[0])], check=True)
        subprocess.run([compiler, "-O2", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}", "-o",
                        str(ext), str(SOURCES[1])], check=True)
    return out


def load_extension(directory: Path) -> ModuleType:
    """The built `stage_ext` extension module."""
    path = directory / f"stage_ext{sysconfig.get_config_var('EXT_SUFFIX')}"
    spec = importlib.util.spec_from_file_location("stage_ext", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
