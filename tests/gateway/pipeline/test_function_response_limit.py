"""``--max-function-response-bytes`` through a whole gateway: a function answering more than the limit is
a failed call (sync: 500; async: retried, then dropped; ``invocationFailed`` says why), and the gateway
stops reading at the limit instead of buffering whatever the function sends.

The oversized function is a hand-written HTTP/1.1 server on a raw socket, so the test controls framing
(chunked without a length, a declared ``Content-Length``, gzip) and can see how much it managed to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

LIMIT = 64 * 1024
CHUNK = 64 * 1024
#: What the endless function would send in total if nobody stopped reading: far beyond any socket buffer.
ENDLESS_TOTAL = 512 * 1024 * 1024


@dataclass
class OversizedFunction:
    """A real HTTP server whose paths answer: ``/endless`` chunked bytes until the reader goes away,
    ``/declared`` a ``Content-Length`` one byte over the limit, ``/gzip`` a small gzip body that inflates
    past the limit, ``/exact`` a valid response object of exactly ``LIMIT`` bytes."""

    url: str = ""
    endless_sent: int = 0
    endless_done: asyncio.Event | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            if path == "/endless":
                await self._endless(writer)
                return
            headers = "Content-Type: application/json\r\n"
            if path == "/declared":
                body = b"x" * (LIMIT + 1)
            elif path == "/gzip":
                body = gzip.compress(b"0" * (LIMIT * 16))
                headers += "Content-Encoding: gzip\r\n"
            else:  # /exact
                prefix, suffix = b'{"statusCode":200,"body":"', b'"}'
                body = prefix + b"a" * (LIMIT - len(prefix) - len(suffix)) + suffix
            writer.write(f"HTTP/1.1 200 OK\r\n{headers}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                         .encode() + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _endless(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n")
        chunk = f"{CHUNK:x}\r\n".encode() + b"y" * CHUNK + b"\r\n"
        try:
            while self.endless_sent < ENDLESS_TOTAL:
                writer.write(chunk)
                await writer.drain()  # blocks while the reader does not read: back-pressure
                self.endless_sent += CHUNK
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        finally:
            assert self.endless_done is not None
            self.endless_done.set()


@pytest.fixture
async def oversized() -> AsyncIterator[OversizedFunction]:
    function = OversizedFunction(endless_done=asyncio.Event())
    server = await asyncio.start_server(function.handle, "127.0.0.1", 0)
    function.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield function
    server.close()
    await server.wait_closed()


async def _register(config: httpx.AsyncClient, function_id: str, url: str, **fields: object) -> None:
    response = await config.post("/v1/spaces/default/functions", json={
        "functionId": function_id, "type": "http", "provider": {"url": url, "timeout": 10}, **fields})
    assert response.status_code == 201, response.text


async def test_sync_calls_over_the_limit_fail_and_stop_reading(gateway_server, oversized, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gateway.pipeline.invoke")
    running = await gateway_server(max_function_response_bytes=LIMIT)
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url, timeout=30) as events:
        assert (await config.post("/v1/spaces/default/eventtypes", json={"name": "http.request"})).status_code == 201
        for name in ("endless", "declared", "gzip", "exact"):
            await _register(config, name, f"{oversized.url}/{name}")
            assert (await config.post("/v1/spaces/default/subscriptions", json={
                "type": "sync", "eventType": "http.request", "functionId": name, "path": f"/{name}",
                "method": "GET"})).status_code == 201

        answer = await events.get("/exact")  # exactly at the limit: allowed
        assert answer.status_code == 200 and answer.text == "a" * (LIMIT - 28)

        for name, detail in (("endless", "bytes had arrived when reading stopped"),
                             ("declared", f"it declares Content-Length {LIMIT + 1}"),
                             ("gzip", "bytes had arrived when reading stopped")):
            caplog.clear()
            answer = await events.get(f"/{name}")
            assert answer.status_code == 500
            assert answer.json() == {"errors": [{"message": "Function call failed. Please check logs."}]}
            assert f"function default/{name} failed (sync)" in caplog.text
            assert f"HTTP call to {oversized.url}/{name} failed: the function's response (status 200) is " \
                   f"larger than the limit of {LIMIT} bytes" in caplog.text
            assert detail in caplog.text and "--max-function-response-bytes" in caplog.text

    # The gateway hung up instead of draining the endless body: the function stopped far short of it.
    await asyncio.wait_for(oversized.endless_done.wait(), 10)
    assert oversized.endless_sent < ENDLESS_TOTAL // 4


async def test_async_deliveries_over_the_limit_retry_then_drop_with_a_readable_error(
        gateway_server, function_server, oversized) -> None:
    running = await gateway_server(max_function_response_bytes=LIMIT)
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        base = "/v1/spaces/default"
        await _register(config, "huge", f"{oversized.url}/declared",
                        retry={"maxAttempts": 2, "initialBackoff": 0.01})
        await _register(config, "watch", function_server.url + "/watch")
        for name in ("order.placed", "eventgateway.function.invocationFailed"):
            assert (await config.post(f"{base}/eventtypes", json={"name": name})).status_code == 201
        for event_type, function_id in (("order.placed", "huge"),
                                        ("eventgateway.function.invocationFailed", "watch")):
            assert (await config.post(f"{base}/subscriptions", json={
                "type": "async", "eventType": event_type, "functionId": function_id})).status_code == 201

        sent = await events.post("/", json={"n": 1}, headers={"Event": "order.placed"})
        assert sent.status_code == 202
        failures = [r.json for r in await function_server.wait_for_requests(2)]
        errors = [f["data"]["error"] for f in failures]
        assert all(f["data"]["functionId"] == "huge" for f in failures)
        assert all(f"is larger than the limit of {LIMIT} bytes (it declares Content-Length {LIMIT + 1})" in e
                   for e in errors), errors
        assert "will retry" in errors[0] and "kept as a dead letter" in errors[1]
        metrics = (await config.get("/v1/metrics")).text
        assert 'eventgateway_function_invocations_total{function="huge",mode="async",outcome="failure",' \
               'space="default"} 2.0' in metrics
