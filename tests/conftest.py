"""Suite-wide pytest configuration, and the markers a whole directory or fixture implies.

Markers (registered in pyproject.toml): ``slow`` (over ~2 s, or starts gateway processes or toolchain
builds), ``toolchains`` (builds plugins with zig/rust/go/asc/clang: the kits and example plugins), ``etcd``
(needs an etcd binary). ``just test-fast`` deselects all three; ``just test`` (CI) runs everything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.gateway_fixtures", "tests.redis_server", "tests.nats_server"]

TESTS = Path(__file__).resolve().parent

#: Directories whose every test carries these markers.
DIRECTORY_MARKERS: dict[str, tuple[str, ...]] = {
    "cluster": ("etcd", "slow"),  # real etcd servers and gateway processes
    "conformance": ("toolchains", "slow"),  # every language's build of every example
    "pdk": ("toolchains", "slow"),  # the guest kits, built per language
}

#: Fixtures that imply markers wherever they are used.
FIXTURE_MARKERS: dict[str, tuple[str, ...]] = {
    "gateway_process": ("slow",),  # `python -m gateway serve` subprocesses
    "gateways": ("slow",),  # the plugin tests' gateway subprocesses
    "cluster": ("etcd", "slow"),
    "redis_server": ("redis",),  # a real redis-server (tests/redis_server.py)
    "redis_factory": ("redis",),
    "nats_server": ("nats",),  # a real nats-server -js (tests/nats_server.py)
    "nats_factory": ("nats",),
    "wasi_modules": ("toolchains", "slow"),  # Go-built WASI example plugins
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path)).resolve()
        names: set[str] = set()
        if path.is_relative_to(TESTS):
            top = path.relative_to(TESTS).parts[0]
            names.update(DIRECTORY_MARKERS.get(top, ()))
        for fixture in getattr(item, "fixturenames", ()):
            names.update(FIXTURE_MARKERS.get(fixture, ()))
        for name in sorted(names):
            if item.get_closest_marker(name) is None:
                item.add_marker(name)
