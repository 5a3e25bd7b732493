#!/usr/bin/env bash
# etcd for cluster mode and its tests: Debian's etcd-server (the `etcd` binary) and etcd-client (`etcdctl`).
# Idempotent: when both binaries are on PATH this returns at once. The package's own service is not used:
# it is stopped if the package started it (see scripts/lib/apt.sh).
set -euo pipefail
if command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1; then
    exit 0
fi
source "$(dirname "$0")/../lib/apt.sh"
apt_install_server "etcd 3.4+ (etcd and etcdctl)" etcd etcd-server etcd-client openssl
etcd --version | head -1 >&2
