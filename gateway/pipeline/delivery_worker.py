"""The delivery worker: what the delivery queue holds, delivered (issue 14).

One loop per process leases up to the free delivery slots (``--workers``) from the
:class:`~gateway.queue.base.DeliveryQueue` and makes each delivery concurrently; each one ends as:

- **success** -> ``ack`` (gone from the queue);
- **failure with attempts left** (the function's *current* ``retry`` policy: ``maxAttempts`` and the
  backoff ``delay(n)``) -> ``retry(delay)``: the queue holds the delivery until it is due again (on any
  gateway sharing the queue); a backoff never holds a slot;
- **the last attempt failed** -> ``dead(error)``: a dead letter (listed, redelivered and deleted through
  the Config API), counted in ``eventgateway_deadletters_total`` and ``eventgateway_events_dropped``;
  ``function.invocationFailed`` is emitted on that attempt as on every failed attempt, its ``error``
  saying it was the last;
- **the function was deleted** since the event was accepted -> a dead letter at once, saying so;
- **a plugin vetoed** it (a sync ``function.invoking`` reaction) -> done, not retried (``ack``), counted
  in ``eventgateway_events_dropped`` and logged.

Deliveries of system events (``Delivery.system``) are plain calls: they emit no system events of their
own, and follow the same retry and dead-letter rules. Every attempt calls the function with the event
exactly as accepted (its ``id`` too, so a function can de-duplicate) and tells an http function which
attempt it is (``Event-Gateway-Delivery-Attempt: <n>``, from 1).

**Plugins.** A durable delivery outlives the request that accepted it (a restart, another gateway), so
its ``function.invoking`` / ``invoked`` / ``invocationFailed`` stages run with the plugin set current when
the attempt is made, not the one of the request.

**Gauges.** ``eventgateway_deadletters{space,function}`` and ``eventgateway_async_queue_depth`` (and its
older name ``eventgateway_events_backlog``) are read from the queue every few seconds and soon after
every dead letter, redelivery and delete. With a queue shared by several processes or gateways each
reports the whole queue's numbers (take the max, not the sum).

**Stopping.** :meth:`DeliveryWorker.drain`: a non-durable queue (``memory``) is delivered until empty,
retries included, as before issue 14; a durable one stops leasing at once and lets the deliveries in
flight finish: what was not started stays queued for the next start (or another gateway). A lease
waiting when the worker stops is cancelled when the queue says that is safe (``lease_cancel_safe``:
memory, sqlite), otherwise let finish (at most its ``LEASE_WAIT``), so no delivery is left leased by no one.

**Leases.** While calls run, one timer per worker renews the leases of every delivery in flight every
third of ``--queue-lease``, in one :meth:`~gateway.queue.base.DeliveryQueue.extend` (one backend round trip):
a call may take longer than the lease without another worker delivering it a second time. Renewal of a
delivery stops when its outcome is recorded, and all renewal when the worker stops (``close``, or a drain
that ended with nothing in flight), so a dead or stopped worker's deliveries come back after one lease.
A renewal that finds a lease lost (the worker stalled past it, and another may have leased it) is logged
and counted in ``leases_lost`` (and ``eventgateway_delivery_leases_lost_total``); the call's outcome is still acked, retried or killed, which on a lost
lease changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from gateway.events import cloudevents as ce
from gateway.metrics import Metrics
from gateway.observe.observation import Observer
from gateway.plugins.contract import CurrentPlugins
from gateway.queue.base import DeliveryQueue, LeasedDelivery, QueueError

from .emitter import SystemEmitter
from .invoke import FunctionLookup, Invoker

__all__ = ["ATTEMPT_HEADER", "DeliveryWorker"]

log = logging.getLogger("gateway.pipeline.delivery")

#: The header that tells an http function which attempt of an async delivery it receives (1, 2, ...).
ATTEMPT_HEADER = "Event-Gateway-Delivery-Attempt"
#: How long one ``lease`` call waits for a delivery (also how long a drain may wait for the lease loop).
LEASE_WAIT = 0.5
#: How often the dead-letter and depth gauges are read from the queue.
GAUGE_SECONDS = 5.0
#: Pause after the queue failed a lease (unreachable NATS, unwritable SQLite file).
_ERROR_PAUSE = 1.0
#: Warnings about an unreachable queue repeat at most this often.
_WARN_SECONDS = 30.0


class DeliveryWorker:
    """Leases deliveries from ``queue`` and makes them, ``workers`` at a time (see the module's doc)."""

    def __init__(self, queue: DeliveryQueue, view: FunctionLookup, plugins: CurrentPlugins, invoker: Invoker,
                 emitter: SystemEmitter, metrics: Metrics, *, workers: int, lease_wait: float = LEASE_WAIT,
                 gauge_seconds: float = GAUGE_SECONDS, observer: Observer | None = None,
                 renew_leases: bool = True) -> None:
        self._queue = queue
        self._view = view
        self._plugins = plugins
        self._invoker = invoker
        self._emitter = emitter
        self._metrics = metrics
        self._observer = observer if observer is not None else Observer()
        self._workers = max(1, workers)
        self._lease_wait = lease_wait
        self._gauge_seconds = gauge_seconds
        self._in_flight: set[asyncio.Task[None]] = set()
        #: The delivery each task in flight holds the lease of, renewed while the task runs.
        self._held: dict[asyncio.Task[None], LeasedDelivery] = {}
        self._renew_leases = renew_leases
        self._renew_task: asyncio.Task[None] | None = None
        #: Leases found lost by a renewal while their call ran (another worker may deliver them again).
        self.leases_lost = 0
        self._slot_free: asyncio.Event | None = None
        self._refresh: asyncio.Event | None = None
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._gauge_task: asyncio.Task[None] | None = None
        self._warned_at = -_WARN_SECONDS

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def start(self) -> None:
        self._stopping = False
        self._slot_free = asyncio.Event()
        self._refresh = asyncio.Event()
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._lease_loop(), name="delivery-worker")
        if self._gauge_task is None:
            self._gauge_task = asyncio.create_task(self._gauge_loop(), name="delivery-gauges")
        if self._renew_leases and self._renew_task is None:
            self._renew_task = asyncio.create_task(self._renew_loop(), name="delivery-lease-renewal")

    # -- leasing -----------------------------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        assert self._slot_free is not None
        while not self._stopping:
            free = self._workers - len(self._in_flight)
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            try:
                leased = await self._queue.lease(free, self._lease_wait)
            except QueueError as exc:
                self._warn(f"delivery queue {self._queue.description}: cannot lease deliveries: {exc}")
                await self._pause(_ERROR_PAUSE)
                continue
            except Exception:
                log.exception("delivery queue %s: lease failed", self._queue.description)
                await self._pause(_ERROR_PAUSE)
                continue
            for delivery in leased:
                task = asyncio.create_task(self._deliver(delivery), name="delivery")
                self._in_flight.add(task)
                self._held[task] = delivery
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._held.pop(task, None)  # its outcome is recorded (or given up): no more renewals
        if self._slot_free is not None:
            self._slot_free.set()

    async def _pause(self, seconds: float) -> None:
        assert self._slot_free is not None
        self._slot_free.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._slot_free.wait(), seconds)  # a stop sets it: no full pause

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_SECONDS:
            self._warned_at = now
            log.warning("%s", message)

    # -- lease renewal -----------------------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        """Every third of the lease, renew the leases of every delivery in flight, all in one ``extend``
        (one backend round trip), so a call slower than ``--queue-lease`` is not delivered a second time
        by another worker. A lease found lost is logged and counted (`leases_lost`) and not renewed
        again; its call's outcome is recorded as usual (the queue ignores it on a lease it lost)."""
        period = self._queue.lease_seconds / 3
        while True:
            await asyncio.sleep(period)
            held = list(self._held.items())
            if not held:
                continue
            try:
                lost = await self._queue.extend([delivery for _, delivery in held])
            except QueueError as exc:
                self._warn(f"delivery queue {self._queue.description}: cannot renew the leases of {len(held)} "
                           f"deliveries in flight: {exc} (tried again in {period:g}s)")
                continue
            except Exception:
                log.exception("delivery queue %s: renewing leases failed", self._queue.description)
                continue
            if not lost:
                continue
            lost_ids = {id(delivery) for delivery in lost}
            for task, delivery in held:
                if id(delivery) in lost_ids:
                    self._held.pop(task, None)
            self.leases_lost += len(lost)
            self._metrics.delivery_leases_lost.inc(len(lost))
            first = lost[0]
            log.warning("delivery queue %s: the lease of %d delivery(ies) in flight was lost before its call "
                        "ended (e.g. %s to %s/%s): another worker may deliver it again (%d lost since start)",
                        self._queue.description, len(lost), first.id, first.space, first.function_id,
                        self.leases_lost)

    async def _stop_renewing(self) -> None:
        task, self._renew_task = self._renew_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- one delivery ------------------------------------------------------------------------------------

    async def _deliver(self, delivery: LeasedDelivery) -> None:
        try:
            await self._attempt(delivery)
        except asyncio.CancelledError:
            raise
        except QueueError as exc:
            # The outcome could not be written: the lease expires and the delivery is made again.
            self._warn(f"delivery queue {self._queue.description}: cannot record the outcome of delivery "
                       f"{delivery.id}: {exc} (it is delivered again after its lease)")
        except Exception:
            log.exception("async delivery %s to %s/%s failed unexpectedly (delivered again after its lease)",
                          delivery.id, delivery.space, delivery.function_id)

    async def _attempt(self, delivery: LeasedDelivery) -> None:
        if not self._observer.active():
            await self._make(delivery)
            return
        # Watched (the live tail, traces): a record of kind "delivery" and a span linked to the request's.
        obs = self._observer.delivery(space=delivery.space, function_id=delivery.function_id, event=delivery.event,
                                      delivery_id=delivery.id, attempt=delivery.attempts + 1, system=delivery.system)
        obs.enter()
        try:
            status = await self._make(delivery)
        except BaseException as exc:
            obs.finish(500, exc)
            raise
        obs.finish(status)

    async def _make(self, delivery: LeasedDelivery) -> int:
        """One attempt; what it came to as a status: 200 delivered, 500 failed (retried or a dead letter),
        a plugin's rejection status when it vetoed the delivery."""
        space, function_id, event = delivery.space, delivery.function_id, delivery.event
        attempt = delivery.attempts + 1
        function = self._view.function(space, function_id)
        if function is None:
            await self._bury(delivery, f"function {function_id!r} not found in space {space!r}: it was deleted "
                                       f"after the event was accepted")
            return 500
        policy = function.retry_policy
        attempts = max(1, int(policy.max_attempts))
        last = attempt >= attempts
        if delivery.system:
            result = await self._invoker.call(space, function_id, ce.to_json(event), "async", attempt=attempt)
            if not result.ok:
                log.info("system event delivery to %s/%s failed (attempt %d of %d): %s", space, function_id,
                         attempt, attempts, result.error)
        else:
            note = (f" (attempt {attempt} of {attempts}, the last: kept as a dead letter)" if last
                    else f" (attempt {attempt} of {attempts}, will retry)")
            result = await self._invoker.invoke(space, function_id, event, self._plugins.current(), mode="async",
                                                attempt_note=note, attempt=attempt)
            if result.rejection is not None:
                self._metrics.events_dropped.labels(space, ce.event_type(event)).inc()
                log.warning("async delivery to %s/%s dropped: plugin %s blocked it (%s)", space, function_id,
                            result.rejection.plugin, result.rejection.message)
                await self._queue.ack(delivery)
                return result.rejection.status
        if result.ok:
            await self._queue.ack(delivery)
            return 200
        error = result.error or "the call failed"
        if last:
            await self._bury(delivery, error)
            return 500
        self._metrics.async_retries.labels(space, function_id).inc()
        await self._queue.retry(delivery, delay=policy.delay(attempt), error=error)
        return 500

    async def _bury(self, delivery: LeasedDelivery, error: str) -> None:
        await self._queue.dead(delivery, error=error)
        space, function_id = delivery.space, delivery.function_id
        self._metrics.deadletters_total.labels(space, function_id).inc()
        self._metrics.events_dropped.labels(space, ce.event_type(delivery.event)).inc()
        log.warning("async delivery of %s %s to %s/%s is now a dead letter after %d attempt(s): %s",
                    ce.event_type(delivery.event), ce.event_id(delivery.event), space, function_id,
                    delivery.attempts + 1, error)
        self.refresh_soon()

    # -- gauges ------------------------------------------------------------------------------------------

    def refresh_soon(self) -> None:
        """Read the gauges from the queue soon (after a dead letter, a redelivery, a delete)."""
        if self._refresh is not None:
            self._refresh.set()

    async def refresh_gauges(self) -> None:
        depth = await self._queue.depth()
        self._metrics.async_queue_depth.set(depth)
        self._metrics.events_backlog.set(depth)
        self._metrics.deadletters.set_counts(await self._queue.dead_counts())

    async def _gauge_loop(self) -> None:
        assert self._refresh is not None
        while True:
            try:
                await self.refresh_gauges()
            except QueueError as exc:
                self._warn(f"delivery queue {self._queue.description}: cannot read its counts: {exc}")
            except Exception:
                log.exception("delivery queue %s: reading its counts failed", self._queue.description)
            self._refresh.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refresh.wait(), self._gauge_seconds)
            await asyncio.sleep(0.05)  # a burst of dead letters: one read

    # -- stopping ----------------------------------------------------------------------------------------

    async def settle(self, timeout: float) -> bool:
        """Wait until the queue holds nothing and no delivery is in flight, and no system event is being
        queued (tests, and the drain of a non-durable queue); False when ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        while True:
            if not self._in_flight and not self._emitter.pending:
                try:
                    if await self._queue.depth() == 0 and not self._in_flight and not self._emitter.pending:
                        return True
                except QueueError:
                    pass
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)

    async def drain(self, timeout: float) -> bool:
        """Stop (see the module's doc); False when ``timeout`` ran out with deliveries in flight (or, for a
        non-durable queue, still queued)."""
        deadline = time.monotonic() + timeout
        done = True
        if not self._queue.durable:
            done = await self.settle(timeout)
            if not done:
                log.warning("drain timed out with %d async deliveries not made (--queue memory: lost at exit)",
                            await self._queue.depth())
        await self._stop_leasing(max(0.0, deadline - time.monotonic()))
        if self._in_flight:
            _, pending = await asyncio.wait(self._in_flight, timeout=max(0.0, deadline - time.monotonic()))
            if pending:
                log.warning("drain timed out with %d async deliveries in flight (delivered again after their "
                            "lease when the queue is durable)", len(pending))
                done = False
        if not self._in_flight:
            await self._stop_renewing()
        return done

    async def _stop_leasing(self, timeout: float) -> None:
        self._stopping = True
        if self._slot_free is not None:
            self._slot_free.set()
        task, self._loop_task = self._loop_task, None
        if task is None:
            return
        if self._queue.lease_cancel_safe:  # (memory, sqlite) a cancelled lease holds nothing: no need to wait it out
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        # A lease under way is let finish (cancelled, its deliveries would stay leased by no one until the
        # lease expires); what it returns is started and counted in flight.
        done, _ = await asyncio.wait([task], timeout=max(timeout, self._lease_wait + 0.5))
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        """Stop at once: deliveries still in flight are cancelled (a durable queue delivers them again
        after their lease)."""
        await self._stop_leasing(0.0)
        for task in list(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=5.0)
        await self._stop_renewing()
        gauge, self._gauge_task = self._gauge_task, None
        if gauge is not None:
            gauge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gauge
