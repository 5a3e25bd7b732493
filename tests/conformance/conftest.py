"""Every language's build of each example plugin, compiled from source on first use.

A language whose toolchain or kit is missing FAILS its tests with the install hint: the point of the
suite is that every language works, so a skip would hide exactly what it exists to catch.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from plugin_examples.build import BuildError, ToolchainMissing, build
from wasm_abi import Limits, Plugin

LogLine = tuple[str, str]


def built_example(lang: str, example: str) -> Path:
    """The example's module, built (or found up to date) now; a missing toolchain fails the test."""
    try:
        return build(lang, example)
    except ToolchainMissing as exc:
        pytest.fail(f"{lang}/{example}: {exc}", pytrace=False)
    except BuildError as exc:
        pytest.fail(f"{lang}/{example} does not build: {exc}", pytrace=False)


class LoadedExample:
    """A plugin loaded through the real host, with the log lines it wrote."""

    def __init__(self, lang: str, example: str, config: dict[str, Any] | None) -> None:
        self.logs: list[LogLine] = []
        self.plugin = Plugin.from_file(
            built_example(lang, example),
            name=f"{lang}-{example}",
            config=config,
            # one instance, so the enricher's counters see every event in order; no log rate limit
            limits=Limits(pool_size=1, log_rate_per_second=1e6, log_burst=100_000),
            log_handler=lambda _plugin, level, text: self.logs.append((level, text)),
        )

    def take_logs(self) -> list[LogLine]:
        logs, self.logs = self.logs, []
        return logs


@pytest.fixture
def load_example() -> Callable[..., LoadedExample]:
    def load(lang: str, example: str, config: dict[str, Any] | None = None) -> LoadedExample:
        return LoadedExample(lang, example, config)

    return load


# -- the upstream Python SDK ----------------------------------------------------------------------


#: The upstream Python SDK the conformance tests drive (installed with pip --target, see below).
PYTHON_SDK = "event-gateway-sdk==1.2.0"


@pytest.fixture(scope="session")
def python_sdk_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The upstream Python SDK installed with ``pip install --target`` into a temporary folder, once per
    run, never into the project's environment (its wheel ships a stray top-level ``tests`` package). If
    pip cannot install it the tests using it fail (PyPI is part of their environment), never skip."""
    target = tmp_path_factory.mktemp("python-sdk")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet",
         "--target", str(target), PYTHON_SDK],
        capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0 or not (target / "eventgateway" / "__init__.py").exists():
        pytest.fail(f"pip install --target {target} {PYTHON_SDK} failed (exit {result.returncode}):\n"
                    f"{result.stdout}\n{result.stderr}", pytrace=False)
    return target


@pytest.fixture
def eventgateway(python_sdk_dir: Path) -> Iterator[ModuleType]:
    """The SDK's ``eventgateway`` module, importable only during the test. The folder goes at the end of
    ``sys.path``, so its stray ``tests`` package (and its copies of requests, urllib3, ...) never shadow
    what the project's environment already has."""
    entry = str(python_sdk_dir)
    sys.path.append(entry)
    try:
        module = importlib.import_module("eventgateway")
        assert Path(module.__file__ or "").is_relative_to(python_sdk_dir)
        yield module
    finally:
        sys.path.remove(entry)
        sys.modules.pop("eventgateway", None)
