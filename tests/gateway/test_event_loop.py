"""``--loop`` (issue 16): uvloop under Hypercorn by default where it imports, asyncio's own loop on request;
proved on real ``gateway serve`` processes by the loop class each process logs at start-up (the running
loop's type, not the flag echoed back)."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from gateway.settings import SettingsError, parse_serve_args
from tests.gateway_fixtures import REPO_ROOT

UVLOOP = "uvloop.Loop"
ASYNCIO = "asyncio.unix_events._UnixSelectorEventLoop"
EVENT = {"specversion": "1.0", "type": "loop.test", "source": "/t", "id": "1", "data": {}}


def loops_logged(log: str) -> list[str]:
    """The loop class every process named in its ``event loop:`` line."""
    return re.findall(r"event loop: [^,]+, (\S+) \(--loop", log)


def test_loop_setting_defaults_to_auto_and_takes_flag_and_environment() -> None:
    assert parse_serve_args([], environ={}).loop == "auto"
    assert parse_serve_args(["--loop", "asyncio"], environ={}).loop == "asyncio"
    assert parse_serve_args([], environ={"EVENT_GATEWAY_LOOP": "uvloop"}).loop == "uvloop"
    assert parse_serve_args(["--loop", "auto"], environ={"EVENT_GATEWAY_LOOP": "asyncio"}).loop == "auto"
    with pytest.raises(SettingsError, match=r"--loop 'trio': expected one of auto, uvloop, asyncio"):
        parse_serve_args([], environ={"EVENT_GATEWAY_LOOP": "trio"})


def accept_one(url: str) -> int:
    return httpx.post(f"{url}/x", json=EVENT, headers={"content-type": "application/cloudevents+json"}).status_code


@pytest.mark.parametrize(("args", "env", "expected"), [
    ((), {}, UVLOOP),
    (("--loop", "uvloop"), {}, UVLOOP),
    (("--loop", "asyncio"), {}, ASYNCIO),
    ((), {"EVENT_GATEWAY_LOOP": "asyncio"}, ASYNCIO),
])
def test_a_served_gateway_runs_on_the_chosen_loop_and_drains_on_sigterm(
        gateway_process, args: tuple[str, ...], env: dict[str, str], expected: str) -> None:
    gw = gateway_process("--db", "memory", *args, env=env)
    assert loops_logged(gw.log()) == [expected]
    assert accept_one(gw.events_url) == 202
    gw.signal(signal.SIGTERM)
    assert gw.wait() == 0
    assert "stopped" in gw.log()


@pytest.mark.parametrize(("loop", "expected"), [("auto", UVLOOP), ("asyncio", ASYNCIO)])
def test_every_worker_process_runs_on_the_chosen_loop(gateway_process, tmp_path: Path, loop: str,
                                                      expected: str) -> None:
    gw = gateway_process("--db", f"sqlite:{tmp_path / 'config.db'}", "--queue", "memory", "--processes", "2",
                         "--loop", loop)
    # Each worker logs its line at start-up; the ready check may have reached only one of them.
    deadline = time.monotonic() + 30
    while len(loops_logged(gw.log())) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert loops_logged(gw.log()) == [expected, expected]
    assert accept_one(gw.events_url) == 202
    gw.signal(signal.SIGTERM)
    assert gw.wait() == 0


@pytest.fixture
def without_uvloop(tmp_path: Path) -> dict[str, str]:
    """An environment where ``import uvloop`` fails, as on a platform it does not install on."""
    shadow = tmp_path / "no-uvloop" / "uvloop"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('uvloop is not available here')\n")
    return {"PYTHONPATH": f"{shadow.parent}:{REPO_ROOT}"}


def test_auto_falls_back_to_asyncio_where_uvloop_does_not_import(gateway_process, without_uvloop) -> None:
    gw = gateway_process("--db", "memory", env=without_uvloop)
    assert loops_logged(gw.log()) == [ASYNCIO]
    assert accept_one(gw.events_url) == 202


def test_loop_uvloop_where_it_does_not_import_refuses_to_start(gateway_process, without_uvloop) -> None:
    gw = gateway_process("--db", "memory", "--loop", "uvloop", env=without_uvloop, wait=False)
    assert gw.wait() == 2
    assert "--loop uvloop: uvloop is not installed" in gw.log()
