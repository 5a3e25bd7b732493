#!/usr/bin/env bash
# Zig toolchain for the C and Zig guest kits: PyPI's `ziglang` wheel bundles the Zig compiler,
# which also serves as a C compiler (`python -m ziglang cc`). The Zig kit is written for Zig 0.17
# (the language still changes between minor versions), so that series is pinned. Idempotent: a
# present install is detected in about a second. pip keeps its download cache in ~/.cache/pip.
set -euo pipefail
python="${PYTHON:-python3}"
if version="$("$python" -m ziglang version 2>/dev/null)" && [[ "$version" == 0.17.* ]]; then
    exit 0
fi
echo "installing Zig 0.17 (pip ziglang, ~410 MB unpacked)..." >&2
"$python" -m pip install --quiet "ziglang>=0.17,<0.18"
"$python" -m ziglang version >&2
