#!/usr/bin/env bash
# `just nats`: a local NATS server with JetStream for the delivery queue, its file store in .nats/ at the
# repository root. Listens on 127.0.0.1:4222 (override with EG_NATS_PORT); gateways use
# --queue nats://127.0.0.1:4222. Runs in the foreground; Ctrl-C stops it. What JetStream stored (the
# deliveries stream, the workers' consumer, the dead-letter bucket) survives restarts; delete .nats/ to start
# empty. max_payload is 8MB: the gateway accepts events up to 6 MiB (NATS' default is 1MB).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/toolchains/nats.sh
PATH="$PATH:/usr/sbin"
port="${EG_NATS_PORT:-4222}"
mkdir -p .nats
printf 'max_payload: 8MB\n' > .nats/nats.conf
echo "nats-server -js on 127.0.0.1:${port} (store in .nats/); start gateways with --queue nats://127.0.0.1:${port}" >&2
exec nats-server -js -sd .nats -a 127.0.0.1 -p "${port}" -c .nats/nats.conf
