"""Amplification through running gateways and real HTTP clients (issue 10, "amplification"):

- a plugin faulting on every other event ends quarantined (by its fault rate) while events keep being
  served fast;
- a plugin rewriting each event of a 1,000-event batch to ~1 MiB: the request is refused with 413 at
  the replacement-bytes cap, the gateway process's RSS stays bounded, the next event is served;
- a slow async plugin does not delay a fast one's reactions (per-plugin shares of the async threads),
  and a burst of large events keeps the async queues under their byte bound, drops counted.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgpack
import wasmtime

from gateway.metrics import Metrics
from gateway.plugins.loading import load_plugin, spec_from_path
from gateway.plugins.reactor import AsyncReactor
from gateway.plugins.stages import MAX_REPLACEMENT_BYTES, ActivePluginSet
from gateway.plugins.plugin_settings import PluginSettings
from tests.wat import plugin_wat, wat_bytes
from wasm_abi import EVENT_RECEIVED, system_event

CE = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"


def cloudevent(event_type: str = "user.created", **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "type": event_type, "id": str(uuid.uuid4()), "source": "/tests",
            "datacontenttype": "application/json", "data": data}


async def upload(client: httpx.AsyncClient, config_url: str, name: str, wat: str,
                 settings: dict[str, Any] | None = None) -> None:
    response = await client.post(f"{config_url}/v1/plugins", content=bytes(wasmtime.wat2wasm(wat)),
                                 params={"name": name, "settings": json.dumps(settings or {})},
                                 headers={"Content-Type": "application/wasm"})
    assert response.status_code == 201, response.text


# Traps on every second call of an instance: ok, trap, ok, trap... (a fresh instance after each trap).
ALTERNATING = plugin_wat(
    react="""(global.set $calls (i32.add (global.get $calls) (i32.const 1)))
      (if (i32.eq (global.get $calls) (i32.const 2)) (then unreachable))
      (i64.const 0)""",
    extra="(global $calls (mut i32) (i32.const 0))")


async def test_a_plugin_faulting_on_every_other_event_ends_quarantined(gateway_server: Callable[..., Any]) -> None:
    gw = await gateway_server()
    async with httpx.AsyncClient(timeout=10) as client:
        # Fail-open, so that its faults (and its quarantine) never refuse an event.
        await upload(client, gw.config_url, "flaky", ALTERNATING, {"policy": "open"})
        times: list[float] = []
        for _ in range(40):
            started = time.monotonic()
            response = await client.post(f"{gw.events_url}/", content=json.dumps(cloudevent()),
                                         headers={"Content-Type": CE})
            times.append(time.monotonic() - started)
            assert response.status_code == 202, response.text
        shown = (await client.get(f"{gw.config_url}/v1/plugins/flaky")).json()
    # Ten traps in its first twenty events: quarantined by the fault rate (never two faults in a row).
    assert shown["state"] == "quarantined", shown
    assert shown["lastFault"]["kind"] == "trap" and shown["lastFault"]["consecutive"] == 1
    assert shown["counters"]["faults"]["trap"] == 10
    assert shown["counters"]["faults"]["quarantined"] == 20  # the other twenty events: nothing ran
    assert shown["retryInSeconds"] > 0
    assert "fault rate" in shown["quarantineReason"], shown["quarantineReason"]
    assert max(times) < 20.0, f"slowest event took {max(times):.2f}s"  # a hang guard, not a latency claim


# -- rewrites x batches ------------------------------------------------------------------------------

REWRITE_AT = 65536
BLOAT_BYTES = 1_048_000  # the replacement's `data` string: the whole reaction stays under 1 MiB of output


def bloating_plugin() -> str:
    """Rewrites every event it sees to an event of ~1 MiB (its output limit)."""
    head = msgpack.packb({"event": {"specversion": "1.0", "type": "bloat", "source": "/bloat", "id": "b",
                                    "data": ""}})
    assert head.endswith(b"\xa0")  # the empty `data` string, last: becomes a str32 header
    head = head[:-1] + b"\xdb" + BLOAT_BYTES.to_bytes(4, "big")
    total = len(head) + BLOAT_BYTES
    assert total <= 1024 * 1024
    fill_at = REWRITE_AT + len(head)
    # `_initialize` fills the string with "a" (8 bytes a store); `react` answers the same bytes each time.
    initialize = f"""(local $p i32)
      (local.set $p (i32.const {fill_at}))
      (loop $fill
        (i64.store (local.get $p) (i64.const 0x6161616161616161))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br_if $fill (i32.lt_u (local.get $p) (i32.const {fill_at + BLOAT_BYTES}))))"""
    return plugin_wat(memory='(memory (export "memory") 18)', react=f"(i64.const {(REWRITE_AT << 32) | total})",
                      initialize=initialize, extra=f"(data (i32.const {REWRITE_AT}) {wat_bytes(head)})")


def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def test_rewrites_of_a_large_batch_are_capped(gateway_process: Callable[..., Any], tmp_path: Path) -> None:
    """1,000 events of ~66 bytes, each rewritten to ~1 MiB: 1 GB unbounded. The cap of replacement
    bytes per request refuses the batch with 413 after ~32 rewrites, within bounded memory."""
    gateway = gateway_process("--db", "memory")
    wasm = bytes(wasmtime.wat2wasm(bloating_plugin()))
    created = httpx.post(f"{gateway.config_url}/v1/plugins", content=wasm, params={"name": "bloat"},
                         headers={"Content-Type": "application/wasm"}, timeout=30)
    assert created.status_code == 201, created.text
    pid = gateway.process.pid
    # One single event first: a ~1 MiB rewrite is fine on its own (and the plugin is warm).
    single = httpx.post(f"{gateway.events_url}/", content=json.dumps(cloudevent()), headers={"Content-Type": CE},
                        timeout=10)
    assert single.status_code == 202, single.text
    before = memory_kib(pid)
    batch = json.dumps([{"specversion": "1.0", "type": "t", "id": str(n), "source": "/b"} for n in range(1000)])
    assert len(batch) < 70_000
    started = time.monotonic()
    response = httpx.post(f"{gateway.events_url}/", content=batch, headers={"Content-Type": CE_BATCH}, timeout=60)
    elapsed = time.monotonic() - started
    after = memory_kib(pid)
    assert response.status_code == 413, response.text
    message = response.json()["errors"][0]["message"]
    assert f"caps replacement bytes per request at {MAX_REPLACEMENT_BYTES}" in message and "'bloat'" in message
    grew_mb = (after["VmHWM"] - before["VmRSS"]) / 1024
    assert grew_mb < 200, f"the gateway's peak RSS grew by {grew_mb:.0f} MB"
    assert elapsed < 20, f"the batch took {elapsed:.1f}s"
    # The next normal event is served (the client's 10 s timeout is the hang guard).
    again = httpx.post(f"{gateway.events_url}/", content=json.dumps(cloudevent()), headers={"Content-Type": CE},
                       timeout=10)
    assert again.status_code == 202
    assert "past the replacement cap of this request" in gateway.log()


# -- async fairness and the byte-bounded backlog -------------------------------------------------------

SLOW_ASYNC = plugin_wat(react="(loop (br 0)) (i64.const 0)", subscriptions=[(EVENT_RECEIVED, "async")])
FAST_ASYNC = plugin_wat(subscriptions=[(EVENT_RECEIVED, "async")])
#: The slow plugin runs until its 1 s async deadline on every event, and an operator turned off its
#: quarantine, so it stays slow (the worst case for everyone sharing the async threads).
SLOW_SETTINGS = {"limits": {"async_fuel": 10**12, "async_timeout": 1.0, "quarantine_after": 1000,
                            "fault_window_max": 100_000}}


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_slow_async_plugin_does_not_delay_a_fast_one(gateway_server: Callable[..., Any]) -> None:
    """16 events: the slow plugin needs 16 s of async deadline, 8 s on its two threads. The fast plugin's
    16 reactions must not wait behind them (one shared pool made them wait seconds)."""
    gw = await gateway_server()
    async with httpx.AsyncClient(timeout=10) as client:
        await upload(client, gw.config_url, "slow", SLOW_ASYNC, SLOW_SETTINGS)
        await upload(client, gw.config_url, "fast", FAST_ASYNC, {"order": 1})
        started = time.monotonic()
        for _ in range(16):
            response = await client.post(f"{gw.events_url}/", content=json.dumps(cloudevent()),
                                         headers={"Content-Type": CE})
            assert response.status_code == 202
        labels = {"plugin": "fast", "event_type": EVENT_RECEIVED, "mode": "async", "outcome": "continue"}
        while True:
            text = (await client.get(f"{gw.config_url}/v1/metrics")).text
            done = metric(text, "eventgateway_plugin_reactions_total", **labels)
            if done == 16:
                break
            assert time.monotonic() - started < 30.0, f"the fast plugin finished {done:.0f} of 16 reactions"
            await asyncio.sleep(0.05)
        slow = metric(text, "eventgateway_plugin_faults_total", plugin="slow", kind="timeout")
        # The mechanism: the fast plugin finished while the slow one was still busy (12 or more of its 16
        # reactions, 1 s each, to go), so it did not wait behind them. The time loop above is a hang guard.
        assert slow <= 4, f"the slow plugin ran {slow:.0f} reactions to their deadline already"  # still busy
        # Deleting the slow plugin ends its queued reactions fast (the teardown need not wait 8 s).
        assert (await client.delete(f"{gw.config_url}/v1/plugins/slow")).status_code == 204


def large_received(size: int) -> dict[str, Any]:
    incoming = {"specversion": "1.0", "type": "big", "id": str(uuid.uuid4()), "source": "/t", "data": "x" * size}
    return system_event(EVENT_RECEIVED, {"event": incoming, "path": "/", "headers": {}})


def test_a_burst_of_large_events_keeps_the_async_backlog_bounded(tmp_path: Path) -> None:
    """50 events of 1 MiB for a slow and a fast async plugin, with a backlog of 8 MiB: the queues
    never hold more than 8 MiB (each event once, however many plugins wait for it; the slow plugin at
    most half), the slow plugin's excess is dropped and counted, and the fast plugin keeps up."""
    def load(name: str, wat: str, settings: dict[str, Any]) -> Any:
        path = tmp_path / f"{name}.wasm"
        path.write_bytes(bytes(wasmtime.wat2wasm(wat)))
        return load_plugin(spec_from_path(path, 0, PluginSettings.model_validate(settings)))

    slow = load("slow", SLOW_ASYNC, {**SLOW_SETTINGS, "limits": {**SLOW_SETTINGS["limits"], "async_timeout": 0.5}})
    fast = load("fast", FAST_ASYNC, {"order": 1})
    metrics = Metrics()
    reactor = AsyncReactor(threads=4, backlog_bytes=8 * 1024 * 1024)
    plugins = ActivePluginSet([slow, fast], metrics, reactor)
    try:
        assert reactor.share == 2 and reactor.lane_bytes == 4 * 1024 * 1024
        fast_done = threading.Event()
        for _ in range(50):
            plugins.react_async(large_received(1024 * 1024))
            time.sleep(0.005)  # a burst, but the fast plugin gets to run between its events
            assert reactor.queued_bytes <= reactor.backlog_bytes
        text = _render(metrics)
        dropped_slow = metric(text, "eventgateway_plugin_reactions_total", plugin="slow", outcome="dropped")
        dropped_fast = metric(text, "eventgateway_plugin_reactions_total", plugin="fast", outcome="dropped")
        # The slow plugin holds at most 4 MiB (about 3 events of ~1 MiB): the rest of its 50 are dropped.
        assert dropped_slow >= 40, text
        assert reactor.peak_bytes <= reactor.backlog_bytes
        deadline = time.monotonic() + 5
        while not fast_done.is_set():
            text = _render(metrics)
            continued = metric(text, "eventgateway_plugin_reactions_total", plugin="fast", outcome="continue")
            if continued + dropped_fast >= 50:
                fast_done.set()
            else:
                assert time.monotonic() < deadline, f"fast plugin: {continued} done, {dropped_fast} dropped"
                time.sleep(0.02)
        assert dropped_fast <= 10  # the fast plugin's reactions mostly ran, despite the slow one
        assert 'eventgateway_plugin_async_backlog_bytes' in text
    finally:
        reactor.close(wait=False)
        slow.host.close()
        fast.host.close()


def _render(metrics: Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()
