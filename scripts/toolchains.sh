#!/usr/bin/env bash
# Install every toolchain the test suite needs. Idempotent: each step checks first, so a
# second run takes a second or two. Each language has its own script in scripts/toolchains/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for script in "$here"/toolchains/*.sh; do
    [ -e "$script" ] || continue
    bash "$script"
done
