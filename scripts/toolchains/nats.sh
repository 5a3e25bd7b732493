#!/usr/bin/env bash
# NATS with JetStream for the NATS delivery queue (--queue nats://...) and its tests: Debian's nats-server
# (the `nats-server` binary, in /usr/sbin). Idempotent: when nats-server is found this returns at once. The
# package's own service is not used: it is stopped if the package started it (see scripts/lib/apt.sh).
set -euo pipefail
if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; then
    exit 0
fi
source "$(dirname "$0")/../lib/apt.sh"
apt_install_server "nats-server 2.9+" nats-server nats-server
PATH="$PATH:/usr/sbin" nats-server --version >&2
