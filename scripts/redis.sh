#!/usr/bin/env bash
# `just redis`: a local Redis for the plugins' shared kv, data kept in .redis/ at the repository root.
# Listens on 127.0.0.1:6379 (override with EG_REDIS_PORT); gateways use --plugin-kv redis://127.0.0.1:6379/0.
# Runs in the foreground; Ctrl-C stops it. The data survives restarts (an append-only file in .redis/);
# delete .redis/ to start empty. maxmemory-policy noeviction: a full Redis refuses writes (plugins get
# EG_UNAVAILABLE) instead of evicting keys, which would silently reset counters.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/toolchains/redis.sh
port="${EG_REDIS_PORT:-6379}"
mkdir -p .redis
echo "redis on 127.0.0.1:${port} (data in .redis/); start gateways with --plugin-kv redis://127.0.0.1:${port}/0" >&2
exec redis-server --bind 127.0.0.1 --port "${port}" --dir .redis --appendonly yes --save "" \
    --maxmemory-policy noeviction --loglevel warning
