"""docs/writing-plugins.md, followed literally: every language's tutorial from an empty folder to its
plugin loaded in a running gateway, answering real events.

The tutorial's shell blocks and its plugin source are run as written, in one bash script per language
in an empty folder (the compilers, `python` and `event-gateway` found on PATH as a reader's shell would).
Only the `event-gateway serve` and `curl` lines are left to the test, which starts the same command on
free ports and sends the events the tutorial talks about. A missing toolchain fails, as elsewhere in
this suite.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from plugin_examples.build import REPO_ROOT
from tests.gateway_fixtures import GatewayProcess, launch_gateway

DOC = REPO_ROOT / "docs" / "writing-plugins.md"
SECTIONS = {"wat": "WAT", "c": "C", "zig": "Zig", "rust": "Rust", "assemblyscript": "AssemblyScript", "go": "Go"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
SOURCE_FILE = re.compile(r"\*\*3\. The plugin, `([^`]+)`")
LEFT_TO_THE_TEST = ("event-gateway serve", "curl ", "# HTTP/")


@dataclass(frozen=True)
class Expectation:
    """What the tutorial says its plugin does: a refused event and a log line for an accepted one."""

    refused: dict[str, object]
    status: int
    message: str
    accepted: dict[str, object]
    log_line: str


def _event(event_type: str, data: dict[str, object]) -> dict[str, object]:
    return {"specversion": "1.0", "type": event_type, "id": "1", "source": "/me", "data": data}


_MALLORY = Expectation(_event("user.created", {"name": "mallory"}), 403, "hello: no mallory here",
                       _event("user.created", {"name": "ada"}), "[plugin hello] hello from /me")
EXPECTED = {
    "wat": Expectation({}, 0, "", _event("user.created", {}), "[plugin hello] hello from WAT: user.created"),
    "c": Expectation(_event("debug.ping", {}), 422, "no pings here", _event("user.created", {}),
                     "[plugin hello] hello from C: user.created"),
    "zig": Expectation(_event("debug.ping", {}), 422, "no pings here", _event("user.created", {}),
                       "[plugin hello] hello from Zig: user.created"),
    "rust": _MALLORY,
    "assemblyscript": _MALLORY,
    "go": _MALLORY,
}


def tutorial_script(lang: str) -> str:
    """The section's shell blocks in order, its plugin source written where the tutorial shows it."""
    text = DOC.read_text()
    start = text.index(f"\n## {SECTIONS[lang]}\n")
    end = text.find("\n## ", start + 1)
    section = text[start:end]
    source = SOURCE_FILE.search(section)
    lines: list[str] = []
    for tag, body in FENCE.findall(section):
        if tag == "sh":
            continued = False  # a dropped command's continuation lines go with it
            for line in body.splitlines():
                drop = continued or line.startswith(LEFT_TO_THE_TEST)
                continued = drop and line.rstrip().endswith("\\")
                if not drop:
                    lines.append(line)
        elif tag in ("rust", "ts", "go") and source is not None:
            lines += [f"cat > {source.group(1)} <<'TUTORIAL_SOURCE'", body.rstrip("\n"), "TUTORIAL_SOURCE"]
    return "\n".join(lines) + "\n"


def _serve(module: Path, workdir: Path) -> GatewayProcess:
    return launch_gateway("--db", "memory", "--plugin", str(module), log_path=workdir / "gateway.log",
                          cwd=workdir, ready_timeout=120)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("lang", list(SECTIONS))
def test_tutorial_as_written(lang: str, tmp_path: Path) -> None:
    script = tutorial_script(lang)
    assert "event-gateway plugin check" in script, script
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"the {lang} tutorial failed:\n{script}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
    modules = sorted(tmp_path.glob("*/hello.wasm")) + sorted(tmp_path.glob("*/hello.wat"))
    assert len(modules) == 1, modules
    expected = EXPECTED[lang]
    gateway = _serve(modules[0], tmp_path)
    try:
        with httpx.Client(base_url=gateway.events_url, headers={"content-type": "application/cloudevents+json"}) as client:
            if expected.status:
                refused = client.post("/", json=expected.refused)
                assert refused.status_code == expected.status, refused.text
                assert refused.json() == {"errors": [{"message": expected.message}]}
            accepted = client.post("/", json=expected.accepted)
            assert accepted.status_code == 202, accepted.text
        _wait_for(lambda: expected.log_line in gateway.log(), f"{expected.log_line!r} in the gateway's log")
    finally:
        gateway.stop()
