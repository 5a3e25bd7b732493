"""Fixtures of the cluster tests: real etcd servers on free loopback ports.

A missing ``etcd`` binary fails every test that needs it, loudly, with the command that installs it; it never
skips.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from gateway.store.etcd import EtcdStore, parse_etcd_url

from .etcd_server import ETCD_MISSING, EtcdServer, etcd_binary, new_etcd_server, remove_etcd_server

_prefixes = itertools.count()


def _require_etcd() -> None:
    try:
        etcd_binary()
    except RuntimeError:
        pytest.fail(ETCD_MISSING, pytrace=False)


@pytest.fixture(scope="session")
def shared_etcd() -> Iterator[EtcdServer]:
    """One etcd for the tests that neither stop nor compact it; each test writes under its own prefix."""
    _require_etcd()
    server = new_etcd_server()
    yield server
    remove_etcd_server(server)


@pytest.fixture
def etcd_factory() -> Iterator[Callable[..., EtcdServer]]:
    """Private etcd servers for tests that stop, restart or compact them; all removed at the end."""
    _require_etcd()
    servers: list[EtcdServer] = []

    def make(tls: bool = False) -> EtcdServer:
        server = new_etcd_server(tls=tls)
        servers.append(server)
        return server

    yield make
    for server in servers:
        remove_etcd_server(server)


@pytest.fixture
def unique_prefix() -> str:
    return f"/eg-test-{next(_prefixes)}/"


@pytest.fixture
async def store_factory() -> AsyncIterator[Callable[..., EtcdStore]]:
    """Open EtcdStores (each with its own gRPC connection, like separate gateways); closed at the end."""
    stores: list[EtcdStore] = []

    async def make(endpoints: str, prefix: str = "/eventgateway/v1/", **options: object) -> EtcdStore:
        store = EtcdStore(parse_etcd_url(f"etcd://{endpoints}{prefix}", **options))
        await store.open()
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
async def cluster(tmp_path):
    """Start gateway processes on one etcd URL: ``await cluster(db, count)``; all stopped at the end."""
    from .gateways import start_cluster

    started = []

    async def start(db: str, count: int, extra_args: list[str] | None = None):
        nodes = await start_cluster(db, count, tmp_path, extra_args)
        started.extend(nodes)
        return nodes

    yield start
    for node in started:
        node.stop()
