"""The kv capability on Redis through real gateway processes (``--plugin-kv redis://...``) and a real
redis-server (tests/redis_server.py): a WAT rate limiter (``kv_incr`` with a 60 s TTL, the 6th event of a
window rejected with 429, a kv error failing open) granted ``kv = true`` in plugins.toml.

- two gateways share the limit: 3 events on each -> the 6th is 429;
- Redis killed mid-run: events are answered (202, the plugin's fallback) within the reaction's budget,
  the gateway stays healthy and the plugin active; Redis back on the same port: the limit works again,
  without restarting the gateway; a Redis that stops answering (SIGSTOP) costs an event its budget, no more;
- a gateway started while Redis is down starts, warns once, and limits once Redis is there.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import msgpack
import redis as redis_py
import wasmtime

from gateway.plugins.kv_redis import DOWN_BACKOFF
from tests.gateway_fixtures import GatewayProcess
from tests.redis_server import RedisServer, free_port, remove_redis_server
from tests.wasm_abi.capability_wat import OUT_AT, Data, imports
from tests.wat import plugin_wat

pytestmark = pytest.mark.redis  # every test needs redis-server (one starts its own on a chosen port)

LIMIT = 5
WINDOW_MS = 60_000
CE = "application/cloudevents+json"


def ratelimit_wat() -> str:
    """Counts every event.received in kv key "rl" (one window of 60 s from the first); the 6th and later are
    rejected with 429; a kv error is logged with its code's name and lets the event through (fail open)."""
    data = Data()
    reject = msgpack.packb({"error": f"rate limited: more than {LIMIT} events in the window", "status": 429})
    packed_reject = (data.ptr(reject) << 32) | len(reject)
    react = f"""(block (result i64)
      (global.set $rc (call $kv_incr {data.ref(b"rl")} (i64.const 1) (i64.const {WINDOW_MS}) (i32.const {OUT_AT})))
      (if (i32.eqz (global.get $rc)) (then
        (return (select (i64.const {packed_reject}) (i64.const 0)
                        (i64.gt_s (i64.load (i32.const {OUT_AT})) (i64.const {LIMIT}))))))
      (if (i32.eq (global.get $rc) (i32.const -5))
        (then (call $log (i32.const 2) {data.ref(b"kv_incr failed: EG_UNAVAILABLE")}))
        (else (if (i32.eq (global.get $rc) (i32.const -7))
          (then (call $log (i32.const 2) {data.ref(b"kv_incr failed: EG_TIMEOUT")}))
          (else (call $log (i32.const 2) {data.ref(b"kv_incr failed: another code")})))))
      (i64.const 0))"""
    return plugin_wat(
        imports='  (import "eventgateway" "log" (func $log (param i32 i32 i32)))\n' + imports(("kv_incr",)),
        react=react, extra="  (global $rc (mut i32) (i32.const 0))\n" + data.wat(), memory='(memory (export "memory") 2)')


def write_plugin(directory: Path, name: str) -> Path:
    wasm = directory / f"{name}.wasm"
    wasm.write_bytes(bytes(wasmtime.wat2wasm(ratelimit_wat())))
    config = directory / "plugins.toml"
    config.write_text(f'[plugins.{name}]\npath = "{wasm}"\n\n[plugins.{name}.capabilities]\nkv = true\n')
    return config


def send(gateway: GatewayProcess) -> tuple[int, str, float]:
    event = {"specversion": "1.0", "type": "user.created", "id": str(uuid.uuid4()), "source": "/tests",
             "datacontenttype": "application/json", "data": {}}
    started = time.monotonic()
    response = httpx.post(f"{gateway.events_url}/", content=json.dumps(event), headers={"Content-Type": CE},
                          timeout=10)
    return response.status_code, response.text, time.monotonic() - started


def plugin_state(gateway: GatewayProcess, name: str) -> dict[str, Any]:
    response = httpx.get(f"{gateway.config_url}/v1/plugins/{name}", timeout=5)
    assert response.status_code == 200, response.text
    return dict(response.json())


def healthy(gateway: GatewayProcess) -> bool:
    return httpx.get(f"{gateway.config_url}/v1/status", timeout=5).status_code == 200


def start_gateway(gateway_process: Callable[..., GatewayProcess], config: Path, url: str) -> GatewayProcess:
    return gateway_process("--db", "memory", "--plugins-config", str(config), "--plugin-kv", url)


def test_two_gateways_share_one_limit(gateway_process: Callable[..., GatewayProcess], redis_server: RedisServer,
                                      tmp_path: Path) -> None:
    name = f"rl-{uuid.uuid4().hex[:8]}"
    config = write_plugin(tmp_path, name)
    first = start_gateway(gateway_process, config, redis_server.url)
    second = start_gateway(gateway_process, config, redis_server.url)
    answers = [send(first)[0] for _ in range(3)] + [send(second)[0] for _ in range(2)]
    assert answers == [202] * 5
    status, text, _ = send(second)
    assert status == 429, text
    assert "rate limited: more than 5 events" in text
    assert send(first)[0] == 429  # the first gateway sees the same count
    assert plugin_state(first, name)["state"] == "active"
    assert "kv_incr failed" not in first.log() + second.log()


