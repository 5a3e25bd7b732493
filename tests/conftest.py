"""Suite-wide pytest configuration, and the markers a whole directory, fixture or test implies.

Markers (registered in pyproject.toml): ``slow`` (over ~2 s, or starts gateway processes or toolchain
builds), ``toolchains`` (builds plugins with zig/rust/go/asc/clang: the kits and example plugins), ``etcd``,
``redis``, ``nats``, ``browser`` (what they need), ``serial`` (must not share the CPUs with other tests: see
`SERIAL`). ``just test-fast`` deselects the slow and server ones; ``just test`` (CI) runs everything, in
two phases: ``--serial-tests=exclude`` on two xdist workers, then ``--serial-tests=only`` alone.
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


#: Tests marked ``serial``: their outcome depends on having the machine's CPUs to themselves (a drain or
#: a SIGTERM within its timeout, a crash at a given moment, a lease that must not expire under load, a
#: wall-clock deadline raced against fuel, a latency bound), so `just test` runs them after the parallel
#: phase, one at a time. Node id prefixes relative to tests/ (a file, or a test with all its parameters).
SERIAL: tuple[str, ...] = (
    "gateway/test_shutdown.py",
    "gateway/queue/test_crash.py",
    "gateway/queue/test_nats_gateway.py",
    "gateway/http/config_api/test_lifecycle.py",
    "gateway/observe/test_tracing.py",
    "cluster/test_cluster_gateways.py::test_etcd_outage_while_events_flow",
    "gateway/plugins/test_kv_backends.py::test_the_bytes_of_many_expired_keys_come_back_in_bounded_batches",
    "gateway/plugins/test_capabilities_http_gateway.py::test_http_grant_moves_sync_reactions_off_the_loop",
    "wasm_abi/test_wall_time.py",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--serial-tests", choices=("include", "exclude", "only"), default="include",
        help="the tests marked serial (tests/conftest.py SERIAL): run with the others (include, the "
             "default), leave them out (exclude: the parallel phase of `just test`), or run only them")


def _is_serial(nodeid: str) -> bool:
    relative = nodeid.removeprefix("tests/")
    return any(relative == prefix or relative.startswith((prefix + "::", prefix + "["))
               for prefix in SERIAL)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path)).resolve()
        names: set[str] = set()
        if path.is_relative_to(TESTS):
            top = path.relative_to(TESTS).parts[0]
            names.update(DIRECTORY_MARKERS.get(top, ()))
        for fixture in getattr(item, "fixturenames", ()):
            names.update(FIXTURE_MARKERS.get(fixture, ()))
        if _is_serial(item.nodeid):
            names.add("serial")
        for name in sorted(names):
            if item.get_closest_marker(name) is None:
                item.add_marker(name)
    which = config.getoption("--serial-tests")
    if which != "include":
        keep, dropped = [], []
        for item in items:
            serial = item.get_closest_marker("serial") is not None
            (keep if serial == (which == "only") else dropped).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep
