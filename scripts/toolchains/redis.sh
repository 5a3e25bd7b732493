#!/usr/bin/env bash
# Redis for the plugins' shared kv (--plugin-kv redis://...) and its tests: Debian's redis-server (the
# `redis-server` binary; redis-tools brings `redis-cli`). Idempotent: when redis-server is on PATH this
# returns at once. The package's own service is not used (the tests and `just redis` start their own
# servers on their own ports and directories): it is stopped if the package started it.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "redis-server is missing and apt-get is not available: install Redis 6.2+ (redis-server) by hand" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing redis-server (apt redis-server)..." >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server >/dev/null
# The package may start a system Redis on 6379 (where systemd runs): stop it so it never answers for ours.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
    $sudo systemctl stop redis-server || true
fi
redis-server --version >&2
