"""The SQLite queue's on-disk schema: what version 1 is, byte for byte, and that a file written with it
opens. The CREATE TABLE texts are generated from one column tuple (gateway/queue/sqlite.py); SQLite keeps
them verbatim in ``sqlite_master``, so a change to that tuple changes the schema of every new file: this
test then fails until `SCHEMA_VERSION` is raised (and this file gets the new version's text)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from gateway.queue.sqlite import SCHEMA_VERSION, SqliteQueue

#: Version 1's schema exactly as the first SQLite queue wrote it (its literal text, kept here on purpose:
#: never generate it).
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    space TEXT NOT NULL,
    function_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    event TEXT NOT NULL,
    system INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    not_before REAL NOT NULL,
    lease_until REAL NOT NULL,
    lease_owner TEXT,
    first_attempt_at REAL,
    last_error TEXT,
    created REAL NOT NULL
);
-- the earliest lease to expire (when an idle lease looks again)
CREATE INDEX IF NOT EXISTS deliveries_lease ON deliveries (lease_until, not_before);
-- lease order: read in this order, skipping the (few) rows leased right now, stopping at the limit
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (not_before, created);
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY,
    space TEXT NOT NULL,
    function_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    event TEXT NOT NULL,
    system INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    not_before REAL NOT NULL,
    lease_until REAL NOT NULL,
    lease_owner TEXT,
    first_attempt_at REAL,
    last_error TEXT,
    created REAL NOT NULL,
    last_attempt_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_function ON dead_letters (space, function_id);
PRAGMA user_version = 1;
"""

DELIVERY_ID = "0123456789abcdef0123456789abcdef"
DEAD_ID = "fedcba9876543210fedcba9876543210"


def _master(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute("SELECT type, name, sql FROM sqlite_master"))


def _write_v1_file(path: Path) -> None:
    """A queue file as the version-1 code made it: its schema text run by SQLite itself, one delivery due
    now and one dead letter, in WAL mode."""
    now = time.time()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA_V1)
        db.execute("INSERT INTO deliveries VALUES (?, 'space', 'fn', 'sub', ?, 0, 0, ?, 0, NULL, NULL, NULL, ?)",
                   (DELIVERY_ID, json.dumps({"id": "e1"}), now - 1, now - 1))
        db.execute("INSERT INTO dead_letters VALUES (?, 'space', 'fn', 'sub', ?, 0, 3, ?, 0, NULL, ?, 'boom', ?, ?)",
                   (DEAD_ID, json.dumps({"id": "e0"}), now - 5, now - 5, now - 5, now - 2))
    db.close()


async def test_a_new_file_gets_version_1_schema_byte_for_byte(tmp_path: Path) -> None:
    # Fails when the generated schema drifts from what version 1 wrote while SCHEMA_VERSION still says 1.
    assert SCHEMA_VERSION == 1, "a new schema version: put its literal text here and keep the v1 file test"
    reference, made = tmp_path / "v1.db", tmp_path / "queue.db"
    _write_v1_file(reference)
    queue = SqliteQueue(made)
    await queue.start()
    await queue.close()
    assert _master(made) == _master(reference)
    with sqlite3.connect(made) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


async def test_a_file_written_with_version_1_opens_and_serves(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    _write_v1_file(path)
    before = _master(path)
    queue = SqliteQueue(path)
    await queue.start()
    try:
        assert await queue.depth() == 1
        [delivery] = await queue.lease(10, 0)
        assert (delivery.id, delivery.event) == (DELIVERY_ID, {"id": "e1"})
        await queue.dead(delivery, error="gone")
        letters = await queue.dead_letters("space")
        assert [(letter.id, letter.attempts, letter.last_error) for letter in letters] == [
            (DEAD_ID, 3, "boom"), (DELIVERY_ID, 1, "gone")]
        assert await queue.redeliver("space", id=DEAD_ID) == 1
        [again] = await queue.lease(10, 0)
        assert (again.id, again.event, again.attempts) == (DEAD_ID, {"id": "e0"}, 0)
    finally:
        await queue.close()
    assert _master(path) == before  # opened as it is: nothing recreated or altered
