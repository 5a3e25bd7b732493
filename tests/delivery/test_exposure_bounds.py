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

        assert asyncio.run(status_during_scrapes()) < 1.0
        began = time.monotonic()
        assert events.post("/", content=_event("user.created"), headers=_STRUCTURED).status_code == 202
        assert time.monotonic() - began < 1.0
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
