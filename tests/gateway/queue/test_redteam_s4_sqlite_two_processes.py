"""Red team: two processes share one SQLite queue file, each enqueueing, leasing and acking while its leases
are cancelled at random moments (before, during and after the writer's take) and its queue is closed right
after; then nothing is lost and nothing is left leased by no one: every delivery is acked once or leasable at
once from a fresh queue."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

from gateway.queue.base import NewDelivery
from gateway.queue.sqlite import MAX_LIMIT, SqliteQueue

ROUNDS = 60


async def churn(path: str, name: str, seed: int) -> dict[str, list[str]]:
    """Enqueue 3 a round, lease with a cancel at a random moment, ack whatever came; close at once."""
    rng = random.Random(seed)
    queue = SqliteQueue(path, lease_seconds=300)
    await queue.start()
    enqueued: list[str] = []
    acked: list[str] = []
    for round in range(ROUNDS):
        ids = [f"{name}-{round}-{i}" for i in range(3)]
        await queue.enqueue([NewDelivery("default", "fn", "s", {"id": id}) for id in ids])
        enqueued += ids
        task = asyncio.create_task(queue.lease(rng.randint(1, 5), rng.choice([0, 0.05, 60])))
        for _ in range(rng.randint(0, 4)):
            await asyncio.sleep(0)
        if rng.random() < 0.5:
            await asyncio.sleep(rng.random() * 0.004)
        if not task.done():
            task.cancel()
        try:
            leased = await task
        except asyncio.CancelledError:
            continue
        for delivery in leased:
            await queue.ack(delivery)
            acked.append(delivery.event["id"])
    await queue.close()
    return {"enqueued": enqueued, "acked": acked}


_CHILD = """
import asyncio, json, sys
sys.path.insert(0, {root!r})
from tests.gateway.queue.test_redteam_s4_sqlite_two_processes import churn
print(json.dumps(asyncio.run(churn({path!r}, "child", 7))))
"""


async def test_two_processes_cancelling_leases_at_random_lose_nothing_and_hide_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "queue.db")
    first = SqliteQueue(path)  # the file and its schema before both processes start
    await first.start()
    await first.close()
    root = str(Path(__file__).resolve().parents[3])
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD.format(root=root, path=path), stdout=subprocess.PIPE, cwd=root)
    mine = await churn(path, "parent", 3)
    out, _ = await asyncio.wait_for(child.communicate(), 120)  # a hang guard
    assert child.returncode == 0
    theirs = json.loads(out)
    enqueued = set(mine["enqueued"]) | set(theirs["enqueued"])
    acked = mine["acked"] + theirs["acked"]
    assert len(acked) == len(set(acked))  # none delivered (acked) twice
    with sqlite3.connect(path) as db:
        stored = db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
    queue = SqliteQueue(path, lease_seconds=300)
    await queue.start()
    try:
        remaining: list[str] = []
        while leased := await queue.lease(MAX_LIMIT, 0):
            remaining += [delivery.event["id"] for delivery in leased]
    finally:
        await queue.close()
    assert len(remaining) == stored  # every stored delivery leasable at once: none leased by no one
    assert set(acked) | set(remaining) == enqueued and not set(acked) & set(remaining)  # nothing lost
