# Task runner for the event gateway. `just --list` shows every recipe.

set shell := ["bash", "-euo", "pipefail", "-c"]

python := env_var_or_default("PYTHON", "python3")

# Install the project with its development extras (editable).
install:
    {{python}} -m pip install -e '.[dev]'

# Start the gateway on the embedded store with the example logger plugin loaded.
run *ARGS:
    {{python}} -m gateway serve --dev --plugin plugin_examples/wat/logger.wat {{ARGS}}

# Run the whole test suite (installs missing toolchains, etcd, redis-server and nats-server first; builds plugins as needed). CI runs this.
test *ARGS: toolchains
    {{python}} -m pytest {{ARGS}}

# Two phases: every test but the `serial` ones on two pytest-xdist workers, then the serial ones (drains,
# SIGTERM, crashes, wall-clock bounds: tests/conftest.py SERIAL) alone. ARGS go to both; a phase that
# selects nothing (exit 5) is not a failure unless both do. Meant to become `test` once a full run passes.
# The whole suite as `test` runs it, in parallel: ~9.5 min instead of ~11 on 2 shared cores.
[positional-arguments]
test-parallel *ARGS: toolchains
    #!/usr/bin/env bash
    set -u
    {{python}} -m pytest -n 2 --dist loadgroup --serial-tests=exclude "$@"; parallel=$?
    {{python}} -m pytest --serial-tests=only "$@"; serial=$?
    for status in "$parallel" "$serial"; do
        if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then exit "$status"; fi
    done
    if [ "$parallel" -eq 5 ] && [ "$serial" -eq 5 ]; then exit 5; fi
    exit 0

# The core for daily work: every test but the slow, toolchain-building, etcd, Redis, NATS and browser ones (markers
# in pyproject.toml); needs no toolchain, stops at the first failure.
test-fast *ARGS:
    {{python}} -m pytest -x -m "not slow and not toolchains and not etcd and not redis and not nats and not browser" {{ARGS}}

# Install the Wasm toolchains used by the guest kits (idempotent).
toolchains:
    bash scripts/toolchains.sh

# Build every example plugin, in every language, into build/plugins/<lang>/<example>.wasm.
plugins:
    {{python}} -m plugin_examples.build

# Run the benchmarks and print their tables.
bench:
    {{python}} -m bench

# Lint the Python sources: ruff, the import layers of gateway/ (import-linter contracts in
# pyproject.toml) and the types of both packages in one mypy run (strict on wasm_abi, the event
# pipeline and gateway.common: the per-module overrides in pyproject.toml).
lint:
    {{python}} -m ruff check gateway wasm_abi tests bench plugin_examples
    lint-imports
    {{python}} -m mypy -p gateway -p wasm_abi

# Start a local etcd server for cluster mode (data in .etcd/).
etcd:
    bash scripts/etcd.sh

# Start a local Redis for the plugins' shared kv (data in .redis/): gateways use --plugin-kv redis://127.0.0.1:6379/0.
redis:
    bash scripts/redis.sh

# Start a local NATS server with JetStream for the delivery queue (store in .nats/): gateways use --queue nats://127.0.0.1:4222.
nats:
    bash scripts/nats.sh
