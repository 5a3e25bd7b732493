"""The embedded durable delivery queue: one SQLite file (``--queue sqlite:PATH``, the default).

**Group commit.** Every write -- enqueue, lease, ack, retry, dead, redeliver, delete -- is a request
to one writer thread with its own connection. The thread takes every request pending at that moment
and runs them in *one* transaction, commits, and only then resolves each caller's future on the
caller's event loop. So concurrent enqueues share one commit (and, with ``fsync=True``, one fsync), and
``enqueue`` returns only once its deliveries are committed: all of them or none (a batch is never
split across transactions).

**What a commit survives.** The file is in WAL mode. With ``synchronous=NORMAL`` (the default) a
committed transaction is in the WAL file when ``enqueue`` returns: a killed or crashed *process*
(``kill -9``, OOM) loses nothing committed; a power loss or an OS crash may lose the last transactions
(those not yet checkpointed or synced by the OS), never corrupting the file. ``fsync=True``
(``--queue-fsync``) runs ``synchronous=FULL``: the WAL is fsynced at every commit, so a committed
delivery survives a power loss too, at the cost of one fsync per group commit.

**Several processes** (``--processes N``) share the file. ``lease`` marks rows as leased in an
immediate (write-locked) transaction -- ``UPDATE ... WHERE id IN (SELECT ... due and not leased ...
LIMIT ?) RETURNING`` -- so no two processes hold one delivery at once. Each lease call writes its own
random owner token; ``ack``/``retry``/``dead`` act only on rows still carrying that token, so a holder
whose lease expired and was taken over by another process changes nothing. A lease that expires (its
holder died or stalled) makes the delivery leasable again. ``extend`` renews a worker's leases in one
transaction (one ``UPDATE`` per owner token, guarded by the token and by the lease not having expired). Lock waits use ``busy_timeout`` and a
short backoff on ``SQLITE_BUSY``.

**Waiting.** ``lease`` returns at once when something is due; otherwise it sleeps until a local
enqueue/retry/redeliver wakes it, the earliest due time it knows of comes, or 0.2 s pass (the poll for
deliveries that other processes enqueued), up to ``wait``. ``close`` wakes every waiting ``lease``,
which returns nothing at once. A ``lease`` may be cancelled at any moment (``lease_cancel_safe``): one
cancelled after it handed its take to the writer queues, at once and behind the take, the giving back of
whatever that take leases, and the writer runs such give-backs even when a close is already under way
(a lease cancelled after the writer stopped gives its rows back itself, on a connection of its own), so
nothing stays hidden for a whole lease. An ``enqueue`` cancelled after it was handed to the writer may
still be committed (delivered, though its caller saw no 202).

**Bounds.** ``enqueue`` refuses a batch with `QueueFull` when the deliveries held plus the batch would
exceed ``max_events``. The depth is cached (updated by every transaction, re-read from the file at
most once a second inside a transaction, for the other processes' writes), so the bound costs no query
per call. The bounds shared by every backend are in `gateway.queue.base`: ids are 32 lowercase hex
characters (anything else is "not found" without a query), ``limit`` is capped at `MAX_LIMIT`, error texts
at `MAX_ERROR_CHARS`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue as thread_queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.queue.base import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_EVENTS,
    MAX_ERROR_CHARS,
    MAX_LIMIT,
    MAX_NAME_CHARS,
    DeadLetter,
    LeasedDelivery,
    NewDelivery,
    QueueError,
    QueueFull,
    QueueMisconfigured,
    QueueUnavailable,
    cap_limit,
    is_delivery_id,
)

__all__ = ["MAX_LIMIT", "SCHEMA_VERSION", "QueueSchemaError", "SqliteQueue"]

log = logging.getLogger("gateway.queue.sqlite")

#: Gives back every row one lease (its owner token) holds: what a cancelled lease took.
_GIVE_BACK = "UPDATE deliveries SET lease_until = 0, lease_owner = NULL WHERE lease_owner = ?"

#: The schema this module writes (``PRAGMA user_version``); a file with a newer one is refused.
SCHEMA_VERSION = 1
#: How often an idle ``lease`` looks at the file for deliveries other processes enqueued.
POLL_SECONDS = 0.2
#: How often the cached depth is re-read from the file (other processes' enqueues and acks).
DEPTH_REFRESH_SECONDS = 1.0
#: How long a write waits for another process's write lock before `QueueUnavailable`.
BUSY_SECONDS = 10.0
#: The columns of a delivery, in both tables: (name, SQL type and constraints). ``dead_letters`` has
#: these and ``last_attempt_at``. The CREATE TABLE texts below are made from this tuple, and SQLite keeps
#: them verbatim in the file (``sqlite_master``): any change here is a new schema and needs a higher
#: `SCHEMA_VERSION` (tests/gateway/queue/test_sqlite_schema.py holds version 1's text).
_COLUMN_DEFS: tuple[tuple[str, str], ...] = (
    ("id", "TEXT PRIMARY KEY"),
    ("space", "TEXT NOT NULL"),
    ("function_id", "TEXT NOT NULL"),
    ("subscription_id", "TEXT NOT NULL"),
    ("event", "TEXT NOT NULL"),
    ("system", "INTEGER NOT NULL"),
    ("attempts", "INTEGER NOT NULL"),
    ("not_before", "REAL NOT NULL"),
    ("lease_until", "REAL NOT NULL"),
    ("lease_owner", "TEXT"),
    ("first_attempt_at", "REAL"),
    ("last_error", "TEXT"),
    ("created", "REAL NOT NULL"),
)
_DEAD_LETTER_DEFS = (*_COLUMN_DEFS, ("last_attempt_at", "REAL NOT NULL"))

#: The delivery columns' names, for INSERT ... SELECT between the tables.
_COLUMNS = ", ".join(name for name, _ in _COLUMN_DEFS)


def _create_table(table: str, columns: Sequence[tuple[str, str]]) -> str:
    body = ",\n".join(f"    {name} {definition}" for name, definition in columns)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n{body}\n);"


_SCHEMA = f"""
{_create_table("deliveries", _COLUMN_DEFS)}
-- the earliest lease to expire (when an idle lease looks again)
CREATE INDEX IF NOT EXISTS deliveries_lease ON deliveries (lease_until, not_before);
-- lease order: read in this order, skipping the (few) rows leased right now, stopping at the limit
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (not_before, created);
{_create_table("dead_letters", _DEAD_LETTER_DEFS)}
CREATE INDEX IF NOT EXISTS dead_letters_function ON dead_letters (space, function_id);
PRAGMA user_version = {SCHEMA_VERSION};
"""


class QueueSchemaError(QueueMisconfigured):
    """The file holds a newer schema than this gateway knows (written by a newer event gateway). Unlike
    other `QueueUnavailable` errors it does not go away by itself: the gateway refuses to start on it
    (``gateway.runtime``), and a queue used anyway answers every write with it."""


@dataclass(slots=True)
class _Request:
    """One caller's write, run by the writer thread inside a group transaction."""

    operation: Callable[[sqlite3.Connection, _Txn], Any]
    #: The caller's loop and future; None for a write nobody waits for (a cancelled lease's give-back),
    #: which the writer runs even when it was queued behind the close.
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[Any] | None


