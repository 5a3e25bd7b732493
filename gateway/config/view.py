"""The in-memory copy of the configuration that the Events API reads.

The event path must never wait on storage, so it reads only this view. The view loads a
:meth:`~gateway.store.base.Store.snapshot` at start, then follows :meth:`~gateway.store.base.Store.watch`
in a background task. When a watch cannot resume (:class:`~gateway.store.base.WatchReset`, or the store
dropped out for a while), the view reloads a fresh snapshot and emits the *differences* as changes, so
listeners never miss a delete and no stale entry survives.

Documents are held as the frozen pydantic models of :mod:`gateway.config.models`, secrets included
(providers need them to call functions).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from gateway.common import wait_with_timeout
from gateway.config.models import CORS, EventType, Function, Subscription
from gateway.metrics import Metrics
from gateway.store.base import Change, Kind, Snapshot, Store, StoreError, WatchReset

__all__ = ["ConfigView", "Listener"]

log = logging.getLogger(__name__)

Listener = Callable[[Change], None]

_MODELS: dict[Kind, type[BaseModel]] = {
    Kind.EVENT_TYPES: EventType,
    Kind.FUNCTIONS: Function,
    Kind.SUBSCRIPTIONS: Subscription,
    Kind.CORS: CORS,
}

_RETRY_AFTER_STORE_ERROR = 1.0


class ConfigView:
    """Every document of a store, kept current by a watch. Start it with :meth:`start`."""

    def __init__(self, store: Store, metrics: Metrics | None = None) -> None:
        self._store = store
        self._metrics = metrics
        # kind -> space -> id -> model (or, for plugins, the raw dict).
        self._documents: dict[Kind, dict[str, dict[str, Any]]] = {k: defaultdict(dict) for k in Kind}
        self._generations: dict[str, int] = defaultdict(int)
        # kind -> space -> ids of stored documents that do not validate (held by the store, not here).
        self._refused: dict[Kind, dict[str, set[str]]] = {k: defaultdict(set) for k in Kind}
        self._listeners: list[Listener] = []
        self._revision = 0
        self._revision_changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    # -- reading -------------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The store revision the view has applied up to."""
        return self._revision

    def event_type(self, space: str, name: str) -> EventType | None:
        return self._documents[Kind.EVENT_TYPES].get(space, {}).get(name)

    def function(self, space: str, id: str) -> Function | None:
        return self._documents[Kind.FUNCTIONS].get(space, {}).get(id)

    def subscription(self, space: str, id: str) -> Subscription | None:
        return self._documents[Kind.SUBSCRIPTIONS].get(space, {}).get(id)

    def subscriptions(self, space: str) -> list[Subscription]:
        return list(self._documents[Kind.SUBSCRIPTIONS].get(space, {}).values())

    def cors_config(self, space: str, id: str) -> CORS | None:
        return self._documents[Kind.CORS].get(space, {}).get(id)

    def cors(self, space: str) -> list[CORS]:
        return list(self._documents[Kind.CORS].get(space, {}).values())

    def event_types(self, space: str) -> list[EventType]:
        return list(self._documents[Kind.EVENT_TYPES].get(space, {}).values())

    def functions(self, space: str) -> list[Function]:
        return list(self._documents[Kind.FUNCTIONS].get(space, {}).values())

    def plugins(self) -> dict[str, dict[str, Any]]:
        """Documents of the PLUGINS kind by id (raw dicts: their schema belongs to the plugin manager).
        Plugins are gateway-wide, so their space is ignored."""
        merged: dict[str, dict[str, Any]] = {}
        for documents in self._documents[Kind.PLUGINS].values():
            merged.update(documents)
        return merged

    def spaces(self) -> set[str]:
        """Every space holding at least one event type, function, subscription or CORS document."""
        return {space for kind, by_space in self._documents.items() if kind is not Kind.PLUGINS
                for space, documents in by_space.items() if documents}

    def generation(self, space: str) -> int:
        """A counter that moves whenever anything in ``space`` changes: lets a consumer (the routing
        table) rebuild lazily instead of on every change."""
        return self._generations.get(space, 0)  # .get: a space nobody configured leaves no entry

    def refused(self, kind: Kind, space: str) -> set[str]:
        """Ids of documents the store holds in ``space`` that the view left out because they do not
        validate (logged when applied): with :meth:`subscriptions` and the like, every stored id."""
        return set(self._refused[kind].get(space, ()))

    def has(self, kind: Kind, space: str, id: str) -> bool:
        return id in self._documents[kind].get(space, {})

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(change)`` after each applied change (also for the differences emitted by a
        reload). Listeners run on the event loop and must not block or raise."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    async def wait_for_revision(self, revision: int, timeout: float = 5.0) -> bool:
        """Wait until the view has applied ``revision``; False on timeout. The Config API calls it after
        each write so a client sees its own write on this gateway's Events API at once."""
        if self._revision >= revision:
            return True
        return await wait_with_timeout(self._revision_changed, lambda: self._revision >= revision, timeout)

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until ``condition()`` holds after some applied change; False on timeout. Used after a
        delete, whose revision the store does not return."""
        if condition():
            return True
        return await wait_with_timeout(self._revision_changed, condition, timeout)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the first snapshot (so the view is complete before any request), then follow changes."""
        await self._reload(await self._store.snapshot())
        self._task = asyncio.create_task(self._follow(), name="config-view-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _follow(self) -> None:
        while True:
            try:
                async for change in self._store.watch(self._revision):
                    await self._apply(change)
                return  # the store was closed
            except WatchReset as reset:
                log.warning("configuration watch reset (%s): reloading a snapshot", reset)
            except StoreError as error:
                log.error("configuration store unavailable (%s): serving the last known configuration", error)
                if self._metrics:
                    self._metrics.store_up.set(0)
                await asyncio.sleep(_RETRY_AFTER_STORE_ERROR)
            try:
                await self._reload(await self._store.snapshot())
            except StoreError as error:
                log.error("cannot reload the configuration: %s", error)
                await asyncio.sleep(_RETRY_AFTER_STORE_ERROR)

    async def _reload(self, snapshot: Snapshot) -> None:
        fresh: dict[tuple[Kind, str, str], dict[str, Any]] = {(e.kind, e.space, e.id): e.value
                                                                for e in snapshot.entries}
        held = {(kind, space, id) for kind, by_space in self._documents.items()
                for space, documents in by_space.items() for id in documents}
        changes = [Change(kind, space, id, None, snapshot.revision) for kind, space, id in held - fresh.keys()]
        changes += [Change(kind, space, id, value, snapshot.revision) for (kind, space, id), value in fresh.items()
                    if self._differs(kind, space, id, value)]
        for change in changes:
            self._store_change(change)
        await self._advance(snapshot.revision)
        if self._metrics:
            self._metrics.store_up.set(1)
        for change in changes:
            self._notify(change)
        self._update_gauges()

    async def _apply(self, change: Change) -> None:
        self._store_change(change)
        await self._advance(change.revision)
        self._notify(change)
        self._update_gauges()

    def _differs(self, kind: Kind, space: str, id: str, value: dict[str, Any]) -> bool:
        current = self._documents[kind].get(space, {}).get(id)
        if current is None:
            return True
        return (current.model_dump(by_alias=True) if isinstance(current, BaseModel) else current) != value

    def _store_change(self, change: Change) -> None:
        documents = self._documents[change.kind][change.space]
        self._refused[change.kind].get(change.space, set()).discard(change.id)
        if change.value is None:
            documents.pop(change.id, None)
        else:
            model = _MODELS.get(change.kind)
            try:
                documents[change.id] = model.model_validate(change.value) if model else change.value
            except ValidationError as error:
                # Written by something other than the Config API (another version, a hand edit):
                # keep serving everything else.
                log.error("ignoring invalid stored %s %r in space %r: %s", change.kind.value, change.id,
                          change.space, error)
                documents.pop(change.id, None)
                self._refused[change.kind][change.space].add(change.id)
        self._generations[change.space] += 1

    async def _advance(self, revision: int) -> None:
        async with self._revision_changed:
            self._revision = max(self._revision, revision)
            self._revision_changed.notify_all()

    def _notify(self, change: Change) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:  # a broken listener must not stop the view
                log.exception("configuration listener %r failed", listener)

    def _update_gauges(self) -> None:
        if not self._metrics:
            return
        gauges = {Kind.EVENT_TYPES: self._metrics.eventtypes, Kind.FUNCTIONS: self._metrics.functions,
                  Kind.SUBSCRIPTIONS: self._metrics.subscriptions, Kind.CORS: self._metrics.cors}
        for kind, gauge in gauges.items():
            for space, documents in self._documents[kind].items():
                gauge.labels(space=space).set(len(documents))
