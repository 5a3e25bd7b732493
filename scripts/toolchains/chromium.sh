#!/usr/bin/env bash
# Chromium for the web console's browser tests (tests/gateway/http/console, marker `browser`): Debian's
# `chromium` package, driven by Playwright for Python pointed at /usr/bin/chromium (Playwright's own browser
# download is never used). Idempotent: when the binary is on PATH this returns at once.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
source "$(dirname "$0")/../lib/apt.sh"
# No service: "chromium" names none, so nothing is stopped.
apt_install_server "Chromium (Debian's chromium package)" chromium chromium fonts-liberation
chromium --version >&2
