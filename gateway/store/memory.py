"""A store that lives and dies with the process (``--db memory``): for tests and throwaway runs."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

from gateway.store.base import AlreadyExists, Change, Entry, Kind, NotFound, RevisionConflict, Snapshot, Store

__all__ = ["MemoryStore"]

_Key = tuple[Kind, str, str]


class MemoryStore(Store):
    """Documents in a dict plus an unbounded change log, so a watch can resume from any revision.

    Values are deep-copied in and out: a caller mutating a dict it got back must never change what the
    store (and so every other reader) holds.
    """

    def __init__(self) -> None:
        self._documents: dict[_Key, Entry] = {}
        self._log: list[Change] = []
        self._revision = 0
        self._changed = asyncio.Condition()
        self._closed = False

    async def open(self) -> None:
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        async with self._changed:
            self._changed.notify_all()

    async def get(self, kind: Kind, space: str, id: str) -> Entry | None:
        entry = self._documents.get((kind, space, id))
        return _copy_entry(entry) if entry else None

    async def list(self, kind: Kind, space: str | None = None) -> list[Entry]:
        found = [e for (k, s, _), e in self._documents.items() if k == kind and (space is None or s == space)]
        return [_copy_entry(e) for e in sorted(found, key=lambda e: (e.space, e.id))]

    async def fingerprint(self, kind: Kind, space: str) -> tuple[int, int]:
        revisions = [e.revision for (k, s, _), e in self._documents.items() if k == kind and s == space]
        return len(revisions), max(revisions, default=0)

    async def create(self, kind: Kind, space: str, id: str, value: dict[str, Any]) -> Entry:
        if (kind, space, id) in self._documents:
            raise AlreadyExists.at(kind, space, id)
        return await self._write(kind, space, id, value)

    async def update(
        self, kind: Kind, space: str, id: str, value: dict[str, Any], expected_revision: int | None = None
    ) -> Entry:
        self._check(kind, space, id, expected_revision)
        return await self._write(kind, space, id, value)

    async def delete(self, kind: Kind, space: str, id: str, expected_revision: int | None = None) -> None:
        self._check(kind, space, id, expected_revision)
        del self._documents[(kind, space, id)]
        await self._append(Change(kind, space, id, None, self._next_revision()))

    async def snapshot(self) -> Snapshot:
        return Snapshot([_copy_entry(e) for e in self._documents.values()], self._revision)

    async def watch(self, after_revision: int) -> AsyncIterator[Change]:
        position = after_revision
        while not self._closed:
            pending = [c for c in self._log[position:]] if position <= len(self._log) else []
            for change in pending:
                position = change.revision
                yield Change(change.kind, change.space, change.id, copy.deepcopy(change.value), change.revision)
            async with self._changed:
                if self._revision == position and not self._closed:
                    await self._changed.wait()

    def _check(self, kind: Kind, space: str, id: str, expected_revision: int | None) -> None:
        entry = self._documents.get((kind, space, id))
        if entry is None:
            raise NotFound(f"{kind.value} {id!r} not found in space {space!r}")
        if expected_revision is not None and entry.revision != expected_revision:
            raise RevisionConflict(
                f"{kind.value} {id!r} is at revision {entry.revision}, not {expected_revision}")

    def _next_revision(self) -> int:
        self._revision += 1
        return self._revision

    async def _write(self, kind: Kind, space: str, id: str, value: dict[str, Any]) -> Entry:
        revision = self._next_revision()
        stored = copy.deepcopy(value)
        self._documents[(kind, space, id)] = Entry(kind, space, id, stored, revision)
        await self._append(Change(kind, space, id, copy.deepcopy(stored), revision))
        return Entry(kind, space, id, copy.deepcopy(stored), revision)

    async def _append(self, change: Change) -> None:
        # The log index of revision r is r - 1: watch() slices it by revision.
        self._log.append(change)
        async with self._changed:
            self._changed.notify_all()


def _copy_entry(entry: Entry) -> Entry:
    return Entry(entry.kind, entry.space, entry.id, copy.deepcopy(entry.value), entry.revision)
