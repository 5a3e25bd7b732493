"""The configuration store interface.

Every backend (memory, SQLite, etcd) stores the same thing: JSON documents addressed by
``(kind, space, id)``, each with a revision that grows on every write. The Events API never reads a
store directly; it reads the in-memory :class:`~gateway.config.view.ConfigView`, which a store feeds
through :meth:`Store.watch`. That keeps the event path free of I/O and lets a cluster of gateways
share one configuration with nothing but the store between them.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any


class Kind(enum.StrEnum):
    """What a stored document is. The value is the key segment used by every backend."""

    EVENT_TYPES = "eventtypes"
    FUNCTIONS = "functions"
    SUBSCRIPTIONS = "subscriptions"
    CORS = "cors"
    PLUGINS = "plugins"


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored document and the revision at which it was last written."""

    kind: Kind
    space: str
    id: str
    value: dict[str, Any]
    revision: int


@dataclass(frozen=True, slots=True)
class Change:
    """A write seen through :meth:`Store.watch`. ``value is None`` means the document was deleted."""

    kind: Kind
    space: str
    id: str
    value: dict[str, Any] | None
    revision: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything in the store at one revision: the starting point of a watch."""

    entries: list[Entry]
    revision: int


class StoreError(Exception):
    """Base class of store failures that the Config API turns into HTTP errors."""


class AlreadyExists(StoreError):
    """A create found a document at that key (HTTP 409)."""

    @classmethod
    def at(cls, kind: Kind, space: str, id: str) -> AlreadyExists:
        """The error every store raises for a create of ``id`` that found it there."""
        return cls(f"{kind.value} {id!r} already exists in space {space!r}")


class NotFound(StoreError):
    """No document at that key (HTTP 404)."""


class RevisionConflict(StoreError):
    """The document changed since the caller read it (HTTP 409): re-read and retry."""


class GuardFailed(StoreError):
    """A guarded create (:meth:`Store.create_guarded`) did not apply: what its check relied on no longer holds.

    ``created_after`` is the revision of the newest guarded create of that kind in that space when it came
    after the guard's ``checked_at`` (a mirror that reaches that revision holds what beat this create), else
    ``None`` (a required document was missing: read the store again)."""

    def __init__(self, message: str, created_after: int | None = None) -> None:
        super().__init__(message)
        self.created_after = created_after

    @classmethod
    def created_since(cls, kind: Kind, space: str, created_id: str, revision: int, checked_at: int) -> GuardFailed:
        """``created_id`` of ``kind`` was created in ``space`` at ``revision``, after the check (``checked_at``)."""
        return cls(f"{kind.value} {created_id!r} was created in space {space!r} at revision {revision}, after the "
                   f"check made at {checked_at}; check again", created_after=revision)

    @classmethod
    def missing(cls, kind: Kind, space: str, id: str, missing: list[str]) -> GuardFailed:
        """The create of ``id`` requires the documents named in ``missing``, not found in ``space``."""
        return cls(f"{kind.value} {id!r} requires {', '.join(missing) or 'nothing missing'} in space {space!r}, "
                   f"not found")


@dataclass(frozen=True, slots=True)
class CreateGuard:
    """What the check made before a create relied on, verified by the store atomically with the create.

    ``checked_at``: the check saw every document of the kind in the space created up to this store revision
    (it checked against a mirror complete up to it); the create applies only if no other guarded create of the
    same kind and space has been committed after it. ``requires``: ids of documents of the same space that
    must exist when the create commits (a subscription's event type and function)."""

    checked_at: int
    requires: tuple[tuple[Kind, str], ...] = ()


class StoreUnavailable(StoreError):
    """The backend cannot be reached (HTTP 503). The event path keeps serving from its last view."""


class Store(ABC):
    """A configuration backend. All methods are coroutines safe to call from one event loop."""

    @abstractmethod
    async def open(self) -> None:
        """Connect, create tables or check the cluster. Called once before any other method."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and stop watches."""

    @abstractmethod
    async def get(self, kind: Kind, space: str, id: str) -> Entry | None: ...

    @abstractmethod
    async def list(self, kind: Kind, space: str | None = None) -> list[Entry]:
        """All documents of a kind, in one space or (``space=None``) in every space, ordered by id."""

    @abstractmethod
    async def create(self, kind: Kind, space: str, id: str, value: dict[str, Any]) -> Entry:
        """Atomically create; raises :class:`AlreadyExists` when the key is taken."""

    @abstractmethod
    async def update(
        self, kind: Kind, space: str, id: str, value: dict[str, Any], expected_revision: int | None = None
    ) -> Entry:
        """Replace a document; raises :class:`NotFound`, or :class:`RevisionConflict` when
        ``expected_revision`` is given and the stored revision differs."""

    @abstractmethod
    async def delete(self, kind: Kind, space: str, id: str, expected_revision: int | None = None) -> None:
        """Remove a document; raises :class:`NotFound` or :class:`RevisionConflict`."""

    async def fingerprint(self, kind: Kind, space: str) -> tuple[int, int]:
        """(how many documents of ``kind`` ``space`` holds, the highest revision among them; 0 for none),
        read as :meth:`list` reads. Two states of one store's history with the same fingerprint hold the
        same documents: any write that survives raises the highest revision, and deletes alone lower the
        count. Backends answer it without reading the documents (this default reads them)."""
        entries = await self.list(kind, space)
        return len(entries), max((e.revision for e in entries), default=0)

    async def current_revision(self) -> int | None:
        """The store's revision now, read linearizably (as :meth:`list` reads), for backends that can answer
        it cheaply (etcd: one point read); ``None``: cannot tell."""
        return None

    async def unchanged_since(self, revision: int) -> bool:
        """True when no write has been committed to the store after ``revision`` (read linearizably, as
        :meth:`list` reads): a caller whose mirror has applied every change up to ``revision`` then knows
        it holds exactly what the store holds, without a :meth:`fingerprint`. False also when the backend
        cannot tell (:meth:`current_revision` is ``None``): the caller falls back to the fingerprint."""
        current = await self.current_revision()
        return current is not None and current <= revision

    guards_creates = False
    """True when :meth:`create_guarded` is implemented: the backend verifies a :class:`CreateGuard` in the
    same atomic write as the create, against every writer of the store (other processes and gateways)."""

    async def create_guarded(self, kind: Kind, space: str, id: str, value: dict[str, Any],
                             guard: CreateGuard) -> Entry:
        """:meth:`create`, applied only if ``guard`` still holds at commit: raises :class:`AlreadyExists`
        (the key is taken: checked first), else :class:`GuardFailed` (a required document is missing, or
        another guarded create of ``kind`` in ``space`` committed after ``guard.checked_at``). Only for
        backends with :attr:`guards_creates`."""
        raise NotImplementedError(f"{type(self).__name__} does not guard creates")

    @abstractmethod
    async def snapshot(self) -> Snapshot:
        """Every document and the store revision they were read at."""

    @abstractmethod
    def watch(self, after_revision: int) -> AsyncIterator[Change]:
        """Changes with a revision greater than ``after_revision``, in revision order, forever.

        A backend that cannot resume from ``after_revision`` (history compacted) raises
        :class:`WatchReset`; the view then reloads from a fresh :meth:`snapshot`.
        """


class WatchReset(StoreError):
    """The watch cannot resume from the requested revision; reload everything."""
