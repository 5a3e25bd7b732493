#!/usr/bin/env bash
# NATS with JetStream for the NATS delivery queue (--queue nats://...) and its tests: Debian's nats-server
# (the `nats-server` binary, in /usr/sbin). Idempotent: when nats-server is found this returns at once. The
# package's own service is not used (the tests and `just nats` start their own servers on their own ports and
# store directories): it is stopped if the package started it.
set -euo pipefail
if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "nats-server is missing and apt-get is not available: install nats-server 2.9+ by hand" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing nats-server (apt nats-server)..." >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nats-server >/dev/null
# The package may start a system NATS on 4222 (where systemd runs): stop it so it never answers for ours.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nats-server 2>/dev/null; then
    $sudo systemctl stop nats-server || true
fi
PATH="$PATH:/usr/sbin" nats-server --version >&2
