"""A collector that trickles its answer's head (a byte every 0.2 s) against the real export path: the SDK
client's timeout is per read, so only the export's own hard deadline (SendDeadline: the client's timeout, here
1 s, plus 1 s) gives the batch up; at most one given-up export lingers, and no thread piles up per batch."""

from __future__ import annotations

import asyncio
import threading

from .test_trace_collector_hostile import _export_once, _read_request, _tracing, collector  # noqa: F401


async def _trickles_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await _read_request(reader)
        for byte in b"HTTP/1.1 200 OK\r\n" + b"x-pad: " + b"y" * 100_000:
            writer.write(bytes((byte,)))
            await writer.drain()
            await asyncio.sleep(0.2)
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def _attempt_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "eventgateway-trace-export-attempt")


async def test_a_collector_trickling_its_status_line_is_given_up_within_the_deadline(collector) -> None:  # noqa: F811
    url, _ = await collector(_trickles_head)
    tracing = _tracing(url)
    try:
        # Before SendDeadline the flush never finished (False, 0, 0): the export thread sat in the read.
        assert await _export_once(tracing) == (True, 0, 2)
        # The given-up export still sits in its read: the next batches fail at once, no new thread each.
        for _ in range(5):
            assert (await _export_once(tracing))[0] is True
        [(_, queue)] = tracing.queues
        assert queue.exported == 0 and queue.dropped_export_failed == 12
        assert _attempt_threads() <= 1
    finally:
        await asyncio.to_thread(tracing.shutdown)
