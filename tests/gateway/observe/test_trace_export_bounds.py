"""A hostile trace collector (issue 15): one that never answers, one that answers 500. The gateway's export
queue stays bounded, the spans it cannot send are dropped and counted in Prometheus, and events keep being
answered while the export thread waits on the collector."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

pytestmark = pytest.mark.slow  # a gateway process

CE = {"content-type": "application/cloudevents+json"}
QUEUE = 32
EVENTS = 200
SPANS = 2  # per event (no plugin, no subscription): the request and routing; 400 in all, far more than QUEUE


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.read(65536):
            pass  # reads the export and never says a word
    except (asyncio.CancelledError, ConnectionError):
        pass  # the test ends
    finally:
        writer.close()


async def _answers_500(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\nnope")
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def collector() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


def _series(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


async def _flood(gw) -> list[int]:
    async with httpx.AsyncClient(base_url=gw.events_url, timeout=5) as events:
        async def send(n: int) -> int:
            body = {"specversion": "1.0", "type": "x.y", "source": "/s", "id": f"e-{n}"}
            return (await events.post("/", content=json.dumps(body), headers=CE)).status_code
        statuses = []
        for start in range(0, EVENTS, 8):
            statuses += await asyncio.gather(*(send(n) for n in range(start, min(start + 8, EVENTS))))
        return statuses


async def _metrics(gw) -> str:
    async with httpx.AsyncClient(base_url=gw.config_url, timeout=10) as config:
        answer = await config.get("/v1/metrics")
        assert answer.status_code == 200
        return answer.text


def _env(url: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_BSP_MAX_QUEUE_SIZE": str(QUEUE),
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "8", "OTEL_BSP_SCHEDULE_DELAY": "20",
            "OTEL_BSP_EXPORT_TIMEOUT": "1000", "OTEL_EXPORTER_OTLP_TIMEOUT": "120"}


async def test_a_collector_that_never_answers_fills_the_bounded_queue_and_spans_are_dropped(
        gateway_process, collector) -> None:
    url = await collector(_never_answers)
    gw = gateway_process("--db", "memory", "--queue", "memory", env=_env(url))
    # The export thread waits up to 120 s on the first batch; the events are answered meanwhile (5 s client
    # timeout: an event path waiting on the collector would fail them).
    assert await _flood(gw) == [202] * EVENTS
    text = await _metrics(gw)
    assert _series(text, "eventgateway_trace_spans_queued", exporter="otlp") <= QUEUE
    dropped = _series(text, "eventgateway_trace_spans_dropped_total", exporter="otlp", reason="queue_full")
    assert dropped >= EVENTS * SPANS - QUEUE - 8  # all but what the queue and the stuck batch hold
    assert _series(text, "eventgateway_trace_spans_exported_total", exporter="otlp") == 0
    # Shutdown waits for the stuck export only OTEL_BSP_EXPORT_TIMEOUT, then stops cleanly.
    assert await asyncio.to_thread(gw.stop) == 0


async def test_a_collector_answering_500_drops_each_batch_and_counts_it(gateway_process, collector) -> None:
    url = await collector(_answers_500)
    gw = gateway_process("--db", "memory", "--queue", "memory", env=_env(url))
    assert await _flood(gw) == [202] * EVENTS
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # the export thread catches up (500 is not retried)
        text = await _metrics(gw)
        failed = _series(text, "eventgateway_trace_spans_dropped_total", exporter="otlp", reason="export_failed")
        full = _series(text, "eventgateway_trace_spans_dropped_total", exporter="otlp", reason="queue_full")
        if failed + full >= EVENTS * SPANS or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert failed > 0 and failed + full == EVENTS * SPANS, text
    assert _series(text, "eventgateway_trace_spans_exported_total", exporter="otlp") == 0
    assert _series(text, "eventgateway_trace_spans_queued", exporter="otlp") == 0
    assert await asyncio.to_thread(gw.stop) == 0
