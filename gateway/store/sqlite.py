"""The embedded default store: one SQLite file, shared safely by several processes.

Why SQLite: it persists across restarts with no server to run, and its file locking lets the
``--processes N`` workers of one gateway share a single configuration. Every write appends a row to a
``changes`` log whose autoincrement key *is* the store revision; :meth:`SQLiteStore.watch` polls that log
(every ``poll_interval`` seconds), so a write made by any process reaches every other process's view
well within a second. The log is pruned to its last ``history`` rows; a watcher that fell further
behind gets :class:`~gateway.store.base.WatchReset` and reloads from a snapshot.

Creates are guarded (:meth:`SQLiteStore.create_guarded`): each process checks a subscription against its own
view, which may not yet hold what another process has just written, so a guarded create's ``BEGIN IMMEDIATE``
transaction verifies what that check relied on before it writes: the id free, the required documents present,
and no create of the kind in the space committed after the check's revision (the ``create_guards`` row of the
kind and space holds the revision of the latest one; every create's transaction, guarded or not, bumps it).

The standard ``sqlite3`` module is blocking, so each call runs in a worker thread
(:func:`asyncio.to_thread`) on one connection guarded by a lock.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from gateway.store.base import (
    AlreadyExists,
    Change,
    CreateGuard,
    Entry,
    GuardFailed,
    Kind,
    NotFound,
    RevisionConflict,
    Snapshot,
    Store,
    StoreUnavailable,
    WatchReset,
)

__all__ = ["SQLiteStore"]

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL,
    space TEXT NOT NULL,
    id TEXT NOT NULL,
    value TEXT NOT NULL,
    revision INTEGER NOT NULL,
    PRIMARY KEY (kind, space, id)
);
CREATE INDEX IF NOT EXISTS documents_revision ON documents (kind, space, revision);
CREATE TABLE IF NOT EXISTS changes (
    revision INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    space TEXT NOT NULL,
    id TEXT NOT NULL,
    value TEXT
);
CREATE TABLE IF NOT EXISTS create_guards (
    kind TEXT NOT NULL,
    space TEXT NOT NULL,
    revision INTEGER NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (kind, space)
);
"""
# create_guards: one row per kind and space, the revision (and id) of the latest create there. It holds
# no document: reads, snapshots and the change log never see it.


