"""The rules every configuration change passes, whichever API makes it.

This is upstream's validation and cross-reference logic (an event type in use cannot be deleted, a
subscription needs its event type and function, sync paths may not conflict, only a subscription's
metadata may change...) over a :class:`~gateway.store.base.Store`. It reads the store, not the view, so
checks see the latest committed state even when another gateway made the last write.

Secrets: the stored form of a function keeps its provider credentials (the event path needs them), but
:func:`redact` replaces each one set with :data:`~gateway.config.models.SECRET_MARKER` in anything
returned to a client. A PUT that sends the marker back keeps the stored secret, so a client can GET,
edit and PUT a function without knowing its credentials.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from gateway.common import go_quote
from gateway.config.ids import canonical_id
from gateway.config.models import (
    CORS,
    PROVIDERS,
    SECRET_MARKER,
    EventType,
    Function,
    HTTPProviderConfig,
    Model,
    RetryPolicy,
    Subscription,
    url_password,
    with_url_password,
)
from gateway.events.cloudevents import json_type
from gateway.config.upstream_paths import upstream_path_conflict
from gateway.routing.conflicts import ConflictIndex, SpaceConflicts
from gateway.routing.path_tree import find_conflict
from gateway.store.base import AlreadyExists, CreateGuard, GuardFailed, Kind, NotFound, RevisionConflict, Store
from gateway.config.view import ConfigView

__all__ = [
    "ConfigConflict",
    "ConfigError",
    "ConfigInUse",
    "ConfigNotFound",
    "ConfigService",
    "InvalidConfig",
    "StoredDocumentInvalid",
    "metadata_filters",
    "redact",
]

M = TypeVar("M", bound=Model)

log = logging.getLogger("gateway.config")


class ConfigError(Exception):
    """A change the rules refuse; the message is what the client reads."""


class InvalidConfig(ConfigError):
    """The body does not validate or refers to something missing (HTTP 400)."""


class ConfigInUse(ConfigError):
    """The document is referenced by another one and cannot be deleted (HTTP 400, as upstream)."""


class ConfigNotFound(ConfigError):
    """No such document (HTTP 404)."""


class ConfigConflict(ConfigError):
    """A document with that id exists already (HTTP 409)."""


class StoredDocumentInvalid(ConfigError):
    """A stored document no longer validates (written under an older version's looser rules): the
    server's data is at fault, not the request (HTTP 500), and the message says which and why."""


@dataclass(frozen=True)
class _Resource:
    kind: Kind
    model: type[Model]
    id_field: str  # the Python field name holding the document's id
    label: str  # as upstream's messages name it
    exists: str = "already exists"  # upstream's words for a 409


_EVENT_TYPES = _Resource(Kind.EVENT_TYPES, EventType, "name", "Event Type")
_FUNCTIONS = _Resource(Kind.FUNCTIONS, Function, "function_id", "Function", "already registered")
_SUBSCRIPTIONS = _Resource(Kind.SUBSCRIPTIONS, Subscription, "subscription_id", "Subscription")
_CORS = _Resource(Kind.CORS, CORS, "cors_id", "CORS configuration")


def metadata_filters(query: Mapping[str, str]) -> dict[str, str]:
    """``?metadata.team=a&metadata.env=prod`` -> ``{"team": "a", "env": "prod"}`` (matched with AND)."""
    return {key[len("metadata."):]: value for key, value in query.items() if key.startswith("metadata.")}


def redact(document: Model) -> dict[str, Any]:
    """The JSON a client may see: provider secrets replaced by the marker, no empty ``metadata``."""
    data = document.to_json()
    if not data.get("metadata"):
        data.pop("metadata", None)  # upstream's `json:"metadata,omitempty"`, on all four resources
    if isinstance(document, Function):
        provider = data["provider"]
        for field in type(document.provider).SECRET_FIELDS:
            if provider.get(field):
                provider[field] = SECRET_MARKER
        if isinstance(document.provider, HTTPProviderConfig) and url_password(document.provider.url):
            provider["url"] = with_url_password(document.provider.url, SECRET_MARKER)
    return data


#: How long a subscription create waits for this gateway's view to catch up with the store (a write made
#: through another gateway or process, not yet applied here) before checking paths the slow way instead.
CONFLICT_CATCH_UP_SECONDS = 0.5

#: How many times a subscription create is checked before it gives up with a 409, when each time its guarded
#: transaction finds that another subscription was created in the space after its check (each such failure
#: means another create succeeded).
CREATE_ATTEMPTS = 8


class _Marker(enum.Enum):
    CURRENT = "the store has not changed since the conflict index's revision"
    UNREAD = "not read yet"


CURRENT = _Marker.CURRENT
UNREAD = _Marker.UNREAD
_StoreState = tuple[int, int] | _Marker
"""What a subscription create learnt of the store's state of the space: its fingerprint, or CURRENT."""


class ConfigService:
    def __init__(self, store: Store, view: ConfigView) -> None:
        self._store = store
        self._view = view
        # The path-conflict check, per space, fed by the view (a listener from before the view loads).
        self._conflicts = ConflictIndex(view)
        view.add_listener(self._conflicts.on_change)
        #: False: every create re-reads the space's subscriptions from the store (the check before issue
        #: 16, kept as the fallback; benches compare both).
        self.incremental_conflicts = True
        #: False: a create is checked with the store's state first even where the store guards creates (the
        #: way before the guard; its transaction is still guarded; benches compare both).
        self.view_first_creates = True
        # One subscription create per space at a time in this gateway: its check, write and own view update
        # happen before the next create's check. Creates through other gateways or processes are caught by the
        # store's guard (Store.create_guarded) where the backend has one (etcd, SQLite).
        self._create_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        #: How each subscription create was checked, counted by outcome: ``view`` (checked against this
        #: gateway's view alone, its transaction verifying the rest), ``store`` (checked with store reads:
        #: the view refused it or could not be relied on, or the backend has no guard), ``full`` (of those, the
        #: ones that read every subscription of the space), ``retried`` (a guarded transaction found that
        #: another subscription had been created in the space meanwhile: checked again).
        self.create_checks: Counter[str] = Counter()

    # -- event types -------------------------------------------------------------------------

    async def list_event_types(self, space: str, filters: Mapping[str, str] | None = None) -> list[EventType]:
        return await self._list(_EVENT_TYPES, space, filters)

    async def get_event_type(self, space: str, name: str) -> EventType:
        return await self._get(_EVENT_TYPES, space, name)

    async def create_event_type(self, space: str, body: Any) -> EventType:
        event_type = _parse(_EVENT_TYPES, body, space=space)
        await self._check_authorizer(event_type)
        return await self._create(_EVENT_TYPES, event_type)

    async def update_event_type(self, space: str, name: str, body: Any) -> EventType:
        event_type = _parse(_EVENT_TYPES, body, space=space, name=name)
        _, revision = await self._read(_EVENT_TYPES, space, name)
        await self._check_authorizer(event_type)
        return await self._update(_EVENT_TYPES, event_type, revision)

    async def delete_event_type(self, space: str, name: str) -> None:
        _, revision = await self._read(_EVENT_TYPES, space, name, for_delete=True)
        for subscription in await self.list_subscriptions(space):
            if subscription.event_type == name:
                raise ConfigInUse("Event type cannot be deleted because there are subscriptions using it.")
        await self._delete(_EVENT_TYPES, space, name, revision)

    async def _check_authorizer(self, event_type: EventType) -> None:
        if event_type.authorizer_id is None:
            return
        if await self._store.get(Kind.FUNCTIONS, event_type.space, event_type.authorizer_id) is None:
            raise InvalidConfig("Authorizer function doesn't exists.")  # sic: upstream's wording

    # -- functions ---------------------------------------------------------------------------

    async def list_functions(self, space: str, filters: Mapping[str, str] | None = None) -> list[Function]:
        return await self._list(_FUNCTIONS, space, filters)

    async def get_function(self, space: str, function_id: str) -> Function:
        return await self._get(_FUNCTIONS, space, function_id)

    async def create_function(self, space: str, body: Any) -> Function:
        function = _parse(_FUNCTIONS, body, space=space)
        for field, value in _provider_secrets(function).items():
            if value == SECRET_MARKER:
                raise InvalidConfig(f"Function doesn't validate. Validation error: provider.{field}: "
                                    f"{SECRET_MARKER!r} is the redaction marker, not a secret.")
        if isinstance(function.provider, HTTPProviderConfig) and url_password(function.provider.url) == SECRET_MARKER:
            raise InvalidConfig(f"Function doesn't validate. Validation error: provider.url: the password "
                                f"{SECRET_MARKER!r} is the redaction marker, not a secret.")
        return await self._create(_FUNCTIONS, function)

    async def update_function(self, space: str, function_id: str, body: Any) -> Function:
        function = _parse(_FUNCTIONS, body, space=space, function_id=function_id)
        stored, revision = await self._read(_FUNCTIONS, space, function_id)
        kept = {field: _provider_secrets(stored).get(field)
                for field, value in _provider_secrets(function).items() if value == SECRET_MARKER}
        if kept:
            if stored.type != function.type:
                raise InvalidConfig(f"Function doesn't validate. Validation error: provider: {SECRET_MARKER!r} "
                                    f"cannot keep a secret when the function type changes.")
            provider = function.provider.model_copy(update={_python_name(function, f): v for f, v in kept.items()})
            function = function.model_copy(update={"provider": provider})
        if isinstance(function.provider, HTTPProviderConfig) and url_password(function.provider.url) == SECRET_MARKER:
            stored_password = url_password(stored.provider.url) if isinstance(stored.provider, HTTPProviderConfig) else None
            if stored_password is None:
                raise InvalidConfig(f"Function doesn't validate. Validation error: provider.url: the password "
                                    f"{SECRET_MARKER!r} is the redaction marker and there is no stored password "
                                    f"to keep.")
            provider = function.provider.model_copy(
                update={"url": with_url_password(function.provider.url, stored_password)})
            function = function.model_copy(update={"provider": provider})
        return await self._update(_FUNCTIONS, function, revision)

    async def delete_function(self, space: str, function_id: str) -> None:
        _, revision = await self._read(_FUNCTIONS, space, function_id, for_delete=True)
        for subscription in await self.list_subscriptions(space):
            if subscription.function_id == function_id:
                raise ConfigInUse("Function cannot be deleted because it's subscribed to a least one event.")
        for event_type in await self.list_event_types(space):
            if event_type.authorizer_id == function_id:
                raise ConfigInUse(f"Function {function_id} cannot be deleted because is used as an authorizer "
                                  f"for {event_type.name} event type.")
        await self._delete(_FUNCTIONS, space, function_id, revision)

    # -- subscriptions -----------------------------------------------------------------------

    async def list_subscriptions(self, space: str, filters: Mapping[str, str] | None = None) -> list[Subscription]:
        return await self._list(_SUBSCRIPTIONS, space, filters)

    async def get_subscription(self, space: str, subscription_id: str) -> Subscription:
        return await self._get(_SUBSCRIPTIONS, space, canonical_id("subscriptions", subscription_id))

    async def create_subscription(self, space: str, body: Any) -> Subscription:
        """Upstream's checks, in its order: the id is new, the path does not conflict, the event type and the
        function exist.

        On a store that guards creates (etcd, SQLite; not memory), the checks first read only this gateway's
        view: when the view lets the create pass, the create's transaction verifies that it still may (the id
        is free, the event type and function exist, no subscription was created in the space after the
        revision the view had applied), so nothing written through another gateway, even at the same moment,
        is missed; when the view refuses it, the refusal is confirmed with the store's state before it is
        answered. A transaction that finds a newer subscription waits for the view to apply it and checks
        again."""
        subscription = _parse(_SUBSCRIPTIONS, body, space=space)
        async with self._create_locks[space]:
            view_first_allowed = self.incremental_conflicts and self.view_first_creates
            view_first = view_first_allowed and self._store.guards_creates
            for _ in range(CREATE_ATTEMPTS):
                try:
                    if not (view_first and await self._create_if_view_allows(subscription)):
                        await self._create_checked_with_store(subscription)
                    return subscription
                except GuardFailed as failed:
                    self.create_checks["retried"] += 1
                    log.debug("subscription create in space %r checked again: %s", space, failed)
                    # The view first again once it has the create that came first; a required document
                    # missing (or the view lagging) means reading the store.
                    view_first = (view_first_allowed and failed.created_after is not None
                                  and await self._view.wait_until(functools.partial(self._seen, failed.created_after),
                                                                  CONFLICT_CATCH_UP_SECONDS))
        raise ConfigConflict(f"Subscription {go_quote(subscription.subscription_id)} was not created: checked "
                             f"{CREATE_ATTEMPTS} times, other subscriptions were created in the space each time "
                             f"before it could be written; retry.")

    async def _create_if_view_allows(self, subscription: Subscription) -> bool:
        """Create ``subscription`` if this gateway's view, as it is, lets every check pass, guarded by what the
        checks relied on; False (nothing written) when the view would refuse it."""
        space = subscription.space
        checked_at = self._conflicts.revision  # the view and the index hold the store's state at this revision
        if (self._stored(Kind.SUBSCRIPTIONS, space, subscription.subscription_id)
                or not self._stored(Kind.EVENT_TYPES, space, subscription.event_type)
                or not self._stored(Kind.FUNCTIONS, space, subscription.function_id)
                or not self._conflicts.space(space).fits(subscription.type, subscription.method,
                                                         subscription.event_type, subscription.path)):
            return False
        await self._create(_SUBSCRIPTIONS, subscription, self._guard(subscription, checked_at))
        self.create_checks["view"] += 1
        return True

    async def _create_checked_with_store(self, subscription: Subscription) -> None:
        """The checks with the store's state (as before issue 16, the path conflict incrementally where the
        view can be shown to be current), then the create, guarded where the store can."""
        space = subscription.space
        state: _StoreState
        if self.incremental_conflicts and await self._store.unchanged_since(self._conflicts.revision):
            # Nothing written since what the view (and the conflict index) applied: the view holds what
            # the store holds, so it answers the existence checks too (one point read on etcd, not four).
            state = CURRENT
            exists, has_event_type, has_function = (
                self._stored(Kind.SUBSCRIPTIONS, space, subscription.subscription_id),
                self._stored(Kind.EVENT_TYPES, space, subscription.event_type),
                self._stored(Kind.FUNCTIONS, space, subscription.function_id))
        else:
            # The reads at once (one round trip's wait on etcd instead of four).
            existing, state, event_type, function = await asyncio.gather(
                self._store.get(Kind.SUBSCRIPTIONS, space, subscription.subscription_id),
                self._store.fingerprint(Kind.SUBSCRIPTIONS, space) if self.incremental_conflicts else _unread(),
                self._store.get(Kind.EVENT_TYPES, space, subscription.event_type),
                self._store.get(Kind.FUNCTIONS, space, subscription.function_id))
            exists, has_event_type, has_function = (
                existing is not None, event_type is not None, function is not None)
        # The checks in upstream's order.
        if exists:
            raise ConfigConflict(f"Subscription {go_quote(subscription.subscription_id)} already exists.")
        checked_at = await self._check_path_conflict(subscription, state)
        if not has_event_type:
            raise InvalidConfig(f"Event Type {go_quote(subscription.event_type)} not found.")
        if not has_function:
            raise InvalidConfig(f"Function {go_quote(subscription.function_id)} not found.")
        guard = self._guard(subscription, checked_at) if checked_at is not None else None
        await self._create(_SUBSCRIPTIONS, subscription, guard)
        self.create_checks["store"] += 1

    def _guard(self, subscription: Subscription, checked_at: int) -> CreateGuard | None:
        if not self._store.guards_creates:
            return None
        return CreateGuard(checked_at, requires=((Kind.EVENT_TYPES, subscription.event_type),
                                                 (Kind.FUNCTIONS, subscription.function_id)))

    async def update_subscription(self, space: str, subscription_id: str, body: Any) -> Subscription:
        """Only ``metadata`` may change: every other field is part of the subscription's id."""
        subscription = _parse(_SUBSCRIPTIONS, body, space=space)
        subscription_id = canonical_id("subscriptions", subscription_id)
        stored, revision = await self._read(_SUBSCRIPTIONS, space, subscription_id)
        # Upstream named the Go struct fields.
        for field, label in (("type", "Type"), ("event_type", "EventType"), ("function_id", "FunctionID"),
                             ("path", "Path"), ("method", "Method")):
            if getattr(subscription, field) != getattr(stored, field):
                raise InvalidConfig(f"Invalid update. '{label}' of existing subscription cannot be updated.")
        return await self._update(_SUBSCRIPTIONS, subscription, revision)

    async def delete_subscription(self, space: str, subscription_id: str) -> None:
        subscription_id = canonical_id("subscriptions", subscription_id)
        await self._read(_SUBSCRIPTIONS, space, subscription_id, for_delete=True)
        await self._delete(_SUBSCRIPTIONS, space, subscription_id)

    async def _check_path_conflict(self, new: Subscription, state: _StoreState = UNREAD) -> int | None:
        """The routing table's own rules decide (one tree per type, method and event type): sync paths
        are unique, async ones may repeat, and neither may mix a ``:param`` with other segments. Returns the
        store revision up to which the check saw every subscription created (what a guarded create compares
        with), ``None`` when the store cannot tell.

        Checked against the space's :class:`~gateway.routing.conflicts.SpaceConflicts`, which mirrors this
        gateway's view, once the view is known to hold exactly what the store holds: either the store says
        nothing was written after the last revision the index has seen (:meth:`Store.unchanged_since`, one
        point read on etcd), or the store's fingerprint of the space's subscriptions (count, highest
        revision), read now, matches the index (same count, every revision up to that one seen). So, as when
        every subscription was read from the store, the check sees every subscription committed before it
        began. Otherwise wait a little for the view (a write through another gateway on its way through the
        watch), and failing that, read them all.
        """
        if self.incremental_conflicts:
            index = await self._current_conflicts(new.space, state)
            if index is not None:
                checked_at = self._conflicts.revision
                found = index.conflict(new.type, new.method, new.event_type, new.path)
                if found:
                    problem, upstream = found
                    raise InvalidConfig(f"Subscription path conflict: {upstream or problem}")
                return checked_at
        return await self._check_path_conflict_full(new)

    def _stored(self, kind: Kind, space: str, id: str) -> bool:
        """Whether the store holds that document, answered by the view (valid or not: see
        :meth:`ConfigView.refused`); only once the view is known to be current."""
        return self._view.has(kind, space, id) or id in self._view.refused(kind, space)

    async def _store_state(self, space: str) -> _StoreState:
        """``CURRENT`` when the store has had no write since the last revision the conflict index has seen,
        else the store's fingerprint of the space's subscriptions."""
        if await self._store.unchanged_since(self._conflicts.revision):
            return CURRENT
        return await self._store.fingerprint(Kind.SUBSCRIPTIONS, space)

    async def _current_conflicts(self, space: str, state: _StoreState = UNREAD) -> SpaceConflicts | None:
        """The space's conflict index once it matches the store's state, else ``None`` (check the slow way)."""
        deadline = asyncio.get_running_loop().time() + CONFLICT_CATCH_UP_SECONDS
        for _ in range(3):
            if state is UNREAD:
                state = await self._store_state(space)
            if state is CURRENT:
                return self._conflicts.space(space)
            assert isinstance(state, tuple)
            count, highest = state
            state = UNREAD  # read again on the next turn
            if self._conflicts.revision < highest:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0 or not await self._view.wait_until(
                        functools.partial(self._seen, highest), remaining):
                    break
            index = self._conflicts.space(space)
            if len(index) == count:
                return index
            # Deletes not applied yet (or the view refused an invalid stored document: then count never
            # matches, and every create in this space takes the slow way): read the fingerprint again once
            # the view moved.
            remaining = deadline - asyncio.get_running_loop().time()
            revision = self._conflicts.revision
            if remaining <= 0 or not await self._view.wait_until(
                    functools.partial(self._seen, revision + 1), remaining):
                break
        log.debug("subscription conflict index of space %r behind the store: checking every subscription", space)
        return None

    def _seen(self, revision: int) -> bool:
        return self._conflicts.revision >= revision

    async def _check_path_conflict_full(self, new: Subscription) -> int | None:
        """The check before issue 16: every subscription of the space read from the store, a fresh tree.
        Returns the store's revision read before the subscriptions (every create up to it is among them)."""
        self.create_checks["full"] += 1
        checked_at = await self._store.current_revision() if self._store.guards_creates else None
        paths = [existing.path for existing in await self.list_subscriptions(new.space)
                 if (existing.type, existing.method, existing.event_type) == (new.type, new.method, new.event_type)]
        problem = find_conflict(paths, new.path, unique=new.type == "sync")
        if problem:
            # Where upstream refused the path too (sync subscriptions only), its own reason.
            upstream = upstream_path_conflict(paths, new.path) if new.type == "sync" else None
            raise InvalidConfig(f"Subscription path conflict: {upstream or problem}")
        return checked_at

    # -- CORS --------------------------------------------------------------------------------

    async def list_cors(self, space: str, filters: Mapping[str, str] | None = None) -> list[CORS]:
        return await self._list(_CORS, space, filters)

    async def get_cors(self, space: str, cors_id: str) -> CORS:
        return await self._get(_CORS, space, canonical_id("cors", cors_id))

    async def create_cors(self, space: str, body: Any) -> CORS:
        cors = _parse(_CORS, body, space=space)
        if await self._store.get(Kind.CORS, space, cors.cors_id) is None:
            paths = [existing.path for existing in await self.list_cors(space) if existing.method == cors.method]
            problem = find_conflict(paths, cors.path)
            if problem:
                raise InvalidConfig(f"CORS configuration path conflict: {problem}")
        return await self._create(_CORS, cors)

    async def update_cors(self, space: str, cors_id: str, body: Any) -> CORS:
        """``method`` and ``path`` make the id and cannot change."""
        cors = _parse(_CORS, body, space=space)
        cors_id = canonical_id("cors", cors_id)
        stored, revision = await self._read(_CORS, space, cors_id)
        for field, label in (("method", "Method"), ("path", "Path")):
            if getattr(cors, field) != getattr(stored, field):
                raise InvalidConfig(f"Invalid update. '{label}' of existing CORS configuration cannot be updated.")
        return await self._update(_CORS, cors, revision)

    async def delete_cors(self, space: str, cors_id: str) -> None:
        cors_id = canonical_id("cors", cors_id)
        await self._read(_CORS, space, cors_id, for_delete=True)
        await self._delete(_CORS, space, cors_id)

    # -- shared ------------------------------------------------------------------------------

    async def _list(self, resource: _Resource, space: str, filters: Mapping[str, str] | None) -> list[Any]:
        documents = []
        for entry in await self._store.list(resource.kind, space):
            try:
                documents.append(resource.model.model_validate(entry.value))
            except ValidationError as error:
                # Written by an older version whose rules were looser: the Events API skips it too (see
                # ConfigView), and one such document must not make every list of its kind a 500.
                log.warning("stored %s %r in space %r no longer validates and is skipped: %s", resource.label,
                            entry.id, space, _describe(error))
        if filters:
            documents = [d for d in documents
                         if all(d.metadata.get(k) == v for k, v in filters.items())]  # type: ignore[attr-defined]
        return documents

    async def _get(self, resource: _Resource, space: str, id: str) -> Any:
        return (await self._read(resource, space, id))[0]

    async def _read(self, resource: _Resource, space: str, id: str, *,
                    for_delete: bool = False) -> tuple[Any, int]:
        """The stored document and the revision it was read at: an update or delete derived from it
        passes that revision on, so it applies only if nobody changed the document meanwhile.

        A stored document that no longer validates raises :class:`StoredDocumentInvalid` (500, naming
        it and the problem, and logged), as lists skip it with a warning; ``for_delete`` returns
        ``(None, revision)`` for it instead, since deleting it is how an operator gets rid of it.
        """
        entry = await self._store.get(resource.kind, space, id)
        if entry is None:
            raise ConfigNotFound(f"{resource.label} {go_quote(id)} not found.")
        try:
            return resource.model.model_validate(entry.value), entry.revision
        except ValidationError as error:
            if for_delete:
                log.warning("deleting stored %s %r in space %r, which no longer validates: %s", resource.label,
                            id, space, _describe(error))
                return None, entry.revision
            problem = _describe(error)
            log.error("stored %s %r in space %r no longer validates: %s", resource.label, id, space, problem)
            raise StoredDocumentInvalid(
                f"Stored {resource.label} {id!r} in space {space!r} no longer validates: {problem}. It was "
                f"written under older, looser rules; DELETE it and create it again.") from None

    async def _create(self, resource: _Resource, document: M, guard: CreateGuard | None = None) -> M:
        """Create, guarded by what the checks relied on when ``guard`` is given (:class:`GuardFailed`
        passes through: the caller checks again)."""
        id = getattr(document, resource.id_field)
        space: str = document.space  # type: ignore[attr-defined]
        try:
            if guard is None:
                entry = await self._store.create(resource.kind, space, id, document.to_json())
            else:
                entry = await self._store.create_guarded(resource.kind, space, id, document.to_json(), guard)
        except AlreadyExists:
            raise ConfigConflict(f"{resource.label} {go_quote(id)} {resource.exists}.") from None
        await self._view.wait_for_revision(entry.revision)
        return document

    async def _update(self, resource: _Resource, document: M, revision: int | None = None) -> M:
        id = getattr(document, resource.id_field)
        try:
            entry = await self._store.update(resource.kind, document.space, id, document.to_json(), revision)  # type: ignore[attr-defined]
        except NotFound:
            raise ConfigNotFound(f"{resource.label} {go_quote(id)} not found.") from None
        except RevisionConflict:
            raise ConfigConflict(_changed_meanwhile(resource, id)) from None
        await self._view.wait_for_revision(entry.revision)
        return document

    async def _delete(self, resource: _Resource, space: str, id: str, revision: int | None = None) -> None:
        try:
            await self._store.delete(resource.kind, space, id, revision)
        except NotFound:
            raise ConfigNotFound(f"{resource.label} {go_quote(id)} not found.") from None
        except RevisionConflict:
            raise ConfigConflict(_changed_meanwhile(resource, id)) from None
        await self._view.wait_until(lambda: not self._view.has(resource.kind, space, id))


async def _unread() -> _StoreState:
    return UNREAD


def _changed_meanwhile(resource: _Resource, id: str) -> str:
    return (f"{resource.label} {id!r} was changed by another request (possibly through another gateway) "
            "after this one read it; read it again and retry.")


def _parse(resource: _Resource, body: Any, **from_url: str) -> Any:
    """Validate a request body; values taken from the URL (space, id) override the body's, as upstream."""
    if not isinstance(body, dict):
        raise InvalidConfig(f"{resource.label} doesn't validate. Validation error: "
                            f"the body must be a JSON object, got {json_type(body)}.")
    fields = resource.model.model_fields
    data = _go_keys(resource.model, body)
    if isinstance(data.get("provider"), dict):
        provider_model = PROVIDERS.get(str(data.get("type") or data["provider"].get("type")))
        if provider_model is not None:
            data["provider"] = _go_keys(provider_model, data["provider"])
    if isinstance(data.get("retry"), dict):
        data["retry"] = _go_keys(RetryPolicy, data["retry"])
    for name, value in from_url.items():
        data[fields[name].alias or name] = value
    if resource is _FUNCTIONS:
        _check_provider_type(data)
    try:
        return resource.model.model_validate(data)
    except ValidationError as error:
        if resource is _FUNCTIONS and any(p["type"] == "missing" and p["loc"][:1] == ("provider",)
                                          and len(p["loc"]) > 1
                                          for p in error.errors(include_url=False)):
            provider_type = str(data.get("type") or data["provider"].get("type"))
            raise InvalidConfig(f"Function doesn't validate. Validation error: missing required fields for "
                                f"{_PROVIDER_NAMES.get(provider_type, provider_type)}") from None
        raise InvalidConfig(f"{resource.label} doesn't validate. Validation error: {_describe(error)}") from None


#: How upstream's providers named themselves in "missing required fields for ...".
_PROVIDER_NAMES = {"http": "HTTP endpoint", "awslambda": "AWS Lambda function", "awskinesis": "AWS Kinesis function",
                   "awsfirehose": "AWS Firehose function", "awssqs": "AWS SQS function"}


def _check_provider_type(data: dict[str, Any]) -> None:
    """Upstream's ``Function.UnmarshalJSON`` refusals, word for word."""
    provider = data.get("provider")
    provider_type = data.get("type") or (provider.get("type") if isinstance(provider, dict) else None)
    if provider_type in (None, ""):
        raise InvalidConfig("Function doesn't validate. Validation error: provider configuration not set")
    if isinstance(provider_type, str) and provider_type not in PROVIDERS:
        raise InvalidConfig(f"Function doesn't validate. Validation error: provider {provider_type} not supported")


def _go_keys(model: type[Model], body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with keys renamed to the model's spelling when they differ only in case.

    Upstream decoded bodies with Go's ``encoding/json``, which matches keys case-insensitively, so a
    client sending ``functionID`` or ``authorizerID`` worked; an exact-case match here would silently
    drop such a key (an event type would lose its authorizer). An exact key always wins over a
    case-insensitive one, as in Go."""
    aliases = {(info.alias or name).lower(): info.alias or name for name, info in model.model_fields.items()}
    data = dict(body)
    for key in list(body):
        canonical = aliases.get(key.lower())
        if canonical is not None and canonical != key:
            value = data.pop(key)
            data.setdefault(canonical, value)
    return data


def _describe(error: ValidationError) -> str:
    problems = []
    for problem in error.errors(include_url=False):
        # Drop the discriminator tag pydantic puts in the location ("provider.http.url" -> "provider.url").
        loc = [str(p) for p in problem["loc"]]
        if len(loc) > 1 and loc[0] == "provider" and loc[1] in PROVIDERS:
            del loc[1]
        message = problem["msg"].removeprefix("Value error, ")
        problems.append(f"{'.'.join(loc) or '(body)'}: {message}")
    return "; ".join(problems)


def _provider_secrets(function: Function) -> dict[str, str | None]:
    data = function.provider.model_dump(by_alias=True)
    return {field: data.get(field) for field in type(function.provider).SECRET_FIELDS if data.get(field) is not None}


def _python_name(function: Function, alias: str) -> str:
    for name, info in type(function.provider).model_fields.items():
        if info.alias == alias:
            return name
    raise KeyError(alias)

