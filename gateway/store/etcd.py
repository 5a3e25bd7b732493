"""The configuration store on an etcd v3 cluster: what lets many gateways share one configuration.

Each document is one etcd key (see :func:`key_for`), its JSON text the value, its ``mod_revision`` the
:class:`~gateway.store.base.Entry` revision. Every write is a single etcd transaction whose compare makes it
safe against concurrent writers on other gateways: a create compares ``create_revision == 0`` (the key does
not exist), an update or delete compares ``mod_revision`` with the revision the caller read (or
``create_revision > 0`` when the caller gave none). A guarded create (:meth:`EtcdStore.create_guarded`, a
subscription's) also puts ``<prefix>_creates/<kind>/<space>`` (see :func:`guard_key_for`), whose
``mod_revision`` is then the revision of the space's latest guarded create, and compares it with the revision
its check was made at, plus ``create_revision > 0`` on the documents it requires: of two gateways creating
conflicting subscriptions at once, the second transaction fails and its check runs again. Those keys hold no
document: reads and the watch skip them. A watch from a revision gives every gateway the changes
in store order; when etcd has compacted that revision away, :class:`~gateway.store.base.WatchReset` tells the
view to reload from a fresh snapshot.

The wire client is gRPC with the etcd v3 stubs generated in ``aetcd.rpc``. ``aetcd.Client`` itself only opens
insecure channels to one endpoint, so this module builds its own ``grpc.aio`` channels: that is what gives TLS
(client certificates included), several endpoints, a bounded reconnect back-off and per-call deadlines, so
that an unreachable etcd becomes a prompt :class:`~gateway.store.base.StoreUnavailable` (HTTP 503) instead of
a request that hangs.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

import grpc
from aetcd import rpc

from .base import (
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
    StoreError,
    StoreUnavailable,
    WatchReset,
)

__all__ = ["DEFAULT_PREFIX", "EtcdOptions", "EtcdStore", "guard_key_for", "key_for", "parse_etcd_url"]

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "/eventgateway/v1/"
"""Every key the gateway writes lives under this prefix (override with a path: ``etcd://h:p/other/``)."""

T = TypeVar("T")

# gRPC retries a failed connection on its own, with a back-off that grows to two minutes by default: far
# too slow for a gateway waiting for etcd to come back. Cap it at one second, and ping the connection of
# the watch so that a silently vanished server is noticed (etcd accepts pings every 5 s or slower).
_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    # Only while a call is open (the watch): etcd answers pings on an idle connection with "too_many_pings".
    ("grpc.keepalive_permit_without_calls", 0),
    # Plugin modules are stored as documents: allow the largest request etcd can be configured to take.
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]

_UNREACHABLE_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
}


@dataclass(frozen=True, slots=True)
class EtcdOptions:
    """How to reach the cluster. ``endpoints`` are tried in turn when the current one fails."""

    endpoints: tuple[tuple[str, int], ...]
    prefix: str = DEFAULT_PREFIX
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    user: str | None = None
    password: str | None = None
    request_timeout: float = 3.0
    """Deadline of one read or write; past it the Config API answers 503."""

    @property
    def tls(self) -> bool:
        return self.ca_file is not None or self.cert_file is not None

    def describe(self) -> str:
        """The endpoints as an operator wrote them, for error messages."""
        return ",".join(f"{host}:{port}" for host, port in self.endpoints)


def parse_etcd_url(url: str, **options: Any) -> EtcdOptions:
    """``etcd://host:port[,host:port...][/key/prefix/]`` -> :class:`EtcdOptions`.

    ``options`` are the other :class:`EtcdOptions` fields (TLS files, user, password) from flags.
    """
    parts = urlsplit(url)
    if parts.scheme != "etcd":
        raise ValueError(f"--db {url!r}: an etcd URL starts with etcd://, e.g. etcd://127.0.0.1:2379")
    if not parts.netloc:
        raise ValueError(f"--db {url!r}: no endpoint; expected etcd://host:port[,host:port...]")
    endpoints: list[tuple[str, int]] = []
    for item in parts.netloc.split(","):
        host, sep, port_text = item.strip().rpartition(":")
        if not sep:
            host, port_text = item.strip(), "2379"
        host = host.strip("[]")
        if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"--db {url!r}: bad endpoint {item!r}; expected host:port with a port 1-65535")
        endpoints.append((host, int(port_text)))
    prefix = parts.path or DEFAULT_PREFIX
    if not prefix.endswith("/"):
        prefix += "/"
    if options.get("user") is not None and options.get("password") is None:
        raise ValueError("etcd: --db-user needs --db-password")
    for name in ("ca_file", "cert_file", "key_file"):
        path = options.get(name)
        if path is not None and not Path(path).is_file():
            flag = "--db-" + name.removesuffix("_file")
            raise ValueError(f"etcd: {flag} {path!r} is not a readable file")
    if (options.get("cert_file") is None) != (options.get("key_file") is None):
        raise ValueError("etcd: --db-cert and --db-key go together (a client certificate and its key)")
    return EtcdOptions(endpoints=tuple(endpoints), prefix=prefix, **options)


