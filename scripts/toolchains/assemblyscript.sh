#!/usr/bin/env bash
# AssemblyScript toolchain for the AssemblyScript guest kit: the `assemblyscript` compiler, pinned by
# the lock file in wasm_abi/pdk/assemblyscript and installed there with `npm ci`. npm's download
# cache lives in ~/.cache/npm. Idempotent: an install matching the lock file is detected in well under a second.
set -euo pipefail
kit="$(cd "$(dirname "$0")/../.." && pwd)/wasm_abi/pdk/assemblyscript"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "installing node + npm (apt)..." >&2
    sudo_cmd=""
    if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q nodejs npm >&2
fi
# npm writes node_modules/.package-lock.json at the end of an install: newer than the lock file means
# the install matches the lock file as committed, which is the cheap "already installed" check.
if [ -f "$kit/node_modules/assemblyscript/bin/asc.js" ] \
    && [ "$kit/node_modules/.package-lock.json" -nt "$kit/package-lock.json" ]; then
    exit 0
fi
echo "installing AssemblyScript (npm ci in $kit)..." >&2
(cd "$kit" && npm ci --no-audit --no-fund --cache "$HOME/.cache/npm" >&2)
