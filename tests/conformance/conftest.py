"""Every language's build of each example plugin, compiled from source on first use.

A language whose toolchain or kit is missing FAILS its tests with the install hint: the point of the
suite is that every language works, so a skip would hide exactly what it exists to catch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
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
