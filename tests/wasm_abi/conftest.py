"""Fixtures for the plugin host tests: an isolated module cache and WAT plugin builders."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from wasm_abi import Limits, Plugin
from wasm_abi.health import SYSTEM_CLOCK

from tests.wat import plugin_wat

WAT_DIR = Path(__file__).parent / "wat"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("module-cache")


@pytest.fixture(autouse=True)
def _isolated_cache(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the developer's ~/.cache from tests."""
    monkeypatch.setenv("EVENT_GATEWAY_CACHE_DIR", str(cache_dir))


@pytest.fixture
def make_plugin() -> Callable[..., Plugin]:
    """Build a plugin from WAT written by the test (see tests/wat.py: plugin_wat for the options)."""

    def make(*, name: str = "test", limits: Limits | None = None, config: dict[str, Any] | None = None,
             log_handler: Any = None, clock: Any = SYSTEM_CLOCK, **wat: Any) -> Plugin:
        wasm = wasmtime.wat2wasm(plugin_wat(**wat))
        return Plugin.from_bytes(bytes(wasm), name=name, limits=limits, config=config, log_handler=log_handler,
                                 clock=clock)

    return make


class FakeClock:
    """A `wasm_abi.health.Clock` that moves only when the test says: `advance(seconds)`."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = 1_700_000_000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def wat_file() -> Callable[[str], Path]:
    def path(name: str) -> Path:
        p = WAT_DIR / name
        assert p.exists(), f"missing WAT fixture {p}"
        return p

    return path


@pytest.fixture
def plugin_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="wasm_abi.plugin")
    yield caplog