def test_redis_killed_mid_run_fails_open_and_comes_back(gateway_process: Callable[..., GatewayProcess],
                                                        redis_factory: Callable[[], RedisServer],
                                                        tmp_path: Path) -> None:
    server = redis_factory()
    name = f"rl-{uuid.uuid4().hex[:8]}"
    gateway = start_gateway(gateway_process, write_plugin(tmp_path, name), server.url)
    assert [send(gateway)[0] for _ in range(3)] == [202] * 3

    server.kill()
    times = []
    for _ in range(20):  # more than the limit, and more than a few faults would take to quarantine it
        status, text, took = send(gateway)
        assert status == 202, text  # the plugin's fallback: fail open
        times.append(took)
    # sync_timeout is 50 ms: an event waits on no dead connection longer than its reaction's budget (the
    # kind of failure logged below is the mechanism; the time is a hang guard, not a latency claim)
    assert max(times) < 5.0, f"slowest event during the outage: {max(times):.3f}s"
    assert healthy(gateway)
    state = plugin_state(gateway, name)
    assert state["state"] == "active", state
    log = gateway.log()
    assert "kv_incr failed: EG_UNAVAILABLE" in log
    assert log.count("is unreachable") == 1, log[-3000:]  # one warning, not one per call

    server.start()  # same port; an empty Redis (nothing persisted)
    time.sleep(DOWN_BACKOFF + 0.1)
    answers = [send(gateway)[0] for _ in range(LIMIT + 1)]
    assert answers == [202] * LIMIT + [429], answers
    assert "answers again" in gateway.log()


def test_a_redis_that_stops_answering_costs_an_event_its_budget_only(
        gateway_process: Callable[..., GatewayProcess], redis_factory: Callable[[], RedisServer],
        tmp_path: Path) -> None:
    server = redis_factory()
    name = f"rl-{uuid.uuid4().hex[:8]}"
    gateway = start_gateway(gateway_process, write_plugin(tmp_path, name), server.url)
    assert send(gateway)[0] == 202
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        times = []
        for _ in range(5):
            status, text, took = send(gateway)
            assert status == 202, text
            times.append(took)
        assert max(times) < 5.0, times  # a hang guard: the mechanism is the call's own timeout, below
        assert "kv_incr failed: EG_TIMEOUT" in gateway.log()
        assert plugin_state(gateway, name)["state"] == "active"
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    time.sleep(DOWN_BACKOFF + 0.1)
    answers = [send(gateway)[0] for _ in range(LIMIT)]
    assert answers[-1] == 429, answers  # the count kept in Redis: 1 + 5 > 5


def test_a_gateway_starts_without_redis_and_limits_once_it_is_there(
        gateway_process: Callable[..., GatewayProcess], tmp_path: Path) -> None:
    port = free_port()
    name = f"rl-{uuid.uuid4().hex[:8]}"
    password_url = f"redis://:not-in-logs@127.0.0.1:{port}/0"
    gateway = start_gateway(gateway_process, write_plugin(tmp_path, name), password_url)
    assert [send(gateway)[0] for _ in range(LIMIT + 2)] == [202] * (LIMIT + 2)  # fail open, no limit
    log = gateway.log()
    assert log.count("is unreachable") == 1, log[-3000:]
    assert f"redis://:***@127.0.0.1:{port}/0" in log
    server = RedisServer(tmp_path / "redis", port=port)
    server.directory.mkdir()
    server.start()
    try:
        client = redis_py.Redis(port=port)
        client.config_set("requirepass", "not-in-logs")
        client.close()
        time.sleep(DOWN_BACKOFF + 0.1)
        answers = [send(gateway)[0] for _ in range(LIMIT + 1)]
        assert answers == [202] * LIMIT + [429], answers
        assert "not-in-logs" not in gateway.log()
    finally:
        remove_redis_server(server)



async def test_the_gateway_closes_its_redis_connections_when_it_stops(gateway_server: Callable[..., Any],
                                                                      redis_server: RedisServer,
                                                                      tmp_path: Path) -> None:
    name = f"rl-{uuid.uuid4().hex[:8]}"
    client = redis_py.Redis.from_url(redis_server.url)
    try:
        baseline = len(client.client_list())
        gw = await gateway_server(plugins_config=str(write_plugin(tmp_path, name)), plugin_kv=redis_server.url)
        async with httpx.AsyncClient(timeout=10) as http:
            event = {"specversion": "1.0", "type": "user.created", "id": "e-1", "source": "/tests"}
            for _ in range(3):
                response = await http.post(f"{gw.events_url}/", content=json.dumps(event),
                                           headers={"Content-Type": CE})
                assert response.status_code == 202, response.text
        assert client.get(f"eg:kv:{{{name}}}:rl") == b"3"
        assert len(client.client_list()) > baseline  # the gateway's pool
        await gw.stop()
        deadline = time.monotonic() + 5
        while len(client.client_list()) > baseline and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(client.client_list()) == baseline
    finally:
        client.close()
