"""Fixtures for the plugin host tests: an isolated module cache and WAT plugin builders."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from wasm_abi import Limits, Plugin

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
             log_handler: Any = None, **wat: Any) -> Plugin:
        wasm = wasmtime.wat2wasm(plugin_wat(**wat))
        return Plugin.from_bytes(bytes(wasm), name=name, limits=limits, config=config, log_handler=log_handler)

    return make


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
