"""Hostile trace collectors against the real export path (configure_tracing: the SDK exporter's HTTP client
sending our encoder's bytes): each export is bounded by the exporter's timeout (here 1 s) -- per read -- and
by the export's own hard deadline (that timeout, the client's retries included, for a collector trickling
its answer or never reading), whatever the collector does; at the deadline the export's sockets are shut
down, so no given-up export lingers and the next batch goes out on a new connection; memory stays bounded."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import struct
import threading
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.observe.tracing import configure_tracing
from tests.gateway.http.config_api.test_tls import self_signed

from .test_tracing_export import _spans

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    await reader.readexactly(int(length.group(1)) if length else 0)


def _answering(answer: bytes) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await _read_request(reader)
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
    return handle


def _trickling(head: bytes, tail: bytes) -> Handler:
    """Sends ``head`` at once, then ``tail`` one byte every 0.2 s: never a second of silence."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_request(reader)
            writer.write(head)
            for byte in tail:
                writer.write(bytes((byte,)))
                await writer.drain()
                await asyncio.sleep(0.2)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
    return handle


#: 200, then a body announced as 100,000 bytes sent a byte at a time.
_trickles = _trickling(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n", b"x" * 100_000)
#: The status line and a header sent a byte at a time (the client's per-read timeout never fires).
_trickles_head = _trickling(b"", b"HTTP/1.1 200 OK\r\n" + b"x-pad: " + b"y" * 100_000)


async def _huge_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """200 with a 256 MiB body, sent as fast as the client reads it."""
    try:
        await _read_request(reader)
        size = 256 << 20
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        chunk = b"\0" * (1 << 20)
        for _ in range(size // len(chunk)):
            writer.write(chunk)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def _resets(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads the request, then resets the connection (RST, not FIN)."""
    try:
        await _read_request(reader)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@pytest.fixture
async def collector(monkeypatch) -> AsyncIterator[Callable[[Handler], Awaitable[tuple[str, list[int]]]]]:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")  # seconds (read by the SDK exporter)
    servers: list[asyncio.Server] = []

    async def start(handler: Handler, tls: ssl.SSLContext | None = None) -> tuple[str, list[int]]:
        connections: list[int] = []

        async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(1)
            await handler(reader, writer)

        server = await asyncio.start_server(counted, "127.0.0.1", 0, ssl=tls)
        servers.append(server)
        return f"{'https' if tls else 'http'}://127.0.0.1:{server.sockets[0].getsockname()[1]}", connections

    yield start
    for server in servers:
        server.close()


def _tracing(url: str):
    tracing = configure_tracing(url, {"OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_BSP_EXPORT_TIMEOUT": "100"})
    assert tracing is not None
    return tracing


async def _export_once(tracing) -> tuple[bool, int, int]:
    """End two spans and flush (at most 20 s: the exporter's own bound is 1 s plus a retry's backoff);
    (flushed in time, spans exported, spans dropped as failed)."""
    _spans(tracing)
    flushed = await asyncio.to_thread(tracing.flush, 20)
    [(_, queue)] = tracing.queues
    return flushed, queue.exported, queue.dropped_export_failed


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 3600\r\ncontent-length: 0\r\n\r\n",
    b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 0\r\ncontent-length: 0\r\n\r\n",
    b"HTTP/1.1 503 Unavailable\r\nretry-after: Wed, 21 Oct 2099 07:28:00 GMT\r\ncontent-length: 0\r\n\r\n",
    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 3\r\n\r\nbad",
    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 3\r\n\r\nbad",
    b"garbage, not HTTP\r\n\r\n",
], ids=["429 retry-after 1h", "429 retry-after 0", "503 retry-after date", "500", "400", "garbage"])
async def test_a_refusing_collector_is_given_up_within_the_timeout(collector, answer: bytes) -> None:
    url, _ = await collector(_answering(answer))
    tracing = _tracing(url)
    try:
        assert await _export_once(tracing) == (True, 0, 2)
    finally:
        await asyncio.to_thread(tracing.shutdown)


async def test_a_collector_resetting_connections_is_given_up(collector) -> None:
    url, connections = await collector(_resets)
    tracing = _tracing(url)
    try:
        assert await _export_once(tracing) == (True, 0, 2)
        assert connections  # it was reached
    finally:
        await asyncio.to_thread(tracing.shutdown)


async def test_a_redirecting_collector_does_not_count_as_exported(collector) -> None:
    """A 307 is not the collector taking the spans (the SDK's client does not follow it): they were not
    exported, and the metric must not say they were."""
    url, _ = await collector(_answering(b"HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:9/v1/traces"
                                       b"\r\ncontent-length: 0\r\n\r\n"))
    tracing = _tracing(url)
    try:
        assert await _export_once(tracing) == (True, 0, 2)
    finally:
        await asyncio.to_thread(tracing.shutdown)


async def test_a_collector_trickling_its_answer_body_does_not_hold_the_export(collector) -> None:
    """One byte every 0.2 s never lets a 1 s read timeout fire; the body is not read (the status said the
    spans were taken), so the export ends with the headers."""
    url, _ = await collector(_trickles)
    tracing = _tracing(url)
    try:
        assert await _export_once(tracing) == (True, 2, 0)
    finally:
        await asyncio.to_thread(tracing.shutdown)


async def test_a_huge_answer_body_is_not_held_in_memory(collector) -> None:
    """A collector answering 256 MiB: the exporter must not read it all into memory."""
    url, _ = await collector(_huge_body)
    tracing = _tracing(url)
    tracemalloc.start()
    try:
        await _export_once(tracing)
        _, peak = tracemalloc.get_traced_memory()
        assert peak < 32 << 20, f"the export read {peak >> 20} MiB of the collector's answer into memory"
    finally:
        tracemalloc.stop()
        await asyncio.to_thread(tracing.shutdown)


def _attempt_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "eventgateway-trace-export-attempt")


async def _never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts the connection and never reads a byte (the client's send fills the socket buffers)."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        pass
    finally:
        writer.close()


def _big_spans(tracing, megabytes: int) -> None:
    """Spans of ``megabytes`` MiB of attributes in all: a request larger than the sockets' buffers."""
    recorder = tracing.recorder
    for i in range(megabytes * 4):
        span = recorder.start_span(f"big {i}", attributes={f"k{j}": "v" * 4000 for j in range(64)})
        span.end()


_OK = _answering(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")


@pytest.mark.parametrize(("hostile", "first"), [
    (_trickles_head, (0, 2)),  # status line a byte every 0.2 s: given up at the deadline, dropped
    (_trickles, (2, 0)),  # 200, then the body a byte every 0.2 s: taken (the body is never read)
    (_never_reads, None),  # an 8 MiB request never read: given up, dropped
], ids=["trickles status line", "trickles body", "never reads"])
async def test_after_a_hostile_export_the_next_batches_go_out_once_the_collector_answers(
        collector, hostile, first) -> None:
    """Issue 16: the export given up at its deadline does not linger (its sockets are shut down: its thread
    ends), its spans are counted as dropped, and the batches after it are sent on a new connection as soon
    as the collector answers again. Before: the given-up thread stayed in its read while the collector
    trickled, and every later batch failed at once unsent."""
    behaviour = {"hostile": True}

    async def switching(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await (hostile if behaviour["hostile"] else _OK)(reader, writer)

    url, connections = await collector(switching)
    tracing = _tracing(url)
    [(_, queue)] = tracing.queues
    try:
        if first is None:
            _big_spans(tracing, 8)
            batch = len(queue)
            assert await asyncio.to_thread(tracing.flush, 20)
            assert (queue.exported, queue.dropped_export_failed) == (0, batch)
        else:
            flushed, exported, dropped = await _export_once(tracing)
            assert flushed and (exported, dropped) == first
        assert _attempt_threads() == 0  # the given-up export's thread ended: nothing lingers
        hostile_connections = len(connections)
        exported_before, dropped_before = queue.exported, queue.dropped_export_failed
        behaviour["hostile"] = False  # the collector answers again
        for _ in range(3):
            assert await _export_once(tracing) == (True, queue.exported, queue.dropped_export_failed)
        assert queue.exported == exported_before + 6 and queue.dropped_export_failed == dropped_before
        assert len(connections) > hostile_connections  # sent on new connections, not the shut one
        assert _attempt_threads() == 0
    finally:
        await asyncio.to_thread(tracing.shutdown)


async def test_over_tls_a_collector_trickling_its_status_line_is_cut_and_the_next_batch_goes_out(
        collector, monkeypatch, tmp_path) -> None:
    """The same over HTTPS: the export's socket is wrapped in TLS after it connects; the watch shuts the
    connection down underneath it."""
    cert, key = self_signed(tmp_path, "collector")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", str(cert))  # read by the SDK exporter
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # requests would prefer these to the exporter's file
        monkeypatch.delenv(name, raising=False)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    behaviour = {"hostile": True}

    async def switching(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await (_trickles_head if behaviour["hostile"] else _OK)(reader, writer)

    url, _ = await collector(switching, tls)
    tracing = _tracing(url)
    try:
        assert await _export_once(tracing) == (True, 0, 2)
        assert _attempt_threads() == 0
        behaviour["hostile"] = False
        assert await _export_once(tracing) == (True, 2, 2)
    finally:
        await asyncio.to_thread(tracing.shutdown)
