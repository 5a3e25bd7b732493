"""What a client can make the gateway keep and show (issue 10, "what the gateway keeps and shows"):
metric labels and per-space state come only from the configuration, /metrics is rendered off the event
loop, batches have a cap, and CloudEvents 0.1 events cannot smuggle a reserved type past the check.
Every test drives a real gateway over HTTP."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path

import pytest
import httpx

_STRUCTURED = {"content-type": "application/cloudevents+json"}


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _event(event_type: str, **extra: object) -> bytes:
    return json.dumps({"specversion": "1.0", "type": event_type, "source": "/t", "id": secrets.token_hex(4),
                       **extra}).encode()


# -- metrics: labels from the configuration only, rendered off the loop --------------------------------


@pytest.mark.slow
def test_hostile_types_and_spaces_leave_metrics_and_memory_bounded(gateway_process) -> None:
    """50 events with distinct 2 MB types and 300 random Space headers, no plugin and no token: /metrics
    stays small (every unknown type and space is 'other'), the gateway's RSS does not keep the types,
    /v1/status answers fast during a scrape, and the next normal event is served fast."""
    gw = gateway_process("--db", "memory")
    with httpx.Client(base_url=gw.config_url, timeout=30) as config, \
            httpx.Client(base_url=gw.events_url, timeout=30) as events:
        assert config.post("/v1/spaces/default/eventtypes", json={"name": "user.created"}).status_code == 201
        assert events.post("/", content=_event("user.created"), headers=_STRUCTURED).status_code == 202
        rss_before = _rss_bytes(gw.process.pid)
        started = time.monotonic()
        for index in range(50):
            hostile = f"t{index}-" + secrets.token_hex(8) + "x" * (2 * 1024 * 1024)
            response = events.post("/", content=_event(hostile), headers=_STRUCTURED)
            assert response.status_code == 202, response.text[:200]
        for _ in range(300):
            response = events.post("/", content=_event("user.created"),
                                   headers={**_STRUCTURED, "Space": "s-" + secrets.token_hex(24)})
            assert response.status_code == 202
        hostile_seconds = time.monotonic() - started
        rss_after = _rss_bytes(gw.process.pid)

        scraped = config.get("/v1/metrics")
        assert scraped.status_code == 200
        text = scraped.text
        assert len(scraped.content) < 64 * 1024, f"/metrics is {len(scraped.content)} bytes"
        assert 'eventgateway_events_received_total{space="default",type="user.created"} 1.0' in text
        assert 'eventgateway_events_received_total{space="default",type="other"} 50.0' in text
        assert 'eventgateway_events_received_total{space="other",type="other"} 300.0' in text
        assert "xxxxxxxx" not in text and 's-' not in text
        # 100 MB of types went through; none of it may stay (the unbounded gateway kept ~2x what it got).
        assert rss_after - rss_before < 60 * 1024 * 1024, (rss_before, rss_after, hostile_seconds)

        # /v1/status stays fast while scrapes run (they are formatted off the event loop).
        async def status_during_scrapes() -> float:
            async with httpx.AsyncClient(base_url=gw.config_url, timeout=30) as client:
                scrapes = [asyncio.create_task(client.get("/v1/metrics")) for _ in range(5)]
                began = time.monotonic()
                status = await client.get("/v1/status")
                elapsed = time.monotonic() - began
                assert status.status_code == 200
                await asyncio.gather(*scrapes)
                return elapsed

        # Hang guards (10x), not latency claims: answered while the scrapes ran, and after them.
        assert asyncio.run(status_during_scrapes()) < 10.0
        began = time.monotonic()
        assert events.post("/", content=_event("user.created"), headers=_STRUCTURED).status_code == 202
        assert time.monotonic() - began < 10.0
    assert gw.stop() == 0


async def test_unknown_spaces_leave_no_per_space_state(gateway_server) -> None:
    """Events naming spaces nobody configured are answered (202) without any per-space entry being
    kept: not in the routing table, not in the configuration view, not as a metric label."""
    running = await gateway_server()
    gateway = running.gateway
    async with httpx.AsyncClient(base_url=running.events_url) as events:
        for _ in range(200):
            response = await events.post("/", content=_event("user.created"),
                                         headers={**_STRUCTURED, "Space": "s-" + secrets.token_hex(16)})
            assert response.status_code == 202
    assert not [s for s in gateway.events.routes._spaces if s.startswith("s-")]
    assert not [s for s in gateway.view._generations if s.startswith("s-")]
    assert not [key for key in gateway.metrics._children if any(str(v).startswith("s-") for v in key[1])]
    async with httpx.AsyncClient(base_url=running.config_url) as config:
        assert 'space="other"' in (await config.get("/v1/metrics")).text


# -- CloudEvents 0.1: the type is the version's own attribute; ambiguity and reserved types refused ------


def _v01(**attributes: object) -> dict[str, object]:
    return {"cloudEventsVersion": "0.1", "source": "/t", "eventID": secrets.token_hex(4), **attributes}


async def _subscribe(config: httpx.AsyncClient, function_url: str) -> None:
    base = "/v1/spaces/default"
    assert (await config.post(f"{base}/functions", json={
        "functionId": "fn", "type": "http", "provider": {"url": function_url, "timeout": 2}})).status_code == 201
    for name in ("user.created", "other.thing"):
        assert (await config.post(f"{base}/eventtypes", json={"name": name})).status_code == 201
        assert (await config.post(f"{base}/subscriptions", json={
            "type": "async", "eventType": name, "functionId": "fn", "path": "/"})).status_code == 201


async def test_v01_event_cannot_smuggle_a_reserved_or_second_type(gateway_server, function_server) -> None:
    running = await gateway_server()
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        await _subscribe(config, function_server.url + "/fn")
        forged = _v01(eventType="eventgateway.function.invoked", type="user.created", data={"space": "x"})
        response = await events.post("/", content=json.dumps(forged), headers=_STRUCTURED)  # structured mode
        assert response.status_code == 400, response.text
        message = response.json()["errors"][0]["message"]
        assert "reserved" in message or "ambiguous" in message, message
        # An application/json body or an Event header request whose JSON does not validate as a CloudEvent is
        # not an event but a body, as upstream: the http.request event (no subscriber here) and a user.created
        # event carrying the forgery as its data; neither is typed by the forgery.
        assert (await events.post("/", content=json.dumps(forged),
                                  headers={"content-type": "application/json"})).status_code == 202
        smuggled = _v01(eventType="user.created", type="eventgateway.function.invoked")
        assert (await events.post("/", content=json.dumps(smuggled),
                                  headers={"content-type": "application/json", "Event": "user.created"})).status_code == 202
        [wrapped] = await function_server.wait_for_requests(1)
        assert wrapped.json["eventType"] == "user.created" and wrapped.json["data"] == smuggled
        assert wrapped.json["extensions"]["eventgateway"]["transformed"] == "true"
        ambiguous = await events.post("/", content=json.dumps(_v01(eventType="user.created", type="other.thing")),
                                      headers=_STRUCTURED)
        assert ambiguous.status_code == 400
        message = ambiguous.json()["errors"][0]["message"]
        assert "'eventType'" in message and "'other.thing'" in message and "ambiguous" in message, message
        # The 1.0 form refuses a 0.1 'eventType' key (an invalid 1.0 attribute name).
        mixed = await events.post("/", content=_event("user.created", eventType="eventgateway.event.received"),
                                  headers=_STRUCTURED)
        assert mixed.status_code == 400
        # Consistent events still pass, routed by the version's own attribute.
        fine = _v01(eventType="user.created", type="user.created", data={"ok": 1})
        assert (await events.post("/", content=json.dumps(fine), headers=_STRUCTURED)).status_code == 202
        received = await function_server.wait_for_requests(2)
        assert received[1].json["eventType"] == "user.created" and received[1].json["data"] == {"ok": 1}
        await asyncio.sleep(0.2)
        assert len(function_server.requests) == 2  # nothing forged reached the function as an event


async def test_plugin_rewrite_cannot_forge_a_v01_system_event(gateway_server, function_server, tmp_path) -> None:
    """A plugin whose replacement is a 0.1 event typed ``eventgateway.*`` in ``eventType`` with an
    innocent ``type`` key is at fault (policy closed: 503), and no function receives the forgery."""
    from tests.wat import kit_plugin

    forged = _v01(eventType="eventgateway.function.invoked", type="user.created", data={"forged": True})
    rewriter = tmp_path / "forger.wasm"
    rewriter.write_bytes(kit_plugin([("eventgateway.event.received", "sync")], {"event": forged}))
    running = await gateway_server(plugins=[rewriter])
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        await _subscribe(config, function_server.url + "/fn")
        response = await events.post("/", content=_event("user.created"), headers=_STRUCTURED)
        assert response.status_code == 503, response.text
        status = (await config.get("/v1/plugins/forger")).json()
        fault = status["lastFault"]
        assert fault is not None and "reserved" in fault["message"], fault
        await asyncio.sleep(0.3)
        assert function_server.requests == []


# -- batches: a cap on events per request -----------------------------------------------------------


def _batch(count: int, event_type: str = "user.created") -> bytes:
    return json.dumps([{"specversion": "1.0", "type": event_type, "source": "/b", "id": str(i)}
                       for i in range(count)]).encode()


_BATCH = {"content-type": "application/cloudevents-batch+json"}


async def test_batch_over_the_cap_is_refused_naming_it(gateway_server, function_server) -> None:
    running = await gateway_server(max_batch_events=10)
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        await _subscribe(config, function_server.url + "/fn")
        refused = await events.post("/", content=_batch(11), headers=_BATCH)
        assert refused.status_code == 400
        message = refused.json()["errors"][0]["message"]
        assert "11 events" in message and "limit of 10" in message and "--max-batch-events" in message, message
        assert (await events.post("/", content=_batch(10), headers=_BATCH)).status_code == 202
        assert len(await function_server.wait_for_requests(10)) == 10
        await asyncio.sleep(0.2)
        assert len(function_server.requests) == 10  # nothing of the refused batch was queued


async def test_hostile_batch_of_100k_events_is_refused_fast(gateway_server) -> None:
    """The default cap (1000): a 5 MB batch of 100,000 tiny events is refused, nothing queued, and the
    next normal event is served (how fast: bench/, not here)."""
    running = await gateway_server()
    body = json.dumps([{"specversion": "1.0", "type": "a", "source": "/", "id": str(i)}
                       for i in range(100_000)], separators=(",", ":")).encode()
    assert len(body) < 6 * 1024 * 1024
    async with httpx.AsyncClient(base_url=running.events_url, timeout=30) as events:
        began = time.monotonic()
        refused = await events.post("/", content=body, headers=_BATCH)
        assert refused.status_code == 400 and "limit of 1000" in refused.text
        assert time.monotonic() - began < 20.0  # hang guards; nothing queued: the depth below
        began = time.monotonic()
        assert (await events.post("/", content=_event("user.created"), headers=_STRUCTURED)).status_code == 202
        assert time.monotonic() - began < 10.0
    assert await running.gateway.events.queue.depth() == 0
