"""Red team: the SQLite queue's cancel-safe lease against a cancel that lands while ``close`` is under way
(the writer already ran the take, saw the close and stopped): nothing may stay leased by no one."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway.queue.base import NewDelivery
from gateway.queue.sqlite import SqliteQueue


async def test_a_lease_cancelled_once_the_writer_stopped_leaves_nothing_leased_by_no_one(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    queue = SqliteQueue(path, lease_seconds=300)
    await queue.start()
    await queue.enqueue([NewDelivery("default", "fn", "s", {"id": f"e{i}"}) for i in range(3)])
    writer = queue._writer
    assert writer is not None
    lease = asyncio.create_task(queue.lease(10, 60))
    await asyncio.sleep(0)  # the lease handed its take to the writer
    closing = asyncio.create_task(queue.close())
    await asyncio.sleep(0)  # the close is under way: the writer's stop is queued behind the take
    deadline = time.monotonic() + 10
    while writer.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)  # the loop held: the writer runs the take, stops and exits; nobody resumed yet
    lease.cancel()  # the caller gives up on its lease before it saw the rows
    with pytest.raises(asyncio.CancelledError):
        await lease
    await asyncio.wait_for(closing, 10)
    reopened = SqliteQueue(path, lease_seconds=300)
    await reopened.start()
    try:
        assert len(await reopened.lease(10, 0)) == 3  # none hidden for 300 s by a lease nobody holds
    finally:
        await reopened.close()

