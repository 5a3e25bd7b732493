#!/usr/bin/env bash
# Zig toolchain for the C and Zig guest kits: PyPI's `ziglang` wheel bundles the Zig compiler,
# which also serves as a C compiler (`python -m ziglang cc`). Idempotent: a present install is
# detected in well under a second. pip keeps its download cache in ~/.cache/pip.
set -euo pipefail
python="${PYTHON:-python3}"
if "$python" -c "import ziglang" 2>/dev/null && "$python" -m ziglang version >/dev/null 2>&1; then
    exit 0
fi
echo "installing Zig (pip ziglang, ~410 MB unpacked)..." >&2
"$python" -m pip install --quiet "ziglang>=0.15"
"$python" -m ziglang version >&2
