"""``event-gateway tail`` (issue 15) as a real subprocess against a real gateway (in this test's loop, on
Hypercorn), records published through the gateway's hub until the pipeline publishes them itself."""

from __future__ import annotations

import asyncio
import os
import pty
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.http.config_api.tail import hub_of
from gateway.observe.record import CallRecord, EventRecord, PluginVerdict, StageRecord

REPO_ROOT = Path(__file__).resolve().parents[2]


def record(n: int, *, space: str = "default", type: str = "user.created", status: int = 202,
           verdict: str = "continue") -> EventRecord:
    return EventRecord(
        id=f"ev-{n}", type=type, space=space, source="/t", status=status, duration_ms=1.25,
        stages=[StageRecord("eventgateway.event.received", 0.1, [
            PluginVerdict("guard", "sync", verdict, 0.02, status=403 if verdict == "reject" else None)])],
        calls=[CallRecord("hello", "http", "sync", status < 400, 3.0, status=200 if status < 400 else 500)])


class Cli:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self, timeout: float = 5.0) -> str:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        assert raw, f"the CLI ended: {await self.stderr()}"
        return raw.decode().rstrip("\n")

    async def stderr(self) -> str:
        assert self.process.stderr is not None
        if self.process.returncode is None:
            return ""
        return (await self.process.stderr.read()).decode()

    async def stderr_line(self, timeout: float = 5.0) -> str:
        assert self.process.stderr is not None
        return (await asyncio.wait_for(self.process.stderr.readline(), timeout)).decode()


@pytest.fixture
async def cli() -> AsyncIterator[Callable[..., Any]]:
    started: list[asyncio.subprocess.Process] = []

    async def start(*args: str, env: dict[str, str] | None = None) -> Cli:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "tail", *args, cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})})
        started.append(process)
        return Cli(process)

    yield start
    for process in started:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_listening(gw: Any, count: int = 1, timeout: float = 10.0) -> None:
    hub = hub_of(gw.gateway.config_app)
    deadline = time.monotonic() + timeout
    while hub.clients < count:
        assert time.monotonic() < deadline, "the CLI did not connect"
        await asyncio.sleep(0.02)


async def test_one_line_per_event_with_verdicts_calls_and_filters(gateway_server: Any, cli: Any) -> None:
    gw = await gateway_server()
    everything = await cli("--config-url", gw.config_url)
    errors = await cli("--config-url", gw.config_url, "--errors", "--space", "shop")
    await wait_listening(gw, 2)
    hub = hub_of(gw.gateway.config_app)
    hub.publish(record(1))
    hub.publish(record(2, space="shop", type="order.paid", status=403, verdict="reject"))
    hub.publish(record(3, space="shop", type="\x1b[31mevil\x1b]0;title\x07", status=200))
    first, second, third = (await everything.line(), await everything.line(), await everything.line())
    assert "202" in first and "default" in first and "user.created" in first and "ev-1" in first
    assert "guard:continue" in first and "→hello 200" in first and "1.2ms" in first
    assert "403" in second and "guard:reject 403" in second and "→hello 500 failed" in second
    assert "\x1b" not in first + second + third  # a pipe: no colour; and the event's escapes are shown, not sent
    assert "\\x1b[31mevil\\x1b]0;title\\x07" in third
    only = await errors.line()
    assert "ev-2" in only and "order.paid" in only
    hub.publish(record(4, space="shop", type="order.paid", status=500))
    assert "ev-4" in await errors.line()


async def test_reconnects_when_the_gateway_restarts(gateway_server: Any, cli: Any) -> None:
    gw = await gateway_server()
    port = gw.config_port
    tail = await cli("--config-url", gw.config_url)
    await wait_listening(gw)
    hub_of(gw.gateway.config_app).publish(record(1))
    assert "ev-1" in await tail.line()
    await gw.stop()
    second = await gateway_server(config_port=port)
    await wait_listening(second, timeout=15)
    hub_of(second.gateway.config_app).publish(record(2))
    assert "ev-2" in await tail.line(10)
    assert tail.process.returncode is None


async def test_token_rules(gateway_server: Any, cli: Any) -> None:
    gw = await gateway_server(config_token="s3cret")
    refused = await cli("--config-url", gw.config_url)
    assert await asyncio.wait_for(refused.process.wait(), 10) == 1
    message = await refused.stderr()
    assert "401" in message and "bearer token" in message, message
    allowed = await cli("--config-url", gw.config_url, env={"EVENT_GATEWAY_CONFIG_TOKEN": "s3cret"})
    await wait_listening(gw)
    hub_of(gw.gateway.config_app).publish(record(5))
    assert "ev-5" in await allowed.line()


async def test_colour_on_a_terminal_and_never_with_no_color(gateway_server: Any) -> None:
    gw = await gateway_server()
    hub = hub_of(gw.gateway.config_app)
    outputs = {}
    for name, extra in (("tty", {}), ("no_color", {"NO_COLOR": "1"})):
        leader, follower = pty.openpty()
        env = {key: value for key, value in os.environ.items() if key != "NO_COLOR"}
        env.update({"PYTHONPATH": str(REPO_ROOT), **extra})
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "tail", "--config-url", gw.config_url, cwd=REPO_ROOT,
            stdout=follower, stderr=asyncio.subprocess.DEVNULL, env=env)
        os.close(follower)
        try:
            await wait_listening(gw)
            hub.publish(record(9, status=503))
            loop = asyncio.get_running_loop()
            text = b""
            deadline = time.monotonic() + 5
            while b"ev-9" not in text or not text.endswith(b"\n"):
                assert time.monotonic() < deadline, text
                text += await loop.run_in_executor(None, os.read, leader, 4096)
            outputs[name] = text.decode()
        finally:
            process.kill()
            await process.wait()
            os.close(leader)
            while hub.clients:
                await asyncio.sleep(0.02)
    assert "\x1b[31m503\x1b[0m" in outputs["tty"]
    assert "\x1b[" not in outputs["no_color"] and "503" in outputs["no_color"]


async def test_a_gateway_that_is_not_there_yet(gateway_server: Any, cli: Any, tmp_path: Path) -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tail = await cli("--config-url", f"http://127.0.0.1:{port}")
    assert "retrying until it is back" in await tail.stderr_line()
    gw = await gateway_server(config_port=port)
    await wait_listening(gw, timeout=15)
    hub_of(gw.gateway.config_app).publish(record(3))
    assert "ev-3" in await tail.line()
