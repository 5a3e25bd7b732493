#!/usr/bin/env bash
# The msgpack reference test vectors (npm package msgpack-test-suite) that every guest kit's
# reader/writer is tested against (tests/pdk/). Installed under ~/.cache so a second run is instant.
set -euo pipefail
dest="${MSGPACK_TEST_SUITE_DIR:-$HOME/.cache/msgpack-test-suite}"
if [ -f "$dest/node_modules/msgpack-test-suite/src/10.nil.yaml" ]; then
    exit 0
fi
command -v npm >/dev/null || { echo "npm is required for the msgpack test vectors: apt-get install npm" >&2; exit 1; }
mkdir -p "$dest"
npm install --prefix "$dest" --no-audit --no-fund --silent msgpack-test-suite@1 >&2
