#!/usr/bin/env bash
# etcd for cluster mode and its tests: Debian's etcd-server (the `etcd` binary) and etcd-client (`etcdctl`).
# Idempotent: when both binaries are on PATH this returns at once. The package's systemd unit is not
# used (the tests and `just etcd` start their own servers on their own ports and data directories).
set -euo pipefail
if command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "etcd is missing and apt-get is not available: install etcd 3.4+ (etcd and etcdctl) by hand" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing etcd (apt etcd-server etcd-client)..." >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends etcd-server etcd-client openssl >/dev/null
# The package may start a system etcd on 2379 (where systemd runs): stop it so it never answers for ours.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
    $sudo systemctl stop etcd || true
fi
etcd --version | head -1 >&2
