"""The live tail (issue 15): finished `EventRecord`\\ s handed to whoever watches, never slowing the event path.

The pipeline calls :meth:`TailHub.publish` once per finished event (after checking :attr:`TailHub.listening`,
so it builds no record when nobody listens). ``GET /v1/events/tail`` (Server-Sent Events), ``event-gateway
tail`` and the web console read it through :meth:`TailHub.subscribe`.

What a publish costs:

- nobody listening: one truth test of a list;
- listeners: per listener, its filters (attribute comparisons on the record); the record is turned into
  JSON once, for the first listener it matches that has room, and the same line goes to every listener;
  a listener whose buffer is full costs one counter increment;
- never an await, a lock or I/O: each listener has a bounded buffer (:data:`BUFFER`, 1,000 records); when
  a slow or stalled client's buffer is full, records are dropped *for that client only* and counted, and
  the next thing it reads after the records it had is ``{"dropped": n}``.

The number of listeners is capped (:data:`MAX_CLIENTS`, 64): :meth:`subscribe` raises :class:`TooManyClients`
past it (the API answers 503), so many clients cannot multiply the cost of a publish without bound.

Call :meth:`publish` on the event loop's thread (the pipeline and the delivery worker run there); from another
thread use :meth:`publish_threadsafe`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from gateway.observe.record import EventRecord

__all__ = ["BUFFER", "MAX_CLIENTS", "FilterError", "Subscription", "TailFilters", "TailHub", "TooManyClients"]

log = logging.getLogger("gateway.tail")

#: Records one client's buffer holds before records are dropped for it.
BUFFER = 1000
#: Clients one hub serves at once.
MAX_CLIENTS = 64
#: The longest ``space`` / ``type`` filter taken (names are far shorter; a record cuts texts at 500).
MAX_FILTER = 500
_STATUS = re.compile(r"(?:error|ok|[1-5][0-9][0-9]|[1-5]xx)\Z")


class TooManyClients(Exception):
    """The hub already serves :data:`MAX_CLIENTS` clients."""


class FilterError(ValueError):
    """A filter that can never be right (the message names it)."""


@dataclass(frozen=True, slots=True)
class TailFilters:
    """What a client wants: records of this ``space``, this event ``type``, this ``status`` (``error``: the
    record's ``error`` is true; ``ok``: it is false; ``404``: that exact status; ``5xx``: that class). Empty
    or ``None``: anything."""

    space: str | None = None
    type: str | None = None
    status: str | None = None

    @classmethod
    def parse(cls, space: str | None = None, type: str | None = None, status: str | None = None) -> TailFilters:
        """Checked filters from what a client sent; :class:`FilterError` naming a bad one."""
        for name, value in (("space", space), ("type", type)):
            if value is not None and len(value) > MAX_FILTER:
                raise FilterError(f"{name} filter is too long (over {MAX_FILTER} characters)")
            if value is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
                raise FilterError(f"{name} filter contains control characters")
        if status is not None and status != "":
            status = status.lower()
            if not _STATUS.match(status):
                raise FilterError("status filter must be 'error', 'ok', a status code (e.g. 404) or a class "
                                  "(e.g. 5xx)")
        return cls(space or None, type or None, status or None)

    def matcher(self) -> Callable[[EventRecord], bool] | None:
        """A predicate over records, or ``None`` when every record matches."""
        space, type_, status = self.space, self.type, self.status
        if space is None and type_ is None and status is None:
            return None
        status_match: Callable[[EventRecord], bool]
        if status is None:
            status_match = _always
        elif status == "error":
            status_match = _is_error
        elif status == "ok":
            status_match = _is_ok
        elif status.endswith("xx"):
            low = int(status[0]) * 100
            status_match = lambda r: r.status is not None and low <= r.status < low + 100  # noqa: E731
        else:
            code = int(status)
            status_match = lambda r: r.status == code  # noqa: E731

        def match(record: EventRecord) -> bool:
            return ((space is None or record.space == space) and (type_ is None or record.type == type_)
                    and status_match(record))
        return match


def _always(record: EventRecord) -> bool:
    return True


def _is_error(record: EventRecord) -> bool:
    return record.error


def _is_ok(record: EventRecord) -> bool:
    return not record.error


def encode(record: EventRecord) -> str:
    """One record as one line of JSON (ASCII only: no character of it can end an SSE or terminal line)."""
    return json.dumps(record.to_json(), separators=(",", ":"))


class Subscription:
    """One client of a :class:`TailHub`: an async iterator of JSON lines (records, and ``{"dropped": n}``
    before the first record after a gap). Registered from the moment :meth:`TailHub.subscribe` returns;
    :meth:`close` it (or use ``async with``) when done."""

    __slots__ = ("_buffer", "_closed", "_dropped", "_hub", "_match", "_records", "_wake", "dropped_total")

    def __init__(self, hub: TailHub, match: Callable[[EventRecord], bool] | None) -> None:
        self._hub = hub
        self._match = match
        # Lines, and ints: a drop count standing where the dropped records would have been.
        self._buffer: deque[str | int] = deque()
        self._records = 0  # lines in the buffer (the bound counts records, not drop marks)
        self._dropped = 0  # dropped since the last mark
        self.dropped_total = 0
        self._wake = asyncio.Event()
        self._closed = False

    def _drop(self) -> None:
        self._dropped += 1
        self.dropped_total += 1

    def _offer(self, line: str) -> None:
        if self._records >= BUFFER:
            self._drop()
            return
        if self._dropped:
            self._buffer.append(self._dropped)
            self._dropped = 0
        self._buffer.append(line)
        self._records += 1
        self._wake.set()

    def _take(self) -> str | None:
        """The next line, or ``None`` when there is nothing."""
        if self._buffer:
            item = self._buffer.popleft()
            if isinstance(item, int):
                return _dropped_line(item)
            self._records -= 1
            return item
        if self._dropped:  # read everything it had: say what was lost since, without waiting for a record
            count, self._dropped = self._dropped, 0
            return _dropped_line(count)
        return None

    @property
    def closed(self) -> bool:
        return self._closed

    async def get(self, timeout: float | None = None) -> str | None:
        """The next line; ``None`` when ``timeout`` passed first or the subscription is closed."""
        while True:
            line = self._take()
            if line is not None:
                return line
            if self._closed:
                return None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return self._take()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        while True:
            line = await self.get()
            if line is None:
                return
            yield line

    def close(self) -> None:
        """Stop receiving; a waiting :meth:`get` returns ``None``. Idempotent."""
        if not self._closed:
            self._closed = True
            self._hub._remove(self)
            self._wake.set()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def _dropped_line(count: int) -> str:
    return f'{{"dropped":{count}}}'


class TailHub:
    """Fans finished records out to the clients watching (see the module's doc)."""

    def __init__(self, *, max_clients: int = MAX_CLIENTS) -> None:
        self.max_clients = max_clients
        self._clients: list[Subscription] = []
        self._closed = False
        self.published = 0  # records handed to at least one client
        self.encode_errors = 0

    @property
    def listening(self) -> bool:
        """Whether anyone listens: when not, the pipeline builds no record at all."""
        return bool(self._clients)

    @property
    def clients(self) -> int:
        return len(self._clients)

    def publish(self, record: EventRecord) -> None:
        """Hand ``record`` to every client whose filters it matches. Never blocks, never raises."""
        clients = self._clients
        if not clients:
            return
        line: str | None = None
        for client in clients:
            match = client._match
            if match is not None:
                try:
                    if not match(record):
                        continue
                except Exception:  # a malformed record: it matches nothing
                    continue
            if client._records >= BUFFER:  # full: dropped for this client, before any work is done for it
                client._drop()
                continue
            if line is None:
                try:
                    line = encode(record)
                except Exception:
                    self.encode_errors += 1
                    if self.encode_errors == 1:
                        log.exception("tail: a record could not be turned into JSON; it is not sent")
                    return
            client._offer(line)
        if line is not None:
            self.published += 1

    def publish_threadsafe(self, loop: asyncio.AbstractEventLoop, record: EventRecord) -> None:
        """:meth:`publish` from a thread other than ``loop``'s."""
        if self._clients:
            loop.call_soon_threadsafe(self.publish, record)

    def subscribe(self, filters: TailFilters | None = None) -> Subscription:
        """A new client (receiving every record published from now on that ``filters`` match);
        :class:`TooManyClients` at the cap, ``RuntimeError`` once the hub is closed."""
        if self._closed:
            raise RuntimeError("the tail is closed")
        if len(self._clients) >= self.max_clients:
            raise TooManyClients(f"the live tail already serves {self.max_clients} clients")
        subscription = Subscription(self, (filters or TailFilters()).matcher())
        # A new list rather than an append: a publish iterating the old one is not disturbed.
        self._clients = [*self._clients, subscription]
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        self._clients = [c for c in self._clients if c is not subscription]

    def close(self) -> None:
        """End every subscription (their readers see the end) and refuse new ones: the gateway stops."""
        self._closed = True
        for client in list(self._clients):
            client.close()

    def stats(self) -> dict[str, Any]:
        return {"clients": len(self._clients), "published": self.published,
                "dropped": sum(c.dropped_total for c in self._clients)}