class SQLiteStore(Store):
    def __init__(self, path: str | Path, *, poll_interval: float = 0.1, history: int = 10_000) -> None:
        self.path = Path(path)
        self.poll_interval = poll_interval
        self.history = history
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._closed = asyncio.Event()
        # Set after each local write so this process's own watchers pick it up without waiting a poll.
        self._written = asyncio.Event()

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=10000")
            connection.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open SQLite store {str(self.path)!r}: {exc}") from exc
        self._connection = connection

    async def close(self) -> None:
        self._closed.set()
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await asyncio.to_thread(self._close_connection, connection)

    def _close_connection(self, connection: sqlite3.Connection) -> None:
        with self._lock:
            connection.close()

    async def get(self, kind: Kind, space: str, id: str) -> Entry | None:
        def read(db: sqlite3.Connection) -> Entry | None:
            row = db.execute(
                "SELECT value, revision FROM documents WHERE kind=? AND space=? AND id=?",
                (kind.value, space, id)).fetchone()
            return Entry(kind, space, id, json.loads(row[0]), row[1]) if row else None
        return await self._run(read)

    async def list(self, kind: Kind, space: str | None = None) -> list[Entry]:
        def read(db: sqlite3.Connection) -> list[Entry]:
            if space is None:
                rows = db.execute("SELECT space, id, value, revision FROM documents WHERE kind=? "
                                  "ORDER BY space, id", (kind.value,)).fetchall()
            else:
                rows = db.execute("SELECT space, id, value, revision FROM documents WHERE kind=? AND space=? "
                                  "ORDER BY id", (kind.value, space)).fetchall()
            return [Entry(kind, s, i, json.loads(v), r) for s, i, v, r in rows]
        return await self._run(read)

    async def fingerprint(self, kind: Kind, space: str) -> tuple[int, int]:
        def read(db: sqlite3.Connection) -> tuple[int, int]:
            # Answered from the documents_revision index alone.
            count, highest = db.execute("SELECT COUNT(*), MAX(revision) FROM documents WHERE kind=? AND space=?",
                                        (kind.value, space)).fetchone()
            return count, highest or 0
        return await self._run(read)

    async def create(self, kind: Kind, space: str, id: str, value: dict[str, Any]) -> Entry:
        def write(db: sqlite3.Connection) -> Entry:
            if _current_revision(db, kind, space, id) is not None:
                raise AlreadyExists.at(kind, space, id)
            return _record_create(db, _put(db, kind, space, id, value))
        return await self._run(write, transaction=True)

    guards_creates = True

    async def create_guarded(self, kind: Kind, space: str, id: str, value: dict[str, Any],
                             guard: CreateGuard) -> Entry:
        """One ``BEGIN IMMEDIATE`` transaction (the write lock held from the first check to the commit, so no
        other process's write can come between): the id free (else :class:`AlreadyExists`), no create of
        ``kind`` in ``space`` after ``guard.checked_at`` (the ``create_guards`` row), each required document
        present (else :class:`GuardFailed`); then the document and the guard row at the new revision. A plain
        :meth:`create` moves the guard row too, so this also fails after one of those."""
        def write(db: sqlite3.Connection) -> Entry:
            if _current_revision(db, kind, space, id) is not None:
                raise AlreadyExists.at(kind, space, id)
            latest = db.execute("SELECT revision, id FROM create_guards WHERE kind=? AND space=?",
                                (kind.value, space)).fetchone()
            if latest is not None and latest[0] > guard.checked_at:
                raise GuardFailed.created_since(kind, space, latest[1], latest[0], guard.checked_at)
            missing = [f"{required_kind.value} {required_id!r}" for required_kind, required_id in guard.requires
                       if _current_revision(db, required_kind, space, required_id) is None]
            if missing:
                raise GuardFailed.missing(kind, space, id, missing)
            return _record_create(db, _put(db, kind, space, id, value))
        return await self._run(write, transaction=True)

    async def current_revision(self) -> int:
        """The change log's last revision (``sqlite_sequence``, one row), read outside a transaction: in WAL
        mode that is the latest commit of any process."""
        return await self._run(_head_revision)

    async def update(
        self, kind: Kind, space: str, id: str, value: dict[str, Any], expected_revision: int | None = None
    ) -> Entry:
        def write(db: sqlite3.Connection) -> Entry:
            _check(db, kind, space, id, expected_revision)
            return _put(db, kind, space, id, value)
        return await self._run(write, transaction=True)

    async def delete(self, kind: Kind, space: str, id: str, expected_revision: int | None = None) -> None:
        def write(db: sqlite3.Connection) -> None:
            _check(db, kind, space, id, expected_revision)
            db.execute("DELETE FROM documents WHERE kind=? AND space=? AND id=?", (kind.value, space, id))
            db.execute("INSERT INTO changes (kind, space, id, value) VALUES (?, ?, ?, NULL)",
                       (kind.value, space, id))
        await self._run(write, transaction=True)

    async def snapshot(self) -> Snapshot:
        def read(db: sqlite3.Connection) -> Snapshot:
            # One read transaction, so the documents and the revision belong together.
            db.execute("BEGIN")
            try:
                rows = db.execute("SELECT kind, space, id, value, revision FROM documents").fetchall()
                revision = _head_revision(db)
            finally:
                db.execute("COMMIT")
            return Snapshot([Entry(Kind(k), s, i, json.loads(v), r) for k, s, i, v, r in rows], revision)
        return await self._run(read)

    async def watch(self, after_revision: int) -> AsyncIterator[Change]:
        position = after_revision
        while not self._closed.is_set():
            self._written.clear()  # before reading: a write landing after the read wakes the wait below
            changes = await self._run(functools.partial(_changes_after, revision=position))
            for change in changes:
                position = change.revision
                yield change
            if not changes:
                try:
                    await asyncio.wait_for(_first(self._closed.wait(), self._written.wait()), self.poll_interval)
                except TimeoutError:
                    pass

    async def _run(self, operation: Callable[[sqlite3.Connection], _T], *, transaction: bool = False) -> _T:
        result = await asyncio.to_thread(self._run_locked, operation, transaction)
        if transaction:
            self._written.set()
        return result

    def _run_locked(self, operation: Callable[[sqlite3.Connection], _T], transaction: bool) -> _T:
        with self._lock:
            db = self._connection
            if db is None:
                raise StoreUnavailable(f"SQLite store {str(self.path)!r} is not open")
            try:
                if not transaction:
                    return operation(db)
                # IMMEDIATE takes the write lock up front: the existence check and the write cannot be
                # interleaved with another process's write.
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = operation(db)
                    _prune(db, self.history)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite store {str(self.path)!r} failed: {exc}") from exc


