"""The sandbox's wall-clock, host-call and text bounds, through running gateways and real HTTP clients.

- A plugin whose every reaction spins on instructions that cost far more time than fuel (`memory.grow`,
  64 MiB `memory.fill`) runs inline on the event loop, stopped per call by its 50 ms deadline: the
  Config API's `GET /v1/status` stays fast while events hit it, and the plugin is quarantined.
- A WASI plugin that faults on every event (the Go-like case: writing its output forever) is bounded
  per event and quarantined, not left `active`.
- Plugin-supplied text: a multi-megabyte function name does not make a multi-megabyte `lastFault` or
  log, and a plugin's log message with a newline cannot forge a gateway log line (text log format).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import wasmtime

from tests.wat import plugin_wat, wat_bytes

CE = "application/cloudevents+json"


def cloudevent(event_type: str = "user.created") -> str:
    return json.dumps({"specversion": "1.0", "type": event_type, "id": str(uuid.uuid4()), "source": "/tests",
                       "datacontenttype": "application/json", "data": {}})


def write(tmp_path: Path, name: str, wat: str) -> Path:
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(bytes(wasmtime.wat2wasm(wat)))
    return path


SPIN = {
    "memory.grow": ('(memory (export "memory") 1)', "(drop (memory.grow (i32.const 0)))"),
    "memory.fill 64 MiB": ('(memory (export "memory") 1024)',
                           "(memory.fill (i32.const 0) (i32.const 7) (i32.const 67108864))"),
}


async def plugin_state(client: httpx.AsyncClient, config_url: str, name: str) -> dict[str, Any]:
    response = await client.get(f"{config_url}/v1/plugins")
    assert response.status_code == 200, response.text
    return {p["name"]: p for p in response.json()["plugins"]}[name]


@pytest.mark.parametrize("cls", list(SPIN))
async def test_a_spinning_plugin_does_not_stall_the_config_api(gateway_server: Callable[..., Any], tmp_path: Path,
                                                               cls: str) -> None:
    """Fuel effectively unlimited (an operator raised it): only the per-call deadline stops each reaction
    (the old shared deadline of 1.25 s held the loop, and `/v1/status`, that long)."""
    memory, body = SPIN[cls]
    wasm = wasmtime.wat2wasm(plugin_wat(memory=memory, react=f"(loop $l {body} (br $l)) (i64.const 0)"))
    gw = await gateway_server()
    async with httpx.AsyncClient(timeout=10) as client:
        uploaded = await client.post(f"{gw.config_url}/v1/plugins", content=bytes(wasm),
                                     params={"name": "spinner", "settings": json.dumps({"limits": {"sync_fuel": 10**12}})},
                                     headers={"Content-Type": "application/wasm"})
        assert uploaded.status_code == 201, uploaded.text
    assert gw.gateway.plugins.current().plugins[0].inline  # 50 ms deadline: on the loop
    status_times: list[float] = []
    event_times: list[float] = []
    async with httpx.AsyncClient(timeout=10) as client:

        async def poll_status() -> None:
            for _ in range(30):
                started = time.monotonic()
                assert (await client.get(f"{gw.config_url}/v1/status")).status_code == 200
                status_times.append(time.monotonic() - started)
                await asyncio.sleep(0.01)

        async def send_events() -> None:
            for _ in range(10):
                started = time.monotonic()
                response = await client.post(f"{gw.events_url}/", content=cloudevent(), headers={"Content-Type": CE})
                event_times.append(time.monotonic() - started)
                assert response.status_code in (202, 503), response.text

        await asyncio.gather(poll_status(), send_events(), send_events())
        state = await plugin_state(client, gw.config_url, "spinner")
    # The mechanism: the spinning reaction was stopped by its 50 ms deadline (the fault says so). The times
    # are hang guards (10x what the loop may be held), not latency claims (bench/ measures those).
    assert state["lastFault"]["kind"] == "timeout" and "sync_timeout 0.05 s" in state["lastFault"]["message"]
    assert max(status_times) < 5.0, f"GET /v1/status took up to {max(status_times):.3f}s"
    assert max(event_times) < 10.0, f"an event took {max(event_times):.3f}s"
    assert state["state"] == "quarantined"


async def test_a_wasi_plugin_faulting_on_every_event_is_quarantined(gateway_server: Callable[..., Any],
                                                                   tmp_path: Path) -> None:
    """Go-like: it writes to stdout forever (as a runtime panicking in a loop would). Each event is
    bounded; after `quarantine_after` faults the plugin is quarantined instead of staying active."""
    imports = '(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))'
    react = """(i32.store (i32.const 600) (i32.const 8192)) (i32.store (i32.const 604) (i32.const 65536))
      (memory.fill (i32.const 8192) (i32.const 10) (i32.const 65536))
      (loop $l (drop (call $fd_write (i32.const 1) (i32.const 600) (i32.const 1) (i32.const 608))) (br $l))
      (i64.const 0)"""
    path = write(tmp_path, "gopher", plugin_wat(imports=imports, react=react, memory='(memory (export "memory") 3)'))
    gw = await gateway_server(plugins=[path])
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(4):
            started = time.monotonic()
            response = await client.post(f"{gw.events_url}/", content=cloudevent(), headers={"Content-Type": CE})
            assert response.status_code == 503, response.text
            assert time.monotonic() - started < 10.0  # a hang guard: each event's reaction is stopped
        state = await plugin_state(client, gw.config_url, "gopher")
    assert state["state"] == "quarantined"
    assert state["lastFault"]["kind"] in ("out_of_fuel", "timeout")


async def test_a_huge_function_name_does_not_make_a_huge_last_fault_or_log(
        gateway_server: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    name = "n" * 3_800_000
    path = write(tmp_path, "named", plugin_wat(react=f"(call ${name})", extra=f"(func ${name} (result i64) unreachable)"))
    gw = await gateway_server(plugins=[path])
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(5):
            response = await client.post(f"{gw.events_url}/", content=cloudevent(), headers={"Content-Type": CE})
            assert response.status_code == 503
            assert len(response.content) < 10_000
        state = await plugin_state(client, gw.config_url, "named")
        listing = await client.get(f"{gw.config_url}/v1/plugins")
    assert state["lastFault"]["kind"] == "trap"
    assert len(state["lastFault"]["message"]) < 5000 and "more characters)" in state["lastFault"]["message"]
    assert len(listing.content) < 20_000
    assert sum(len(r.getMessage()) for r in caplog.records) < 200_000


def test_a_plugin_log_message_cannot_forge_a_gateway_log_line(gateway_process: Callable[..., Any],
                                                             tmp_path: Path) -> None:
    forged = b"line1\n2026-01-01 00:00:00,000 INFO    gateway.server [1] FAKE gateway line\r\x1b[2K"
    react = f"(call $log (i32.const 1) (i32.const 4096) (i32.const {len(forged)})) (i64.const 0)"
    path = write(tmp_path, "forger", plugin_wat(imports='(import "eventgateway" "log" (func $log (param i32 i32 i32)))',
                                                react=react, extra=f"(data (i32.const 4096) {wat_bytes(forged)})"))
    gateway = gateway_process("--db", "memory", "--plugin", str(path), "--log-format", "text")
    response = httpx.post(f"{gateway.events_url}/", content=cloudevent(), headers={"Content-Type": CE}, timeout=10)
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 10
    while "line1" not in gateway.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = gateway.log()
    assert "[plugin forger] line1\\n2026-01-01 00:00:00,000 INFO    gateway.server [1] FAKE gateway line\\r\\x1b[2K" in log
    assert not any(line.startswith("2026-01-01 00:00:00,000") for line in log.splitlines())
    assert "\x1b" not in log
