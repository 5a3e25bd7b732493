#!/usr/bin/env bash
# Rust toolchain for the Rust guest kit: Debian's rustc 1.63 with the wasm32 standard library and
# lld-14, which Debian's rustc links wasm32 modules with (/usr/bin/rust-lld is a link to lld-14, but
# the lld-14 package is only "Suggested", so a machine may have rustc without it).
# (A rustup toolchain may be on PATH too, but it has no wasm32 std and cannot fetch one here, so the
# builder calls /usr/bin/rustc.) Idempotent: an installed toolchain is detected in well under a second.
set -euo pipefail
if [ -x /usr/bin/rustc ] && [ -d "$(/usr/bin/rustc --print sysroot)/lib/rustlib/wasm32-unknown-unknown" ] \
    && [ -x "$(readlink -f /usr/bin/rust-lld)" ]; then
    exit 0
fi
echo "installing rustc + libstd-rust-dev-wasm32 + lld-14 (apt, ~800 MB)..." >&2
sudo_cmd=""
if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
$sudo_cmd apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends rustc libstd-rust-dev-wasm32 lld-14 >&2
/usr/bin/rustc --version >&2
