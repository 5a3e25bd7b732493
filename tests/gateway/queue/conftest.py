"""Fixtures of the delivery queue conformance suite: ``backend`` (parametrized over `backends.BACKENDS`,
filtered by the test's ``queue_needs`` marker) and ``queue_factory`` (opens started queues on one fresh
storage per test, closes them after)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.queue.base import DeliveryQueue
from tests.gateway.queue.backends import BACKENDS, CAPABILITIES, TEST_OPTIONS, Backend


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "queue_needs(*capabilities): run a queue conformance test only on the backends that have "
                   f"these ({', '.join(CAPABILITIES)}; tests/gateway/queue/backends.py)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    needs: set[str] = set()
    for marker in metafunc.definition.iter_markers("queue_needs"):
        unknown = set(marker.args) - set(CAPABILITIES)
        if unknown:
            raise pytest.UsageError(f"queue_needs: unknown capabilities {sorted(unknown)}; known: {CAPABILITIES}")
        needs.update(marker.args)
    params = [pytest.param(name, marks=backend.marks, id=name) for name, backend in BACKENDS.items()
              if all(getattr(backend, need) for need in needs)]
    if not params:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: no queue backend has {sorted(needs)}")
    metafunc.parametrize("backend", params, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[request.param]


class QueueFactory:
    """``await queue_factory(**options)``: a started queue on this test's storage (each call: another
    queue object on the *same* storage -- another process's view for shared backends)."""

    def __init__(self, backend: Backend, location: dict[str, Any]) -> None:
        self.backend = backend
        self.location = location
        self.opened: list[DeliveryQueue] = []

    async def __call__(self, **options: Any) -> DeliveryQueue:
        queue = self.backend.open(self.location, **{**TEST_OPTIONS, **options})
        self.opened.append(queue)
        await queue.start()
        return queue

    async def close_all(self) -> None:
        for queue in self.opened:
            with contextlib.suppress(Exception):
                await queue.close()


@pytest.fixture
async def queue_factory(backend: Backend, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[QueueFactory]:
    factory = QueueFactory(backend, backend.location(request, tmp_path))
    yield factory
    await factory.close_all()