async def _first(*waits: Any) -> None:
    """Return when the first of several awaitables completes, cancelling the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _current_revision(db: sqlite3.Connection, kind: Kind, space: str, id: str) -> int | None:
    row = db.execute("SELECT revision FROM documents WHERE kind=? AND space=? AND id=?",
                     (kind.value, space, id)).fetchone()
    return row[0] if row else None


def _check(db: sqlite3.Connection, kind: Kind, space: str, id: str, expected_revision: int | None) -> None:
    revision = _current_revision(db, kind, space, id)
    if revision is None:
        raise NotFound(f"{kind.value} {id!r} not found in space {space!r}")
    if expected_revision is not None and revision != expected_revision:
        raise RevisionConflict(f"{kind.value} {id!r} is at revision {revision}, not {expected_revision}")


def _put(db: sqlite3.Connection, kind: Kind, space: str, id: str, value: dict[str, Any]) -> Entry:
    encoded = json.dumps(value, separators=(",", ":"))
    cursor = db.execute("INSERT INTO changes (kind, space, id, value) VALUES (?, ?, ?, ?)",
                        (kind.value, space, id, encoded))
    revision = cursor.lastrowid
    assert revision is not None
    db.execute("INSERT INTO documents (kind, space, id, value, revision) VALUES (?, ?, ?, ?, ?) "
               "ON CONFLICT (kind, space, id) DO UPDATE SET value=excluded.value, revision=excluded.revision",
               (kind.value, space, id, encoded, revision))
    return Entry(kind, space, id, json.loads(encoded), revision)


def _record_create(db: sqlite3.Connection, entry: Entry) -> Entry:
    """Every create, guarded or not, moves its kind and space's ``create_guards`` row to its revision: a guarded
    create checked before it then fails, whichever way it was written."""
    db.execute("INSERT INTO create_guards (kind, space, revision, id) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (kind, space) DO UPDATE SET revision=excluded.revision, id=excluded.id",
               (entry.kind.value, entry.space, entry.revision, entry.id))
    return entry


def _head_revision(db: sqlite3.Connection) -> int:
    # sqlite_sequence keeps the last autoincrement value even after the log is pruned.
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name='changes'").fetchone()
    return row[0] if row else 0


def _changes_after(db: sqlite3.Connection, revision: int) -> list[Change]:
    rows = db.execute("SELECT revision, kind, space, id, value FROM changes WHERE revision > ? "
                      "ORDER BY revision LIMIT 1000", (revision,)).fetchall()
    if rows and rows[0][0] != revision + 1:
        oldest = db.execute("SELECT MIN(revision) FROM changes").fetchone()[0]
        if oldest is not None and oldest > revision + 1:
            raise WatchReset(f"changes after revision {revision} were pruned (oldest kept: {oldest})")
    return [Change(Kind(k), s, i, json.loads(v) if v is not None else None, r) for r, k, s, i, v in rows]


def _prune(db: sqlite3.Connection, history: int) -> None:
    db.execute("DELETE FROM changes WHERE revision <= (SELECT MAX(revision) FROM changes) - ?", (history,))
