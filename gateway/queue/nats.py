"""The delivery queue on NATS JetStream (``--queue nats://host:port[,host:port]``): `NatsQueue`, for
clusters -- every gateway sharing one stream and one durable consumer, so an event accepted by a gateway
that then dies is delivered by the others.

Layout (created when missing; see docs/operations.md, "The NATS delivery queue"):

- the stream ``EVENTGATEWAY_DELIVERIES`` on the subject ``eventgateway.deliveries``: work-queue retention
  (a message is gone once acked), file storage, ``max_msgs = --queue-max-events`` with discard *new* (a
  publish over it is refused: `QueueFull`, nothing accepted is dropped), a 2-minute de-duplication window.
  A message is one delivery, a JSON object (id, space, function id, subscription id, event, system), with
  the delivery id as its ``Nats-Msg-Id``;
- the durable pull consumer ``eventgateway-workers`` shared by every gateway: explicit acks,
  ``ack_wait = --queue-lease`` (the lease: a delivery not acked, retried or killed within it is delivered
  again, to any gateway), ``max_deliver`` unlimited (the worker decides when a delivery is dead) and
  ``max_ack_pending`` unlimited (deliveries waiting on a retry delay count as pending: a bound there would
  stall every worker behind a failing function);
- the KV bucket ``EVENTGATEWAY_DEADLETTERS``: one key per dead letter,
  ``<space>.<function id>.<delivery id>`` (space and function id escaped to key tokens: every byte outside
  ``[A-Za-z0-9_-]`` written ``=XX``), the value the dead letter as JSON. The function id is in the key so
  that a function's dead letters and the per-function counts are read from the keys alone;
- the KV bucket ``EVENTGATEWAY_RETRIES``: the error and first-attempt time of a delivery waiting on a
  retry, keyed by delivery id (entries expire after 7 days; acked or killed deliveries remove theirs).

Attempts: ``attempts = num_delivered - 1`` from the message's JetStream metadata. JetStream counts every
delivery, so an attempt cut short by a crash, a SIGKILL or an expired lease counts as an attempt too: a
gateway that dies while calling a function uses up one of the function's attempts.

Fencing: JetStream takes an ack or NAK from any earlier holder of a message, so `ack`, `retry` and `dead`
do nothing once this holder's lease ran out by its own clock (the delivery is the next holder's).
`extend` sends ``+WPI`` (in progress: the ack wait starts again) for the leases not run out by that clock,
and moves that clock on by one lease.

Dead letters are written before the message is acked: a crash between the two leaves the message in the
stream, delivered again after the lease -- the worker then finds its attempts spent and writes the same
key again (one dead letter, never a lost one; at worst one more call of the function).

NATS unreachable: `enqueue` raises `QueueUnavailable` at once when the client is disconnected and within
``request_timeout`` (2 s) when no PubAck comes; `lease` waits its ``wait`` and returns nothing; ``ack``,
``retry`` and ``dead`` log a warning and leave the delivery to be delivered again after its lease; the
Config API's calls raise `QueueUnavailable`. nats-py reconnects by itself (every 0.5 s, forever) and the
stream, consumer and buckets are created again if the server came back without them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from .base import (
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

__all__ = ["DEFAULT_STREAM", "NatsQueue", "NatsQueueConfigError", "key_token", "parse_key_token"]

log = logging.getLogger("gateway.queue.nats")

DEFAULT_STREAM = "EVENTGATEWAY_DELIVERIES"
DEFAULT_SUBJECT = "eventgateway.deliveries"
DEFAULT_CONSUMER = "eventgateway-workers"
DEFAULT_DEADLETTER_BUCKET = "EVENTGATEWAY_DEADLETTERS"
DEFAULT_RETRY_BUCKET = "EVENTGATEWAY_RETRIES"
#: How long a retry's error is kept when nothing removes it (a delivery lost some other way).
RETRY_RECORD_TTL = 7 * 24 * 3600.0
#: Seconds after a failed connect during which calls fail at once instead of trying again.
DOWN_BACKOFF = 0.5
#: At most this many dead letters are redelivered by one call (a function's whole list, normally).
MAX_REDELIVER = 100_000

# JetStream's "maximum messages exceeded" (a publish over max_msgs with discard new).
_ERR_MAX_MSGS = 10077
_ERR_NO_MESSAGE = 10037
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SUBJECT = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
# What a message's delivery id may be to be taken as one: the ids every backend makes (uuid4 hex,
# `is_delivery_id`) and anything else a key token can hold safely.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class NatsQueueConfigError(QueueMisconfigured):
    """The stream or consumer exists with settings this queue cannot work with (another retention, a
    push consumer, ...): it is left as it is, the message says what differs, and the gateway refuses to
    start on it."""


def key_token(text: str) -> str:
    """``text`` as one KV key token: ``[A-Za-z0-9_-]`` kept, every other UTF-8 byte ``=XX`` (so ``.``,
    which separates tokens, never appears); the empty string is ``=``."""
    if not text:
        return "="
    return "".join(chr(b) if b in _PLAIN else f"={b:02X}" for b in text.encode())


def parse_key_token(token: str) -> str:
    """The inverse of `key_token`."""
    if token == "=":
        return ""
    out = bytearray()
    i = 0
    while i < len(token):
        if token[i] == "=":
            out.append(int(token[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(ord(token[i]))
            i += 1
    return out.decode(errors="replace")


def _redacted(server: str) -> str:
    """A server URL without its secret: any userinfo (``user:password@`` or a ``token@``) is ``***@``."""
    scheme, sep, rest = server.partition("://")
    if not sep:
        scheme, rest = "nats", server
    hostport = rest.split("/", 1)[0]
    if "@" in hostport:
        hostport = "***@" + hostport.rpartition("@")[2]
    return f"{scheme}://{hostport}"


def _now() -> float:
    return time.time()


@dataclass(slots=True)
class _Lease:
    """`LeasedDelivery.token`: the JetStream message, when this lease began (wall clock) and when it ends
    (monotonic: JetStream's ack wait started when the server sent the message, a little earlier)."""

    msg: Msg
    leased_at: float
    expires: float


class NatsQueue:
    """A `gateway.queue.base.DeliveryQueue` on a JetStream stream (see the module's docstring)."""

    durable = True
    #: False: a fetch cancelled after messages were sent leaves them pending until their ack
    #: wait.
    lease_cancel_safe = False

    def __init__(
        self,
        servers: Sequence[str],
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        stream: str = DEFAULT_STREAM,
        subject: str = DEFAULT_SUBJECT,
        consumer: str = DEFAULT_CONSUMER,
        deadletter_bucket: str = DEFAULT_DEADLETTER_BUCKET,
        retry_bucket: str = DEFAULT_RETRY_BUCKET,
        request_timeout: float = 2.0,
        connect_timeout: float = 2.0,
        name: str = "event-gateway",
    ) -> None:
        servers = [s.strip() for s in servers if s.strip()]
        if not servers:
            raise ValueError("NatsQueue needs at least one server (nats://host:port)")
        self._servers = [s if "://" in s else f"nats://{s}" for s in servers]
        for server in self._servers:
            parts = urlsplit(server)
            if parts.scheme not in ("nats", "tls") or not parts.hostname:
                raise ValueError(f"not a NATS server URL: {_redacted(server)!r} (nats://host:port)")
        if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
            raise ValueError(f"max_events must be a positive integer, not {max_events!r}")
        if not (lease_seconds > 0):
            raise ValueError(f"lease_seconds must be positive, not {lease_seconds!r}")
        for what, value in (("stream", stream), ("consumer", consumer), ("deadletter_bucket", deadletter_bucket),
                            ("retry_bucket", retry_bucket)):
            if not _NAME.match(value):
                raise ValueError(f"{what} {value!r}: 1 to 64 letters, digits, '_' and '-'")
        if not _SUBJECT.match(subject):
            raise ValueError(f"subject {subject!r}: tokens of letters, digits, '_' and '-' joined by '.'")
        self.max_events = max_events
        self.lease_seconds = float(lease_seconds)
        self.stream = stream
        self.subject = subject
        self.consumer = consumer
        self.deadletter_bucket = deadletter_bucket
        self.retry_bucket = retry_bucket
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self._name = name
        self.description = "nats://" + ",".join(_redacted(s).split("://", 1)[1] for s in self._servers)
        self._dl_stream = f"KV_{deadletter_bucket}"
        self._dl_prefix = f"$KV.{deadletter_bucket}."
        self._retry_stream = f"KV_{retry_bucket}"
        self._retry_prefix = f"$KV.{retry_bucket}."
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._ready = False
        self._closed = False
        self._setup_lock = asyncio.Lock()
        self._lease_lock = asyncio.Lock()
        self._failed_at = 0.0
        self._failure = ""
        self._down_logged = False

    # -- connection and setup ------------------------------------------------------------------------

    async def start(self) -> None:
        await self._ensure()

    async def _ensure(self) -> JetStreamContext:
        """Connected, with the stream, consumer, buckets and pull subscription in place; or
        `QueueUnavailable` (at once while disconnected or within DOWN_BACKOFF of a failed attempt)."""
        if self._closed:
            raise QueueUnavailable("the NATS queue is closed")
        nc = self._nc
        if self._ready and nc is not None and nc.is_connected and self._js is not None:
            return self._js
        if nc is not None and not nc.is_connected and not nc.is_closed:
            raise QueueUnavailable(f"NATS at {self.description} is unreachable (reconnecting)")
        if time.monotonic() - self._failed_at < DOWN_BACKOFF:
            raise QueueUnavailable(self._failure)
        async with self._setup_lock:
            if self._ready and self._nc is not None and self._nc.is_connected and self._js is not None:
                return self._js
            try:
                await asyncio.wait_for(self._setup(), self.connect_timeout + 4 * self.request_timeout)
            except NatsQueueConfigError as exc:
                self._failed_at, self._failure = time.monotonic(), str(exc)
                raise
            except (TimeoutError, OSError, nats.errors.Error) as exc:
                self._failed_at = time.monotonic()
                self._failure = f"NATS at {self.description} is unreachable: {_describe(exc)}"
                if not self._down_logged:
                    log.warning("delivery queue: %s", self._failure)
                    self._down_logged = True
                raise QueueUnavailable(self._failure) from exc
            assert self._js is not None
            return self._js

    async def _connect(self) -> NATS:
        nc = NATS()

        async def on_error(exc: Exception) -> None:
            log.debug("delivery queue: NATS client error: %s", _describe(exc))

        async def on_disconnect() -> None:
            if not self._closed:
                log.warning("delivery queue: lost the connection to NATS at %s; reconnecting", self.description)

        async def on_reconnect() -> None:
            log.warning("delivery queue: reconnected to NATS at %s", self.description)

        try:
            await asyncio.wait_for(nc.connect(
                self._servers, name=self._name, allow_reconnect=True, max_reconnect_attempts=-1,
                reconnect_time_wait=0.5, connect_timeout=max(1, round(self.connect_timeout)),  # type: ignore[arg-type]
                ping_interval=5, max_outstanding_pings=2, error_cb=on_error, disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect), self.connect_timeout)
        except BaseException:
            try:
                await asyncio.wait_for(nc.close(), 1.0)
            except Exception:  # noqa: BLE001 - closing a client that never connected
                pass
            raise
        return nc

    async def _setup(self) -> None:
        if self._nc is None or self._nc.is_closed:
            self._nc = await self._connect()
            self._js = self._nc.jetstream(timeout=self.request_timeout)
            self._sub = None
        assert self._js is not None
        await self._ensure_stream(self._js)
        await self._ensure_consumer(self._js)
        await self._ensure_bucket(self._js, self.deadletter_bucket, ttl=None)
        await self._ensure_bucket(self._js, self.retry_bucket, ttl=RETRY_RECORD_TTL)
        if self._sub is None:
            self._sub = await self._js.pull_subscribe_bind(durable=self.consumer, stream=self.stream)
        if self._down_logged:
            log.warning("delivery queue: NATS at %s is back", self.description)
            self._down_logged = False
        self._ready = True

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        wanted = api.StreamConfig(
            name=self.stream, subjects=[self.subject], retention=api.RetentionPolicy.WORK_QUEUE,
            storage=api.StorageType.FILE, discard=api.DiscardPolicy.NEW, max_msgs=self.max_events,
            duplicate_window=120.0,
            description="event gateway: async deliveries (issue 14)")
        try:
            info = await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            try:
                await js.add_stream(wanted)
                log.info("delivery queue: created the JetStream stream %s", self.stream)
                return
            except nats.js.errors.BadRequestError:
                info = await js.stream_info(self.stream)  # another gateway created it first
        config = info.config
        problems = []
        if config.retention != api.RetentionPolicy.WORK_QUEUE:
            problems.append(f"retention {config.retention} (needs workqueue)")
        if config.storage != api.StorageType.FILE:
            problems.append(f"storage {config.storage} (needs file)")
        if list(config.subjects or []) != [self.subject]:
            problems.append(f"subjects {config.subjects} (needs [{self.subject!r}])")
        if problems:
            raise NatsQueueConfigError(
                f"the JetStream stream {self.stream} exists with {', '.join(problems)}: this gateway leaves it "
                f"as it is; delete it (nats stream rm {self.stream}) or name another stream")
        if config.max_msgs != self.max_events or config.discard != api.DiscardPolicy.NEW:
            log.warning("delivery queue: stream %s: max_msgs %s -> %s (--queue-max-events), discard new",
                        self.stream, config.max_msgs, self.max_events)
            await js.update_stream(config.evolve(max_msgs=self.max_events, discard=api.DiscardPolicy.NEW))

    async def _ensure_consumer(self, js: JetStreamContext) -> None:
        wanted = api.ConsumerConfig(
            name=self.consumer, durable_name=self.consumer, ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.lease_seconds, max_deliver=-1, max_ack_pending=-1, filter_subject=self.subject,
            deliver_policy=api.DeliverPolicy.ALL, description="event gateway delivery workers")
        try:
            info = await js.consumer_info(self.stream, self.consumer)
        except nats.js.errors.NotFoundError:
            await js.add_consumer(self.stream, wanted)
            log.info("delivery queue: created the JetStream consumer %s on %s", self.consumer, self.stream)
            return
        config = info.config
        problems = []
        if config.deliver_subject:
            problems.append("it is a push consumer (needs pull)")
        if config.ack_policy != api.AckPolicy.EXPLICIT:
            problems.append(f"ack policy {config.ack_policy} (needs explicit)")
        if (config.filter_subject or self.subject) != self.subject:
            problems.append(f"filter subject {config.filter_subject!r} (needs {self.subject!r})")
        if problems:
            raise NatsQueueConfigError(
                f"the JetStream consumer {self.consumer} on {self.stream} exists but {', '.join(problems)}: this "
                f"gateway leaves it as it is; delete it (nats consumer rm {self.stream} {self.consumer})")
        if (abs((config.ack_wait or 0) - self.lease_seconds) > 0.001 or config.max_deliver not in (-1, 0, None)
                or config.max_ack_pending != -1):
            # One lease for the whole cluster: the gateway started last sets it (a rolling restart with a
            # new --queue-lease converges on it).
            log.warning("delivery queue: consumer %s: ack_wait %ss -> %ss (--queue-lease)", self.consumer,
                        config.ack_wait, self.lease_seconds)
            await js.add_consumer(self.stream, wanted)

    async def _ensure_bucket(self, js: JetStreamContext, bucket: str, *, ttl: float | None) -> None:
        try:
            await js.key_value(bucket)
        except nats.js.errors.BucketNotFoundError:
            try:
                await js.create_key_value(api.KeyValueConfig(
                    bucket=bucket, history=1, storage=api.StorageType.FILE, ttl=ttl,
                    description="event gateway: dead letters" if ttl is None else "event gateway: retry errors"))
            except nats.js.errors.BadRequestError:
                await js.key_value(bucket)  # another gateway created it first

    def _lost(self, exc: BaseException) -> None:
        """After an error that may mean the stream, consumer or buckets are gone (a server that came back
        empty): the next call sets them up again."""
        if isinstance(exc, nats.js.errors.NoStreamResponseError | nats.js.errors.NotFoundError |
                      nats.js.errors.ServiceUnavailableError | nats.errors.NoRespondersError):
            self._ready = False

    async def _api(self, subject: str, request: dict[str, Any]) -> dict[str, Any]:
        """One JetStream API call (``$JS.API.<subject>``), bounded by the request timeout."""
        assert self._nc is not None
        try:
            msg = await self._nc.request(f"$JS.API.{subject}", json.dumps(request).encode(),
                                         timeout=self.request_timeout)
        except nats.errors.NoRespondersError as exc:
            self._ready = False
            raise QueueUnavailable(f"NATS at {self.description}: JetStream is not enabled or not ready") from exc
        response: dict[str, Any] = json.loads(msg.data)
        if "error" in response:
            raise nats.js.errors.APIError.from_error(response["error"])
        return response

    # -- the worker's side -----------------------------------------------------------------------------

    async def enqueue(self, deliveries: Sequence[NewDelivery]) -> None:
        if not deliveries:
            return
        js = await self._ensure()
        bodies = []
        for delivery in deliveries:
            id = uuid.uuid4().hex
            bodies.append((id, id, _body(id, delivery.space, delivery.function_id, delivery.subscription_id,
                                         delivery.event, delivery.system)))
        await self._publish(js, bodies)

    async def _publish(self, js: JetStreamContext, bodies: list[tuple[str, str, bytes]]) -> None:
        """Publish ``(delivery id, Nats-Msg-Id, body)`` concurrently and wait for every PubAck; on any
        failure delete the ones stored (best effort) and raise."""
        assert self._nc is not None
        limit = self._nc.max_payload
        for _, _, body in bodies:
            if len(body) + 200 > limit:
                raise QueueError(f"a delivery of {len(body)} bytes is over the NATS server's max_payload "
                                 f"({limit} bytes): raise max_payload in nats-server.conf (8MB fits any event)")
        if not self._nc.is_connected:
            raise QueueUnavailable(f"NATS at {self.description} is unreachable (reconnecting)")

        async def one(msg_id: str, body: bytes) -> api.PubAck:
            return await js.publish(self.subject, body, timeout=self.request_timeout, stream=self.stream,
                                    headers={"Nats-Msg-Id": msg_id})

        results = await asyncio.gather(*(one(msg_id, body) for _, msg_id, body in bodies), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if not failures:
            return
        stored = [r.seq for r in results if isinstance(r, api.PubAck) and not r.duplicate and r.seq]
        if stored:
            await self._unpublish(stored)
        first = failures[0]
        full = [f for f in failures if isinstance(f, nats.js.errors.APIError) and f.err_code == _ERR_MAX_MSGS]
        if full:
            raise QueueFull(f"the delivery queue is full ({self.max_events} deliveries, --queue-max-events): "
                            f"try again later")
        if isinstance(first, asyncio.CancelledError):
            raise first
        self._lost(first)
        if isinstance(first, asyncio.TimeoutError | nats.errors.TimeoutError):
            raise QueueUnavailable(f"NATS at {self.description} did not confirm the event within "
                                   f"{self.request_timeout:g}s") from first
        if isinstance(first, Exception):
            raise QueueUnavailable(f"NATS at {self.description} did not take the event: {_describe(first)}") from first
        raise first

    async def _unpublish(self, seqs: list[int]) -> None:
        async def delete(seq: int) -> None:
            await self._api(f"STREAM.MSG.DELETE.{self.stream}", {"seq": seq, "no_erase": True})

        results = await asyncio.gather(*(delete(s) for s in seqs), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            log.warning("delivery queue: %d of %d deliveries of a refused batch could not be taken back (%s): "
                        "they will be delivered", len(errors), len(seqs), _describe(errors[0]))

    async def lease(self, limit: int, wait: float) -> list[LeasedDelivery]:
        limit = cap_limit(limit)
        if limit < 1:
            return []
        # A fetch needs a little time even for what is there now: a wait of 0 asks for up to 50 ms.
        wait = max(0.05, float(wait))
        try:
            await self._ensure()
        except QueueUnavailable:
            await asyncio.sleep(wait)
            return []
        async with self._lease_lock:
            sub = self._sub
            if sub is None or not self._ready:
                return []
            try:
                msgs = await asyncio.wait_for(sub.fetch(limit, timeout=wait), wait + self.request_timeout)
            except (TimeoutError, nats.errors.TimeoutError):
                return []
            except nats.errors.Error as exc:
                if self._closed:
                    return []
                self._lost(exc)
                if isinstance(exc, nats.js.errors.APIError) and exc.code in (404, 409):
                    self._ready = False  # the consumer is gone: set it up again
                log.warning("delivery queue: fetching from %s failed: %s", self.consumer, _describe(exc))
                await asyncio.sleep(min(wait, 1.0))
                return []
        leased_at = _now()
        expires = self._lease_end(time.monotonic())
        out: list[LeasedDelivery] = []
        for msg in msgs:
            delivery = await self._leased(msg, leased_at, expires)
            if delivery is not None:
                out.append(delivery)
        redelivered = [d for d in out if d.attempts > 0]
        if redelivered:
            records = await asyncio.gather(*(self._retry_record(d.id) for d in redelivered))
            for d, record in zip(redelivered, records, strict=True):
                if record is not None:
                    d.last_error = record.get("error")
                    if isinstance(record.get("first"), int | float):
                        d.first_attempt_at = float(record["first"])
        return out

    async def _leased(self, msg: Msg, leased_at: float, expires: float) -> LeasedDelivery | None:
        try:
            body = json.loads(msg.data)
            meta = msg.metadata
            delivery = LeasedDelivery(
                id=_text(body, "id"), space=_text(body, "space"), function_id=_text(body, "functionId"),
                subscription_id=_text(body, "subscriptionId"), event=body["event"], system=bool(body["system"]),
                attempts=max(0, int(meta.num_delivered or 1) - 1), token=_Lease(msg, leased_at, expires))
            if not isinstance(delivery.event, dict) or not _ID.match(delivery.id):
                raise ValueError("not a delivery")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("delivery queue: dropping a message on %s that is not a delivery (%s)", self.subject, exc)
            try:
                await msg.term()
            except nats.errors.Error:
                pass
            return None
        if delivery.attempts > 0:
            # Until the retry record says otherwise, the first attempt was no later than the publish.
            stamp = meta.timestamp
            delivery.first_attempt_at = stamp.timestamp() if stamp is not None else None
        return delivery

    async def _retry_record(self, id: str) -> dict[str, Any] | None:
        try:
            response = await self._api(f"STREAM.MSG.GET.{self._retry_stream}", {"last_by_subj": self._retry_prefix + id})
            record = json.loads(base64.b64decode(response["message"].get("data") or b""))
            return record if isinstance(record, dict) else None
        except (TimeoutError, nats.errors.Error, QueueError, ValueError, KeyError):
            return None

    def _stale(self, delivery: LeasedDelivery, lease: _Lease, what: str) -> bool:
        """Whether this lease has run out: JetStream would take an ack, NAK or dead letter from a holder
        whose lease expired and was given to another (its acks name the stream sequence only), so a
        holder past its lease changes nothing -- the delivery is whoever leased it next's to finish."""
        if time.monotonic() < lease.expires:
            return False
        log.info("delivery queue: %s of %s dropped: its lease (%gs, --queue-lease) ran out, it is delivered "
                 "again", what, delivery.id, self.lease_seconds)
        return True

    def _lease_end(self, started: float) -> float:
        """When a lease taken or renewed at ``started`` (monotonic) ends by this holder's clock: a little
        before JetStream's ack wait does, so an ack sent at the last moment still lands inside it."""
        return started + self.lease_seconds - min(0.25, 0.05 * self.lease_seconds)

    async def extend(self, deliveries: Sequence[LeasedDelivery]) -> list[LeasedDelivery]:
        """An in-progress ack (``+WPI``: JetStream starts the message's ack wait again) for each lease not
        run out by this holder's clock, all published and then confirmed by one flush (one round trip)."""
        started = time.monotonic()
        lost: list[LeasedDelivery] = []
        renewing: list[_Lease] = []
        for delivery in deliveries:
            lease = delivery.token if isinstance(delivery.token, _Lease) else None
            if lease is None or started >= lease.expires or not lease.msg.reply:
                lost.append(delivery)
            else:
                renewing.append(lease)
        if not renewing:
            return lost
        nc = self._nc
        if nc is None or not nc.is_connected:
            raise QueueUnavailable(f"NATS at {self.description} is unreachable: cannot renew {len(renewing)} "
                                   f"lease(s)")
        try:
            for lease in renewing:
                await lease.msg.in_progress()  # a publish, buffered
            await nc.flush(timeout=max(1, round(self.request_timeout)))
        except (TimeoutError, nats.errors.Error) as exc:
            self._lost(exc)
            raise QueueUnavailable(f"NATS at {self.description}: renewing {len(renewing)} lease(s) failed: "
                                   f"{_describe(exc)}") from exc
        expires = self._lease_end(started)
        for lease in renewing:
            lease.expires = expires
        return lost

    async def ack(self, delivery: LeasedDelivery) -> None:
        lease = _token(delivery)
        if self._stale(delivery, lease, "the ack"):
            return
        try:
            await lease.msg.ack_sync(timeout=self.request_timeout)
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("delivery queue: ack of %s failed (%s): it will be delivered again after its lease",
                        delivery.id, _describe(exc))
            return
        if delivery.attempts > 0:
            await self._forget_retry(delivery.id)

    async def retry(self, delivery: LeasedDelivery, *, delay: float, error: str) -> None:
        lease = _token(delivery)
        if self._stale(delivery, lease, "the retry"):
            return
        first = delivery.first_attempt_at if delivery.first_attempt_at is not None else lease.leased_at
        record = json.dumps({"error": error[:MAX_ERROR_CHARS], "first": first}).encode()
        try:
            js = await self._ensure()
            await js.publish(self._retry_prefix + delivery.id, record, timeout=self.request_timeout)
        except (TimeoutError, QueueError, nats.errors.Error) as exc:
            log.warning("delivery queue: could not keep the error of %s (%s)", delivery.id, _describe(exc))
        nak = b"-NAK"
        if delay > 0:
            nak += b" " + json.dumps({"delay": int(min(delay, 10 * 365 * 86400.0) * 1e9)}).encode()
        try:
            assert lease.msg._client is not None and lease.msg.reply
            # A request, not a publish: the NAK is processed when this returns.
            await lease.msg._client.request(lease.msg.reply, nak, timeout=self.request_timeout)
        except (TimeoutError, nats.errors.Error, AssertionError) as exc:
            log.warning("delivery queue: retry of %s failed (%s): it will be delivered again after its lease",
                        delivery.id, _describe(exc))

    async def dead(self, delivery: LeasedDelivery, *, error: str) -> None:
        lease = _token(delivery)
        if self._stale(delivery, lease, "the dead letter"):
            return
        now = _now()
        first = delivery.first_attempt_at if delivery.first_attempt_at is not None else lease.leased_at
        letter = {
            "id": delivery.id, "space": delivery.space, "functionId": delivery.function_id,
            "subscriptionId": delivery.subscription_id, "event": delivery.event, "system": delivery.system,
            "attempts": delivery.attempts + 1, "lastError": error[:MAX_ERROR_CHARS], "firstAttemptAt": first,
            "lastAttemptAt": now,
        }
        # The dead letter first, then the ack: a crash between them delivers the message again (and the
        # same key is written again), never loses it.
        try:
            js = await self._ensure()
            await js.publish(self._dead_key(delivery.space, delivery.function_id, delivery.id),
                             json.dumps(letter).encode(), timeout=self.request_timeout)
        except (TimeoutError, QueueError, nats.errors.Error) as exc:
            log.warning("delivery queue: could not write the dead letter of %s (%s): it will be delivered "
                        "again after its lease", delivery.id, _describe(exc))
            return
        try:
            await lease.msg.ack_sync(timeout=self.request_timeout)
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("delivery queue: ack of dead letter %s failed (%s): it will be delivered again after "
                        "its lease", delivery.id, _describe(exc))
            return
        await self._forget_retry(delivery.id)

    async def _forget_retry(self, id: str) -> None:
        try:
            await self._api(f"STREAM.PURGE.{self._retry_stream}", {"filter": self._retry_prefix + id})
        except (TimeoutError, nats.errors.Error, QueueError) as exc:
            log.debug("delivery queue: could not remove the retry record of %s: %s", id, _describe(exc))

    # -- dead letters ------------------------------------------------------------------------------------

    def _dead_key(self, space: str, function_id: str, id: str) -> str:
        return f"{self._dl_prefix}{key_token(space)}.{key_token(function_id)}.{id}"

    def _dead_filter(self, space: str, function_id: str | None, id: str | None) -> str | None:
        """The subject filter of the dead letters asked for, None when no key can match (a name too
        long, an id this queue never makes: nothing to find, and nothing hostile reaches NATS)."""
        if len(space) > MAX_NAME_CHARS or (function_id is not None and len(function_id) > MAX_NAME_CHARS):
            return None
        if id is not None and not is_delivery_id(id):
            return None
        function = "*" if function_id is None else key_token(function_id)
        return f"{self._dl_prefix}{key_token(space)}.{function}.{'>' if id is None else id}"

    async def _call(self, what: str, coro: Any) -> Any:
        """A Config API call: NATS errors become `QueueUnavailable` naming ``what``."""
        try:
            return await coro
        except QueueError:
            raise
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            self._lost(exc)
            raise QueueUnavailable(f"NATS at {self.description}: {what} failed: {_describe(exc)}") from exc

    async def _letters(self, subject: str, limit: int, *, last_seq: int | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``limit`` (subject, dead letter) matching ``subject``, oldest first."""
        out: list[tuple[str, dict[str, Any]]] = []
        seq = 1
        while len(out) < limit:
            try:
                response = await self._api(f"STREAM.MSG.GET.{self._dl_stream}", {"seq": seq, "next_by_subj": subject})
            except nats.js.errors.APIError as exc:
                if exc.err_code == _ERR_NO_MESSAGE or exc.code == 404:
                    break
                raise
            message = response["message"]
            seq = int(message["seq"]) + 1
            if last_seq is not None and seq - 1 > last_seq:
                break
            try:
                letter = json.loads(base64.b64decode(message.get("data") or b""))
            except ValueError:
                continue
            if isinstance(letter, dict):
                out.append((str(message["subject"]), letter))
        return out

    async def dead_letters(self, space: str, function_id: str | None = None, limit: int = MAX_LIMIT) -> list[DeadLetter]:
        js = await self._ensure()
        del js
        subject = self._dead_filter(space, function_id, None)
        if subject is None or limit < 1:
            return []
        letters = await self._call("listing dead letters", self._letters(subject, cap_limit(limit)))
        out = []
        for _, letter in letters:
            try:
                out.append(DeadLetter(
                    id=str(letter["id"]), space=str(letter["space"]), function_id=str(letter["functionId"]),
                    subscription_id=str(letter.get("subscriptionId") or ""), event=dict(letter["event"]),
                    attempts=int(letter["attempts"]), last_error=str(letter.get("lastError") or ""),
                    first_attempt_at=float(letter["firstAttemptAt"]), last_attempt_at=float(letter["lastAttemptAt"])))
            except (KeyError, TypeError, ValueError):
                log.warning("delivery queue: skipping an unreadable dead letter in %s", self.deadletter_bucket)
        return out

    async def redeliver(self, space: str, *, id: str | None = None, function_id: str | None = None) -> int:
        if id is None and function_id is None:
            raise ValueError("redeliver needs an id or a function id")
        js = await self._ensure()
        subject = self._dead_filter(space, function_id, id)
        if subject is None:
            return 0

        async def run() -> int:
            info = await self._api(f"STREAM.INFO.{self._dl_stream}", {})
            last_seq = int(info["state"]["last_seq"])
            done = 0
            while done < MAX_REDELIVER:
                letters = await self._letters(subject, 1 if id is not None else 100, last_seq=last_seq)
                if not letters:
                    break
                bodies = []
                for _, letter in letters:
                    lid = str(letter["id"])
                    # A fresh Nats-Msg-Id: the delivery keeps its id, but a redelivery within the
                    # de-duplication window of its first publish must not be taken for a duplicate.
                    bodies.append((lid, f"{lid}.r{uuid.uuid4().hex[:16]}", _body(
                        lid, str(letter["space"]), str(letter["functionId"]), str(letter.get("subscriptionId") or ""),
                        letter["event"], bool(letter.get("system")))))
                await self._publish(js, bodies)
                # Published first, then forgotten: a crash between the two leaves the dead letter listed
                # (it can be redelivered again), never a lost one.
                await asyncio.gather(*(self._api(f"STREAM.PURGE.{self._dl_stream}", {"filter": s})
                                       for s, _ in letters))
                done += len(letters)
                if id is not None:
                    break
            return done

        result: int = await self._call("redelivering dead letters", run())
        return result

    async def delete_dead(self, space: str, id: str) -> bool:
        await self._ensure()
        subject = self._dead_filter(space, None, id)
        if subject is None:
            return False
        response = await self._call("deleting a dead letter",
                                    self._api(f"STREAM.PURGE.{self._dl_stream}", {"filter": subject}))
        return int(response.get("purged") or 0) > 0

    async def dead_counts(self) -> dict[tuple[str, str], int]:
        await self._ensure()
        subjects = await self._call("counting dead letters", self._subjects(self._dl_stream, self._dl_prefix + ">"))
        counts: dict[tuple[str, str], int] = {}
        for subject, n in subjects.items():
            parts = subject[len(self._dl_prefix):].split(".")
            if len(parts) != 3 or not n:
                continue
            key = (parse_key_token(parts[0]), parse_key_token(parts[1]))
            counts[key] = counts.get(key, 0) + 1
        return counts

    async def _subjects(self, stream: str, filter: str) -> dict[str, int]:
        """Every subject of ``stream`` matching ``filter`` with its message count (paged)."""
        subjects: dict[str, int] = {}
        offset = 0
        while True:
            response = await self._api(f"STREAM.INFO.{stream}", {"subjects_filter": filter, "offset": offset})
            page = response.get("state", {}).get("subjects") or {}
            subjects.update(page)
            total = int(response.get("total") or 0)
            offset += len(page)
            if not page or offset >= total:
                return subjects

    async def depth(self) -> int:
        await self._ensure()
        response = await self._call("reading the queue depth", self._api(f"STREAM.INFO.{self.stream}", {}))
        return int(response["state"]["messages"])

    async def close(self) -> None:
        self._closed = True
        self._ready = False
        nc, self._nc, self._js, self._sub = self._nc, None, None, None
        if nc is not None:
            try:
                await asyncio.wait_for(nc.close(), 2.0)
            except (TimeoutError, nats.errors.Error, OSError) as exc:
                log.debug("delivery queue: closing the NATS client: %s", _describe(exc))


def _body(id: str, space: str, function_id: str, subscription_id: str, event: Any, system: bool) -> bytes:
    return json.dumps({"id": id, "space": space, "functionId": function_id, "subscriptionId": subscription_id,
                       "event": event, "system": system}, separators=(",", ":")).encode()


def _text(body: dict[str, Any], key: str) -> str:
    value = body[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def _token(delivery: LeasedDelivery) -> _Lease:
    if not isinstance(delivery.token, _Lease):
        raise ValueError(f"delivery {delivery.id} was not leased from this NATS queue")
    return delivery.token


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, nats.js.errors.APIError) and exc.description:
        text = exc.description
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