def key_for(prefix: str, kind: Kind, space: str, id: str) -> bytes:
    """``<prefix><kind>/<space>/<id>``, space and id percent-encoded so that a ``/`` in them stays inside
    its segment (subscription ids contain paths)."""
    return f"{prefix}{kind.value}/{quote(space, safe='')}/{quote(id, safe='')}".encode()


_GUARDS = "_creates"
"""The first key segment of the guard keys: no :class:`~gateway.store.base.Kind` starts with ``_``."""


def guard_key_for(prefix: str, kind: Kind, space: str) -> bytes:
    """``<prefix>_creates/<kind>/<space>``: put by every guarded create of ``kind`` in ``space`` (its value the
    created id, for whoever inspects etcd), so that its ``mod_revision`` is the latest such create's revision."""
    return f"{prefix}{_GUARDS}/{kind.value}/{quote(space, safe='')}".encode()


def _range_end(prefix: bytes) -> bytes:
    """The end of the key range holding every key that starts with ``prefix`` (etcd's convention)."""
    end = bytearray(prefix)
    for i in reversed(range(len(end))):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


class _StreamEnded(Exception):
    """The server closed a watch stream without an error status: reconnect like any lost stream."""


class _Backoff:
    """Exponential back-off with full jitter, so gateways that lost etcd together do not return together."""

    def __init__(self, initial: float = 0.05, maximum: float = 2.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * (2**self._attempt))
        self._attempt += 1
        return random.uniform(ceiling / 2, ceiling)


@dataclass(slots=True)
class _Connection:
    """One gRPC channel to one endpoint and its stubs, plus the auth token its calls carry."""

    channel: grpc.aio.Channel
    kv: rpc.KVStub
    watch: rpc.WatchStub
    endpoint: str
    metadata: tuple[tuple[str, str], ...] = field(default=())