@dataclass(slots=True)
class _Txn:
    """What one group transaction knows: its time, and how it changes the depth."""

    now: float
    depth: int
    delta: int = 0
    wake: bool = False


class SqliteQueue:
    """A `gateway.queue.base.DeliveryQueue` in one SQLite file (see the module docstring)."""

    durable = True
    #: True: a cancelled lease's give-back is queued behind its take, and run even during a close (see
    #: the module docstring), so the delivery worker's stop need not wait for a waiting lease.
    lease_cancel_safe = True

    def __init__(self, path: str | Path, *, max_events: int = DEFAULT_MAX_EVENTS,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS, fsync: bool = False) -> None:
        if max_events < 1:
            raise ValueError(f"--queue-max-events must be at least 1, not {max_events}")
        if not lease_seconds > 0:
            raise ValueError(f"--queue-lease must be a positive number of seconds, not {lease_seconds}")
        self.path = Path(path)
        self.max_events = int(max_events)
        self.lease_seconds = float(lease_seconds)
        self.fsync = fsync
        self.description = f"sqlite:{self.path}"
        self._requests: thread_queue.SimpleQueue[_Request | None] = thread_queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._connection: sqlite3.Connection | None = None  # the writer thread's
        self._reader: sqlite3.Connection | None = None  # reads (dead letters, counts), under _read_lock
        self._read_lock = threading.Lock()
        #: Set by the writer thread, under ``_give_back_lock``, once it took its last request: a give-back
        #: queued after that would never run (see ``_queue_give_back``).
        self._writer_stopped = False
        self._give_back_lock = threading.Lock()
        self._open_error: QueueUnavailable | None = None
        self._last_open_attempt = 0.0
        # The deliveries held, as of the last transaction (read by callers for the fast QueueFull check).
        self._depth = 0
        self._depth_read_at = 0.0
        self._closed = False
        #: Group transactions committed so far (a statistic: concurrent writes share one).
        self.commits = 0
        self._wakeup: asyncio.Event | None = None
        self._wakeup_loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the file (create it and the tables), start the writer thread. Raises
        `QueueUnavailable` when the file cannot be opened now (enqueues retry opening it, at most once
        a second), `QueueSchemaError` (one of them) when it holds a newer schema than this gateway knows."""
        self._closed = False
        self._wakeup = asyncio.Event()
        self._wakeup_loop = asyncio.get_running_loop()
        if self._writer is None:
            self._writer_stopped = False
            self._writer = threading.Thread(target=self._run_writer, name=f"queue-writer {self.path}", daemon=True)
            self._writer.start()
        await self._submit(lambda db, txn: None)

    async def close(self) -> None:
        """Finish the pending writes, stop the writer, close the file. Leased deliveries not acked
        become leasable again when their lease expires."""
        if self._closed:
            return
        self._closed = True
        self._wake()  # a waiting lease returns nothing now, not after its poll
        writer, self._writer = self._writer, None
        if writer is not None:
            self._requests.put(None)
            await asyncio.to_thread(writer.join)
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def _open(self) -> sqlite3.Connection:
        """(writer thread) Open or create the file; set the pragmas; create or check the schema."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
        except (sqlite3.Error, OSError) as exc:
            raise QueueUnavailable(f"cannot open the SQLite queue {str(self.path)!r}: {exc}") from exc
        try:
            db.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise QueueUnavailable(f"the SQLite queue {str(self.path)!r} cannot use WAL mode (got {mode})")
            db.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
            self._begin(db)
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise QueueSchemaError(
                        f"the SQLite queue {str(self.path)!r} has schema version {version}, newer than this "
                        f"gateway's {SCHEMA_VERSION}: it was written by a newer event gateway; use that one, "
                        f"or another --queue file")
                if version < SCHEMA_VERSION:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                depth = db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            reader = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None,
                                     check_same_thread=False)
            reader.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
        except QueueUnavailable:
            db.close()
            raise
        except (sqlite3.Error, OSError) as exc:
            db.close()
            raise QueueUnavailable(f"cannot open the SQLite queue {str(self.path)!r}: {exc}") from exc
        self._depth, self._depth_read_at = depth, time.monotonic()
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
            self._reader = reader
        return db

    # -- the writer thread --------------------------------------------------------------------------

    async def _submit(self, operation: Callable[[sqlite3.Connection, _Txn], Any]) -> Any:
        if self._closed or self._writer is None:
            raise QueueUnavailable(f"the SQLite queue {str(self.path)!r} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._requests.put(_Request(operation, loop, future))
        return await future

    def _run_writer(self) -> None:
        stop = False
        while not stop:
            first = self._requests.get()
            if first is None:
                break
            batch = [first]
            while True:
                try:
                    request = self._requests.get_nowait()
                except thread_queue.Empty:
                    break
                if request is None:
                    stop = True
                    break
                batch.append(request)
            self._run_batch(batch)
        # Anything submitted while closing: refused, never left waiting; but the give-backs of leases
        # cancelled just before the close are run (their rows would stay hidden for a whole lease).
        give_backs: list[_Request] = []
        with self._give_back_lock:  # a give-back queued from now on is run by its lease itself
            self._writer_stopped = True
            while True:
                try:
                    request = self._requests.get_nowait()
                except thread_queue.Empty:
                    break
                if request is None:
                    continue
                if request.future is None:
                    give_backs.append(request)
                else:
                    self._resolve(request, QueueUnavailable(f"the SQLite queue {str(self.path)!r} is closed"))
        if give_backs and self._connection is not None:
            self._run_batch(give_backs)
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

    def _ensure_open(self) -> sqlite3.Connection:
        if self._connection is not None:
            return self._connection
        now = time.monotonic()
        if self._open_error is not None and now - self._last_open_attempt < 1.0:
            raise self._open_error
        self._last_open_attempt = now
        try:
            self._connection = self._open()
        except QueueUnavailable as exc:
            self._open_error = exc
            raise
        self._open_error = None
        return self._connection

    @staticmethod
    def _begin(db: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, retried with a short backoff while another process holds the write lock
        beyond ``busy_timeout`` (SQLITE_BUSY), up to `BUSY_SECONDS` in all."""
        deadline = time.monotonic() + BUSY_SECONDS
        pause = 0.005
        while True:
            try:
                db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                busy = getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) \
                    or "locked" in str(exc)
                if not busy or time.monotonic() >= deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.1)

    def _run_batch(self, batch: list[_Request]) -> None:
        try:
            db = self._ensure_open()
        except QueueUnavailable as exc:
            for request in batch:
                self._resolve(request, exc)
            return
        results: list[Any] = []
        try:
            self._begin(db)
            now = time.time()
            if time.monotonic() - self._depth_read_at >= DEPTH_REFRESH_SECONDS:
                self._depth = db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
                self._depth_read_at = time.monotonic()
            txn = _Txn(now=now, depth=self._depth)
            for request in batch:
                try:
                    results.append(request.operation(db, txn))
                except QueueError as exc:  # this request refused (QueueFull); the others go on
                    results.append(exc)
            db.execute("COMMIT")
            self.commits += 1
        except (sqlite3.Error, OSError) as exc:
            try:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            error = QueueUnavailable(f"the SQLite queue {str(self.path)!r} cannot write: {exc}")
            for request in batch:
                self._resolve(request, error)
            return
        except BaseException as exc:  # a bug: fail every caller loudly, keep the thread alive
            try:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            for request in batch:
                self._resolve(request, exc)
            return
        self._depth = max(0, txn.depth)
        for request, result in zip(batch, results, strict=True):
            self._resolve(request, result)
        if txn.wake:
            self._wake()

    def _resolve(self, request: _Request, result: Any) -> None:
        future, loop = request.future, request.loop
        if future is None or loop is None:
            return  # nobody waits (a give-back)

        def settle() -> None:
            if future.done():  # the caller was cancelled
                return
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        try:
            loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the caller's loop is closed: nobody waits
            pass

    def _wake(self) -> None:
        event, loop = self._wakeup, self._wakeup_loop
        if event is not None and loop is not None:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:
                pass

    # -- DeliveryQueue ------------------------------------------------------------------------------

    async def enqueue(self, deliveries: Sequence[NewDelivery]) -> None:
        count = len(deliveries)
        if count == 0:
            return
        self._check_room(self._depth, count)
        rows = [(uuid.uuid4().hex, d.space, d.function_id, d.subscription_id,
                 json.dumps(d.event, separators=(",", ":"), ensure_ascii=False), int(bool(d.system)))
                for d in deliveries]

        def insert(db: sqlite3.Connection, txn: _Txn) -> None:
            self._check_room(txn.depth, count)
            db.executemany(
                "INSERT INTO deliveries (id, space, function_id, subscription_id, event, system, attempts, "
                "not_before, lease_until, created) VALUES (?, ?, ?, ?, ?, ?, 0, ?, 0, ?)",
                [row + (txn.now, txn.now) for row in rows])
            txn.depth += count
            txn.wake = True
        await self._submit(insert)

    def _check_room(self, depth: int, count: int) -> None:
        if depth + count > self.max_events:
            raise QueueFull(
                f"the delivery queue is full: {depth} deliveries wait and {count} more would exceed "
                f"--queue-max-events {self.max_events}; try again later")

    async def lease(self, limit: int, wait: float) -> list[LeasedDelivery]:
        limit = cap_limit(limit)
        if limit == 0:
            return []
        deadline = time.monotonic() + max(0.0, float(wait))
        owner = uuid.uuid4().hex
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
            self._wakeup_loop = asyncio.get_running_loop()
        wakeup = self._wakeup
        lease_seconds = self.lease_seconds

        def take(db: sqlite3.Connection, txn: _Txn) -> tuple[list[LeasedDelivery], float | None]:
            rows = db.execute(
                "UPDATE deliveries SET lease_until = ?, lease_owner = ?, "
                "first_attempt_at = COALESCE(first_attempt_at, ?) "
                "WHERE id IN (SELECT id FROM deliveries INDEXED BY deliveries_due "
                "WHERE not_before <= ? AND lease_until <= ? ORDER BY not_before, created LIMIT ?) "
                "RETURNING id, space, function_id, subscription_id, event, system, attempts, "
                "first_attempt_at, last_error, not_before, created",
                (txn.now + lease_seconds, owner, txn.now, txn.now, txn.now, limit)).fetchall()
            if rows:
                rows.sort(key=lambda row: (row[9], row[10]))
                return [LeasedDelivery(id=r[0], space=r[1], function_id=r[2], subscription_id=r[3],
                                       event=json.loads(r[4]), system=bool(r[5]), attempts=r[6],
                                       first_attempt_at=r[7], last_error=r[8], token=owner) for r in rows], None
            # Nothing due: when will something be? The earliest retry delay to end, or lease to expire.
            waiting = db.execute("SELECT not_before FROM deliveries INDEXED BY deliveries_due "
                                 "WHERE lease_until <= ? ORDER BY not_before LIMIT 1", (txn.now,)).fetchone()
            expiring = db.execute("SELECT MIN(lease_until) FROM deliveries WHERE lease_until > ?",
                                  (txn.now,)).fetchone()
            times = [t for t in (waiting and waiting[0], expiring and expiring[0]) if t is not None]
            return [], (min(times) if times else None)

        def give_back(db: sqlite3.Connection, txn: _Txn) -> None:
            if db.execute(_GIVE_BACK, (owner,)).rowcount:
                txn.wake = True

        while True:
            wakeup.clear()
            try:
                leased, next_due = await self._submit(take)
            except asyncio.CancelledError:
                # The take may have run, or will (it is queued): whatever it leases is given back right
                # behind it, by the writer, even if a close follows at once.
                self._queue_give_back(owner, give_back)
                raise
            if leased:
                return leased
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed:
                return []
            pause = min(remaining, POLL_SECONDS)
            if next_due is not None:
                pause = min(pause, max(0.0, next_due - time.time()) + 0.001)
            try:
                await asyncio.wait_for(wakeup.wait(), pause)
            except TimeoutError:
                pass
            if self._closed:
                return []

    def _queue_give_back(self, owner: str, give_back: Callable[[sqlite3.Connection, _Txn], None]) -> None:
        """Queue a cancelled lease's give-back behind its take; when the writer already stopped (the cancel
        came while or after a close ran the take), give the rows back here, on a connection of its own (one
        UPDATE, only on that path), so they are not left leased by no one."""
        with self._give_back_lock:
            if not self._writer_stopped:
                self._requests.put(_Request(give_back, None, None))
                return
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None)
            try:
                db.execute(_GIVE_BACK, (owner,))
            finally:
                db.close()
        except sqlite3.Error as exc:
            log.warning("a cancelled lease's deliveries in %r wait out their lease: %s", str(self.path), exc)

    async def ack(self, delivery: LeasedDelivery) -> None:
        if not is_delivery_id(delivery.id) or not isinstance(delivery.token, str):
            return

        def delete(db: sqlite3.Connection, txn: _Txn) -> None:
            cursor = db.execute("DELETE FROM deliveries WHERE id = ? AND lease_owner = ?",
                                (delivery.id, delivery.token))
            txn.depth -= cursor.rowcount
        await self._submit(delete)

    async def extend(self, deliveries: Sequence[LeasedDelivery]) -> list[LeasedDelivery]:
        held = [d for d in deliveries if is_delivery_id(d.id) and isinstance(d.token, str)]
        if not held:
            return list(deliveries)
        ids_by_owner: dict[str, list[str]] = {}
        for delivery in held:
            ids_by_owner.setdefault(delivery.token, []).append(delivery.id)
        lease_seconds = self.lease_seconds

        def renew(db: sqlite3.Connection, txn: _Txn) -> set[str]:
            # Guarded by the lease's owner token and its expiry: a lease that ran out (and may have been
            # leased again, under another token) is not renewed, nor taken back.
            renewed: set[str] = set()
            for owner, ids in ids_by_owner.items():
                rows = db.execute(
                    "UPDATE deliveries SET lease_until = ? WHERE lease_owner = ? AND lease_until > ? "
                    "AND id IN (SELECT value FROM json_each(?)) RETURNING id",
                    (txn.now + lease_seconds, owner, txn.now, json.dumps(ids))).fetchall()
                renewed.update(row[0] for row in rows)
            return renewed
        renewed: set[str] = await self._submit(renew)
        return [d for d in deliveries if d.id not in renewed or not isinstance(d.token, str)]

    async def retry(self, delivery: LeasedDelivery, *, delay: float, error: str) -> None:
        if not is_delivery_id(delivery.id) or not isinstance(delivery.token, str):
            return
        delay = max(0.0, float(delay))

        def update(db: sqlite3.Connection, txn: _Txn) -> None:
            cursor = db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, not_before = ?, lease_until = 0, "
                "lease_owner = NULL, last_error = ?, first_attempt_at = COALESCE(first_attempt_at, ?) "
                "WHERE id = ? AND lease_owner = ?",
                (txn.now + delay, str(error)[:MAX_ERROR_CHARS], txn.now, delivery.id, delivery.token))
            if cursor.rowcount:
                txn.wake = True
        await self._submit(update)

    async def dead(self, delivery: LeasedDelivery, *, error: str) -> None:
        if not is_delivery_id(delivery.id) or not isinstance(delivery.token, str):
            return

        def bury(db: sqlite3.Connection, txn: _Txn) -> None:
            cursor = db.execute(
                f"INSERT INTO dead_letters ({_COLUMNS}, last_attempt_at) "
                "SELECT id, space, function_id, subscription_id, event, system, attempts + 1, not_before, 0, "
                "NULL, COALESCE(first_attempt_at, ?), ?, created, ? "
                "FROM deliveries WHERE id = ? AND lease_owner = ?",
                (txn.now, str(error)[:MAX_ERROR_CHARS], txn.now, delivery.id, delivery.token))
            if cursor.rowcount:
                db.execute("DELETE FROM deliveries WHERE id = ?", (delivery.id,))
                txn.depth -= 1
        await self._submit(bury)

    async def dead_letters(self, space: str, function_id: str | None = None,
                           limit: int = MAX_LIMIT) -> list[DeadLetter]:
        limit = cap_limit(limit)
        if limit == 0 or len(space) > MAX_NAME_CHARS or (function_id is not None
                                                            and len(function_id) > MAX_NAME_CHARS):
            return []
        query = ("SELECT id, space, function_id, subscription_id, event, attempts, last_error, "
                 "first_attempt_at, last_attempt_at FROM dead_letters WHERE space = ?")
        params: list[Any] = [space]
        if function_id is not None:
            query += " AND function_id = ?"
            params.append(function_id)
        query += " ORDER BY last_attempt_at, created LIMIT ?"
        params.append(limit)
        rows = await self._read(lambda db: db.execute(query, params).fetchall())
        return [DeadLetter(id=r[0], space=r[1], function_id=r[2], subscription_id=r[3], event=json.loads(r[4]),
                           attempts=r[5], last_error=r[6] or "", first_attempt_at=r[7], last_attempt_at=r[8])
                for r in rows]

    async def redeliver(self, space: str, *, id: str | None = None, function_id: str | None = None) -> int:
        if id is None and function_id is None:
            raise ValueError("redeliver needs an id or a function_id")
        if len(space) > MAX_NAME_CHARS:
            return 0
        where = "space = ?"
        params: tuple[str, ...] = (space,)
        if id is not None:
            if not is_delivery_id(id):
                return 0
            where, params = where + " AND id = ?", params + (id,)
        if function_id is not None:
            if len(function_id) > MAX_NAME_CHARS:
                return 0
            where, params = where + " AND function_id = ?", params + (function_id,)

        def revive(db: sqlite3.Connection, txn: _Txn) -> int:
            cursor = db.execute(
                f"INSERT INTO deliveries ({_COLUMNS}) "
                "SELECT id, space, function_id, subscription_id, event, system, 0, ?, 0, NULL, NULL, NULL, ? "
                f"FROM dead_letters WHERE {where}", (txn.now, txn.now, *params))
            moved = cursor.rowcount
            if moved:
                db.execute(f"DELETE FROM dead_letters WHERE {where}", params)
                txn.depth += moved
                txn.wake = True
            return moved
        return int(await self._submit(revive))

    async def delete_dead(self, space: str, id: str) -> bool:
        if not is_delivery_id(id) or len(space) > MAX_NAME_CHARS:
            return False

        def forget(db: sqlite3.Connection, txn: _Txn) -> bool:
            return db.execute("DELETE FROM dead_letters WHERE space = ? AND id = ?", (space, id)).rowcount > 0
        return bool(await self._submit(forget))

    async def depth(self) -> int:
        """The deliveries held, counted in the file now (all processes)."""
        count = int(await self._read(lambda db: db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]))
        return count

    async def dead_counts(self) -> dict[tuple[str, str], int]:
        rows = await self._read(lambda db: db.execute(
            "SELECT space, function_id, COUNT(*) FROM dead_letters GROUP BY space, function_id").fetchall())
        return {(space, function_id): count for space, function_id, count in rows}

    async def _read(self, operation: Callable[[sqlite3.Connection], Any]) -> Any:
        if self._closed:
            raise QueueUnavailable(f"the SQLite queue {str(self.path)!r} is closed")
        if self._reader is None:  # not open yet (start failed): try through the writer
            await self._submit(lambda db, txn: None)

        def run() -> Any:
            with self._read_lock:
                if self._reader is None:
                    raise QueueUnavailable(f"the SQLite queue {str(self.path)!r} is not open")
                try:
                    return operation(self._reader)
                except sqlite3.Error as exc:
                    raise QueueUnavailable(f"the SQLite queue {str(self.path)!r} cannot be read: {exc}") from exc
        return await asyncio.to_thread(run)
