#!/usr/bin/env bash
# `just etcd`: a single-member etcd for local cluster mode, data kept in .etcd/ at the repository root.
# Clients: http://127.0.0.1:2379 (override with EG_ETCD_PORT); gateways use --db etcd://127.0.0.1:2379.
# Runs in the foreground; Ctrl-C stops it. The data survives restarts; delete .etcd/ to start empty.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/toolchains/etcd.sh
port="${EG_ETCD_PORT:-2379}"
peer_port="${EG_ETCD_PEER_PORT:-2380}"
mkdir -p .etcd
echo "etcd on http://127.0.0.1:${port} (data in .etcd/); start gateways with --db etcd://127.0.0.1:${port}" >&2
exec etcd --name local --data-dir .etcd/data \
    --listen-client-urls "http://127.0.0.1:${port}" --advertise-client-urls "http://127.0.0.1:${port}" \
    --listen-peer-urls "http://127.0.0.1:${peer_port}" --initial-advertise-peer-urls "http://127.0.0.1:${peer_port}" \
    --initial-cluster "local=http://127.0.0.1:${peer_port}" \
    --auto-compaction-mode periodic --auto-compaction-retention 1h \
    --logger zap --log-level warn