class EtcdStore(Store):
    """:class:`~gateway.store.base.Store` on etcd v3. See the module docstring for the key layout."""

    def __init__(self, options: EtcdOptions) -> None:
        self.options = options
        self._prefix = options.prefix.encode()
        self._conn: _Connection | None = None
        self._endpoint_index = 0
        self._connect_lock = asyncio.Lock()
        self._closed = False
        self._opened = False
        self.available = False
        """False from the moment a call or the watch finds etcd unreachable until one succeeds again."""
        self._availability_listeners: list[Callable[[bool], None]] = []

    # -- connection ----------------------------------------------------------------------------------

    def add_availability_listener(self, callback: Callable[[bool], None]) -> None:
        """``callback(available)`` on every change of reachability (the runtime feeds ``store_up``)."""
        self._availability_listeners.append(callback)

    def _set_available(self, available: bool) -> None:
        if available == self.available:
            return
        self.available = available
        if available:
            log.info("etcd reachable again at %s", self._conn.endpoint if self._conn else self.options.describe())
        else:
            log.warning("etcd unreachable (%s); serving events from the last view", self.options.describe())
        for callback in self._availability_listeners:
            callback(available)

    def _credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.options.ca_file),
            private_key=read(self.options.key_file),
            certificate_chain=read(self.options.cert_file),
        )

    async def _connection(self) -> _Connection:
        if self._closed:
            raise StoreUnavailable("etcd store is closed")
        if self._conn is not None:
            return self._conn
        async with self._connect_lock:
            if self._conn is None:
                try:
                    self._conn = await self._dial()
                except StoreUnavailable:
                    self._set_available(False)
                    self._endpoint_index += 1
                    raise
            return self._conn

    async def _dial(self) -> _Connection:
        host, port = self.options.endpoints[self._endpoint_index % len(self.options.endpoints)]
        target = f"{host}:{port}"
        if self.options.tls:
            channel = grpc.aio.secure_channel(target, self._credentials(), options=_CHANNEL_OPTIONS)
        else:
            channel = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
        conn = _Connection(channel=channel, kv=rpc.KVStub(channel), watch=rpc.WatchStub(channel), endpoint=target)
        if self.options.user is not None:
            try:
                conn.metadata = await self._authenticate(conn)
            except BaseException:
                await channel.close()
                raise
        return conn

    async def _authenticate(self, conn: _Connection) -> tuple[tuple[str, str], ...]:
        auth = rpc.AuthStub(conn.channel)
        request = rpc.AuthenticateRequest(name=self.options.user, password=self.options.password or "")
        try:
            response = await auth.Authenticate(request, timeout=self.options.request_timeout)
        except grpc.aio.AioRpcError as error:
            if error.code() in _UNREACHABLE_CODES:
                raise self._unreachable(error, conn.endpoint) from error
            raise StoreError(f"etcd at {conn.endpoint} refused user {self.options.user!r}: {error.details()}") from error
        return (("token", response.token),)

    async def _drop_connection(self, conn: _Connection) -> None:
        """Forget a failed connection and move to the next endpoint for the following call."""
        async with self._connect_lock:
            if self._conn is conn:
                self._conn = None
                if len(self.options.endpoints) > 1:
                    self._endpoint_index += 1
                    await conn.channel.close()

    def _unreachable(self, error: grpc.aio.AioRpcError, endpoint: str) -> StoreUnavailable:
        consequence = (
            "the Events API keeps serving the last configuration it saw" if self._opened
            else "cannot start without the configuration; check --db and that etcd is running"
        )
        return StoreUnavailable(
            f"configuration store unavailable: etcd at {endpoint} did not answer ({error.code().name}: "
            f"{error.details()}); {consequence}"
        )

    async def _call(self, operation: Callable[[_Connection], Awaitable[T]], *, idempotent: bool = False) -> T:
        """Run one RPC: map an unreachable server to StoreUnavailable and renew an expired auth token once.

        Reads (``idempotent``) try each endpoint in turn. Writes are never retried on a lost connection:
        whether they were applied is unknown, and a retried compare-and-create would report a conflict
        with itself; the next write goes to the next endpoint.
        """
        for remaining in reversed(range(len(self.options.endpoints) if idempotent else 1)):
            try:
                return await self._call_once(operation)
            except StoreUnavailable:
                if remaining == 0 or self._closed:
                    raise
        raise AssertionError("unreachable")

    async def _call_once(self, operation: Callable[[_Connection], Awaitable[T]]) -> T:
        for attempt in range(2):
            conn = await self._connection()
            try:
                result = await operation(conn)
            except grpc.aio.AioRpcError as error:
                code = error.code()
                if code == grpc.StatusCode.UNAUTHENTICATED and attempt == 0 and self.options.user is not None:
                    conn.metadata = await self._authenticate(conn)
                    continue
                if code in _UNREACHABLE_CODES:
                    self._set_available(False)
                    if len(self.options.endpoints) > 1:
                        await self._drop_connection(conn)
                    raise self._unreachable(error, conn.endpoint) from error
                raise StoreError(f"etcd at {conn.endpoint} rejected the request: {code.name}: {error.details()}") from error
            self._set_available(True)
            return result
        raise AssertionError("unreachable")

    async def open(self) -> None:
        """Check that the cluster answers, so a wrong ``--db`` fails at start-up rather than on first use."""
        await self._call(
            lambda c: c.kv.Range(
                rpc.RangeRequest(key=self._prefix, limit=1, keys_only=True),
                timeout=self.options.request_timeout,
                metadata=c.metadata,
            ),
            idempotent=True,
        )
        self._opened = True

    async def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.channel.close()

    # -- reads ---------------------------------------------------------------------------------------

    def _decode(self, kv: Any) -> Entry | None:
        """A stored key-value as an Entry; None (and a warning) for a key this gateway did not write."""
        parsed = self._parse_key(kv.key)
        if parsed is None:
            return None
        kind, space, id = parsed
        try:
            value = json.loads(kv.value)
        except ValueError:
            log.warning("etcd key %r does not hold JSON; ignored", kv.key.decode(errors="replace"))
            return None
        if not isinstance(value, dict):
            log.warning("etcd key %r does not hold a JSON object; ignored", kv.key.decode(errors="replace"))
            return None
        return Entry(kind=kind, space=space, id=id, value=value, revision=kv.mod_revision)

    def _parse_key(self, key: bytes) -> tuple[Kind, str, str] | None:
        parts = key[len(self._prefix):].decode(errors="replace").split("/")
        if parts[0] == _GUARDS:
            return None  # a guard key (see guard_key_for): no document
        if len(parts) != 3:
            log.warning("etcd key %r is not <prefix><kind>/<space>/<id>; ignored", key)
            return None
        try:
            kind = Kind(parts[0])
        except ValueError:
            log.warning("etcd key %r names no known kind; ignored", key)
            return None
        return kind, unquote(parts[1]), unquote(parts[2])

    async def _range(self, prefix: bytes, revision: int = 0) -> tuple[list[Entry], int]:
        response = await self._call(
            lambda c: c.kv.Range(
                rpc.RangeRequest(key=prefix, range_end=_range_end(prefix), revision=revision),
                timeout=self.options.request_timeout,
                metadata=c.metadata,
            ),
            idempotent=True,
        )
        entries = [entry for kv in response.kvs if (entry := self._decode(kv)) is not None]
        return entries, response.header.revision

    async def get(self, kind: Kind, space: str, id: str) -> Entry | None:
        key = key_for(self.options.prefix, kind, space, id)
        response = await self._call(
            lambda c: c.kv.Range(rpc.RangeRequest(key=key), timeout=self.options.request_timeout, metadata=c.metadata),
            idempotent=True,
        )
        return self._decode(response.kvs[0]) if response.kvs else None

    async def list(self, kind: Kind, space: str | None = None) -> list[Entry]:
        prefix = f"{self.options.prefix}{kind.value}/"
        if space is not None:
            prefix += quote(space, safe="") + "/"
        entries, _ = await self._range(prefix.encode())
        return sorted(entries, key=lambda e: (e.space, e.id))

    async def fingerprint(self, kind: Kind, space: str) -> tuple[int, int]:
        """One linearizable transaction of two ranges that return no documents: the count, and the key with
        the highest ``mod_revision`` (etcd sorts the keys of the range itself)."""
        prefix = f"{self.options.prefix}{kind.value}/{quote(space, safe='')}/".encode()
        end = _range_end(prefix)
        request = rpc.TxnRequest(success=[
            rpc.RequestOp(request_range=rpc.RangeRequest(key=prefix, range_end=end, count_only=True)),
            rpc.RequestOp(request_range=rpc.RangeRequest(
                key=prefix, range_end=end, limit=1, keys_only=True,
                sort_order=rpc.RangeRequest.DESCEND, sort_target=rpc.RangeRequest.MOD)),
        ])
        response = await self._call(
            lambda c: c.kv.Txn(request, timeout=self.options.request_timeout, metadata=c.metadata),
            idempotent=True,
        )
        counted, highest = (r.response_range for r in response.responses)
        return counted.count, highest.kvs[0].mod_revision if highest.kvs else 0

    async def current_revision(self) -> int:
        """A linearizable point read of one key (the prefix itself, which the gateway never writes): its
        answer's header carries the store's revision, at O(log n) cost whatever the number of keys. A write
        anywhere in etcd moves that revision, under another prefix too."""
        response = await self._call(
            lambda c: c.kv.Range(rpc.RangeRequest(key=self._prefix, keys_only=True),
                                 timeout=self.options.request_timeout, metadata=c.metadata),
            idempotent=True,
        )
        return int(response.header.revision)

    async def snapshot(self) -> Snapshot:
        """One linearizable range over the whole prefix: all documents at exactly one store revision."""
        entries, revision = await self._range(self._prefix)
        return Snapshot(entries=entries, revision=revision)

    # -- writes --------------------------------------------------------------------------------------

    async def _txn(self, request: rpc.TxnRequest) -> rpc.TxnResponse:
        return await self._call(
            lambda c: c.kv.Txn(request, timeout=self.options.request_timeout, metadata=c.metadata)
        )

    @staticmethod
    def _encode(value: dict[str, Any]) -> bytes:
        return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()

    async def create(self, kind: Kind, space: str, id: str, value: dict[str, Any]) -> Entry:
        key = key_for(self.options.prefix, kind, space, id)
        response = await self._txn(
            rpc.TxnRequest(
                compare=[rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, key=key, create_revision=0)],
                success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=self._encode(value)))],
            )
        )
        if not response.succeeded:
            raise AlreadyExists.at(kind, space, id)
        return Entry(kind=kind, space=space, id=id, value=value, revision=response.header.revision)

    guards_creates = True

    async def create_guarded(self, kind: Kind, space: str, id: str, value: dict[str, Any],
                             guard: CreateGuard) -> Entry:
        """One transaction: compares the key's ``create_revision == 0``, the guard key's ``mod_revision <=
        guard.checked_at`` (a missing key compares as 0) and ``create_revision > 0`` on each required
        document; puts the document and the guard key. When it fails, its failure branch reads those keys back
        to say why (see :meth:`~gateway.store.base.Store.create_guarded`)."""
        key = key_for(self.options.prefix, kind, space, id)
        guard_key = guard_key_for(self.options.prefix, kind, space)
        required = [key_for(self.options.prefix, required_kind, space, required_id)
                    for required_kind, required_id in guard.requires]
        response = await self._txn(
            rpc.TxnRequest(
                compare=[
                    rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, key=key, create_revision=0),
                    rpc.Compare(result=rpc.Compare.LESS, target=rpc.Compare.MOD, key=guard_key,
                                mod_revision=guard.checked_at + 1),
                    *(rpc.Compare(result=rpc.Compare.GREATER, target=rpc.Compare.CREATE, key=k, create_revision=0)
                      for k in required),
                ],
                success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=self._encode(value))),
                         rpc.RequestOp(request_put=rpc.PutRequest(key=guard_key, value=id.encode()))],
                failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k, keys_only=k != guard_key))
                         for k in (key, guard_key, *required)],
            )
        )
        if response.succeeded:
            return Entry(kind=kind, space=space, id=id, value=value, revision=response.header.revision)
        existing, latest, *found = (r.response_range.kvs for r in response.responses)
        if existing:
            raise AlreadyExists.at(kind, space, id)
        if latest and latest[0].mod_revision > guard.checked_at:
            raise GuardFailed.created_since(kind, space, latest[0].value.decode(errors="replace"),
                                            latest[0].mod_revision, guard.checked_at)
        missing = [f"{required_kind.value} {required_id!r}"
                   for (required_kind, required_id), kvs in zip(guard.requires, found, strict=True) if not kvs]
        raise GuardFailed.missing(kind, space, id, missing)

    def _guard(self, key: bytes, expected_revision: int | None) -> rpc.Compare:
        if expected_revision is None:
            return rpc.Compare(result=rpc.Compare.GREATER, target=rpc.Compare.CREATE, key=key, create_revision=0)
        return rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, key=key, mod_revision=expected_revision)

    def _failure(self, response: rpc.TxnResponse, kind: Kind, space: str, id: str, expected: int | None) -> StoreError:
        """Why a guarded write did not apply: the failure branch read the key back."""
        kvs = response.responses[0].response_range.kvs if response.responses else []
        if not kvs:
            return NotFound(f"{kind.value} {id!r} not found in space {space!r}")
        return RevisionConflict(
            f"{kind.value} {id!r} in space {space!r} changed since revision {expected} "
            f"(now at {kvs[0].mod_revision}); read it again and retry"
        )

    async def update(
        self, kind: Kind, space: str, id: str, value: dict[str, Any], expected_revision: int | None = None
    ) -> Entry:
        key = key_for(self.options.prefix, kind, space, id)
        response = await self._txn(
            rpc.TxnRequest(
                compare=[self._guard(key, expected_revision)],
                success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=self._encode(value)))],
                failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key, keys_only=True))],
            )
        )
        if not response.succeeded:
            raise self._failure(response, kind, space, id, expected_revision)
        return Entry(kind=kind, space=space, id=id, value=value, revision=response.header.revision)

    async def delete(self, kind: Kind, space: str, id: str, expected_revision: int | None = None) -> None:
        key = key_for(self.options.prefix, kind, space, id)
        response = await self._txn(
            rpc.TxnRequest(
                compare=[self._guard(key, expected_revision)],
                success=[rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key))],
                failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key, keys_only=True))],
            )
        )
        if not response.succeeded:
            raise self._failure(response, kind, space, id, expected_revision)

    # -- watch ---------------------------------------------------------------------------------------

    async def watch(self, after_revision: int) -> AsyncIterator[Change]:
        """Changes after ``after_revision``, resumed across lost connections from the last revision seen.

        A lost stream is re-opened with back-off (50 ms doubling to 2 s, jittered); while it is down
        :attr:`available` is False. If etcd compacted the revision to resume from, :class:`WatchReset`.
        """
        next_revision = after_revision + 1
        backoff = _Backoff()
        refused_because = ""
        while not self._closed:
            conn: _Connection | None = None
            try:
                conn = await self._connection()
                async for changes, resume_at in self._watch_stream(conn, next_revision):
                    backoff.reset()
                    self._set_available(True)
                    for change in changes:
                        yield change
                    next_revision = max(next_revision, resume_at)
            except WatchReset:
                raise
            except grpc.aio.AioRpcError as error:
                log.debug("etcd watch stream lost: %s %s", error.code().name, error.details())
                if error.code() == grpc.StatusCode.UNAUTHENTICATED and conn is not None and self.options.user:
                    try:
                        conn.metadata = await self._authenticate(conn)
                        continue
                    except StoreError as auth_error:
                        log.warning("etcd watch: %s", auth_error)
                self._set_available(False)
                if conn is not None and len(self.options.endpoints) > 1:
                    await self._drop_connection(conn)
            except _StreamEnded as error:
                log.debug("etcd watch stream lost: %s", error)
                self._set_available(False)
            except StoreError as error:
                # Not a lost connection: etcd refused the watch (permission denied on the prefix, ...).
                # Say why once per distinct reason, not on every retry.
                if str(error) != refused_because:
                    refused_because = str(error)
                    log.warning("etcd watch on %s refused: %s; retrying with back-off",
                                self.options.prefix, refused_because)
                self._set_available(False)
            if self._closed:
                return
            await asyncio.sleep(backoff.next_delay())

    async def _watch_stream(self, conn: _Connection, start_revision: int) -> AsyncIterator[tuple[builtins.list[Change], int]]:
        """One gRPC watch stream: yields each response's changes and the revision to resume from after it."""
        requests: asyncio.Queue[rpc.WatchRequest] = asyncio.Queue()
        requests.put_nowait(
            rpc.WatchRequest(
                create_request=rpc.WatchCreateRequest(
                    key=self._prefix,
                    range_end=_range_end(self._prefix),
                    start_revision=start_revision,
                    progress_notify=True,
                )
            )
        )

        async def request_stream() -> AsyncIterator[rpc.WatchRequest]:
            while True:
                yield await requests.get()

        call = conn.watch.Watch(request_stream(), metadata=conn.metadata)
        try:
            async for response in call:
                if response.compact_revision:
                    raise WatchReset(
                        f"etcd compacted its history past revision {start_revision} "
                        f"(compacted up to {response.compact_revision}); reload from a snapshot"
                    )
                if response.canceled:
                    raise StoreError(f"etcd canceled the watch: {response.cancel_reason or 'no reason given'}")
                changes = [change for event in response.events if (change := self._change(event)) is not None]
                if response.events:
                    resume_at = max(event.kv.mod_revision for event in response.events) + 1
                elif not response.created:
                    # A progress notification: every event up to header.revision has been sent.
                    resume_at = response.header.revision + 1
                else:
                    resume_at = start_revision
                yield changes, resume_at
                start_revision = max(start_revision, resume_at)
        finally:
            call.cancel()
        # A stream that ends without an error (server shutting down) is a lost connection too.
        raise _StreamEnded("etcd closed the watch stream")

    def _change(self, event: Any) -> Change | None:
        if event.type == rpc.Event.DELETE:
            parsed = self._parse_key(event.kv.key)
            if parsed is None:
                return None
            kind, space, id = parsed
            return Change(kind=kind, space=space, id=id, value=None, revision=event.kv.mod_revision)
        entry = self._decode(event.kv)
        if entry is None:
            return None
        return Change(kind=entry.kind, space=entry.space, id=entry.id, value=entry.value, revision=entry.revision)
