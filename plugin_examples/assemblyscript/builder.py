"""Build an AssemblyScript example with `asc` from the kit's own npm install.

The compiler is the `assemblyscript` package pinned in `wasm_abi/pdk/assemblyscript/package.json`
(lock file committed; `just toolchains` runs `npm ci` there). The example's `index.ts` is copied next
to a copy of the kit named `pdk/`, which is how it imports it (`./pdk`, `./pdk/exports`). The
`env.abort` import AssemblyScript normally needs is replaced by the kit's `abortWithLog`, so the
module imports nothing but `eventgateway.log`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from plugin_examples.build import KITS_DIR, BuildError, ToolchainMissing

INSTALL_HINT = "run `just toolchains` (scripts/toolchains/assemblyscript.sh: npm ci in wasm_abi/pdk/assemblyscript)"
ASC_FLAGS = ("-O3", "--runtime", "minimal", "--use", "abort=pdk/log/abortWithLog")


def asc_path(kit_dir: Path = KITS_DIR / "assemblyscript") -> Path:
    return kit_dir / "node_modules" / "assemblyscript" / "bin" / "asc.js"


def check_toolchain() -> None:
    if shutil.which("node") is None:
        raise ToolchainMissing("assemblyscript", f"`node` is not on PATH (apt-get install nodejs npm); {INSTALL_HINT}")
    if not asc_path().is_file():
        raise ToolchainMissing("assemblyscript", f"{asc_path()} does not exist; {INSTALL_HINT}")


def build(example_dir: Path, kit_dir: Path, out: Path) -> None:
    entry = example_dir / "index.ts"
    if not entry.is_file():
        raise BuildError(f"{entry} does not exist (an AssemblyScript plugin is one index.ts importing ./pdk)")
    asc = asc_path(kit_dir)
    if not asc.is_file():
        raise ToolchainMissing("assemblyscript", f"{asc} does not exist; {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="eg-as-") as tmp:
        work = Path(tmp)
        for source in example_dir.glob("*.ts"):
            shutil.copyfile(source, work / source.name)
        shutil.copytree(
            kit_dir, work / "pdk", ignore=shutil.ignore_patterns("node_modules", "testing", "package*.json", "*.md")
        )
        command = ["node", str(asc), "index.ts", "--outFile", "plugin.wasm", *ASC_FLAGS]
        done = subprocess.run(command, cwd=work, check=False, capture_output=True, text=True)
        if done.returncode != 0 or not (work / "plugin.wasm").is_file():
            raise BuildError(f"`{' '.join(command)}` in {example_dir} failed ({done.returncode}):\n{done.stderr}{done.stdout}")
        shutil.copyfile(work / "plugin.wasm", out)
