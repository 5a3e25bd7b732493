#!/usr/bin/env bash
# Redis for the plugins' shared kv (--plugin-kv redis://...) and its tests: Debian's redis-server (the
# `redis-server` binary). Idempotent: when redis-server is on PATH this returns at once. The package's own
# service is not used: it is stopped if the package started it (see scripts/lib/apt.sh).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
source "$(dirname "$0")/../lib/apt.sh"
apt_install_server "Redis 6.2+ (redis-server)" redis-server redis-server
redis-server --version >&2
