"""Red team: the trace export's deadline against a collector that answers 200 only after it, and a tracing
shutdown while an export is stuck on a collector that never reads (the hostile-collector harness)."""

from __future__ import annotations

import asyncio

from .test_trace_collector_hostile import (  # noqa: F401
    _OK,
    _attempt_threads,
    _big_spans,
    _export_once,
    _never_reads,
    _read_request,
    _tracing,
    collector,
)


async def _late_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads the request, stays silent 2.5 s (the exporter's timeout is 1 s), then answers 200."""
    try:
        await _read_request(reader)
        await asyncio.sleep(2.5)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def test_a_200_after_the_deadline_is_not_counted_as_exported(collector) -> None:  # noqa: F811
    url, connections = await collector(_late_ok)
    tracing = _tracing(url)
    [(_, queue)] = tracing.queues
    try:
        assert await _export_once(tracing) == (True, 0, 2)
        assert connections
        await asyncio.sleep(3)  # the late 200 arrives on the (shut) connection: still not exported
        assert (queue.exported, queue.dropped_export_failed) == (0, 2)
        assert _attempt_threads() == 0
    finally:
        await asyncio.to_thread(tracing.shutdown)


async def test_a_shutdown_while_an_export_is_stuck_ends_it(collector) -> None:  # noqa: F811
    url, connections = await collector(_never_reads)
    tracing = _tracing(url)
    [(_, queue)] = tracing.queues
    _big_spans(tracing, 8)
    batch = len(queue)
    flushing = asyncio.create_task(asyncio.to_thread(tracing.flush, 20))
    while not connections:  # the export is under way: its request is not being read
        await asyncio.sleep(0.01)
    await asyncio.wait_for(asyncio.to_thread(tracing.shutdown), 20)  # a hang guard, not a timing
    await asyncio.wait_for(flushing, 20)
    assert queue.exported == 0 and queue.dropped_export_failed == batch
    for _ in range(100):  # the given-up attempt's thread ends once its sockets are shut down
        if _attempt_threads() == 0:
            break
        await asyncio.sleep(0.1)
    assert _attempt_threads() == 0
