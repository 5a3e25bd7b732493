"""The composition root: :class:`Gateway` builds every component of one gateway and starts and stops
them in dependency order.

Start: store -> view (first snapshot loaded, so the Events API never serves an empty configuration)
-> plugins (flag/file plugins must load or start-up fails) -> event plane (which opens the delivery
queue, ``--queue``, and starts the delivery worker; a queue file written by a newer gateway fails the
start-up, a queue that cannot be reached now does not). Stop is the reverse, after draining: new events get
503, in-flight requests and async deliveries get ``drain_timeout`` (a ``memory`` queue is emptied, a
durable one keeps what was not started for the next start).
Nothing here is global, so tests run several gateways in one process.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from quart import Quart

from gateway.config.service import ConfigService
from gateway.pipeline import EventPlane
from gateway.http.config_api import create_config_app
from gateway.http.events_api import EventsApp
from gateway.http.events_api import create_app as create_events_app
from gateway.metrics import Metrics
from gateway.observe.observation import Observer
from gateway.observe.tail import TailHub
from gateway.observe.tracing import Tracing, configure_tracing
from gateway.plugins.kv_backend import open_kv, redacted_url
from gateway.plugins.manager import PluginBudget, PluginManager
from gateway.queue.base import QueueMisconfigured, QueueUnavailable
from gateway.queue.open import open_queue
from gateway.settings import Settings
from gateway.config.migrate import migrate_ids
from gateway.store import open_store
from gateway.store.base import Store
from gateway.config.view import ConfigView

__all__ = ["Gateway"]

log = logging.getLogger("gateway")


class Gateway:
    """One gateway: its store, configuration view, plugins, event plane and both Quart apps."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store: Store = store if store is not None else open_store(settings.store_url, **settings.db_options)
        self.view = ConfigView(self.store, self.metrics)
        # Metric labels name configured spaces and event types only (clients choose the rest).
        self.metrics.bind(known_space=lambda space: self.view.generation(space) > 0,
                          known_type=lambda space, name: self.view.event_type(space, name) is not None,
                          known_function=lambda space, id: self.view.function(space, id) is not None)
        # A store that reconnects on its own (etcd resumes its watch) reports reachability itself.
        if (add_availability_listener := getattr(self.store, "add_availability_listener", None)) is not None:
            add_availability_listener(lambda up: self.metrics.store_up.set(1 if up else 0))
        self.config = ConfigService(self.store, self.view)
        # The plugins' kv namespaces (--plugin-kv): this process's memory, or a Redis shared by every process
        # and gateway pointed at it. Opening it does no I/O; it is closed last, after the plugins.
        self.kv = open_kv(settings.plugin_kv)
        self.plugins = PluginManager(
            view=self.view, metrics=self.metrics, plugin_paths=settings.plugins, plugins_config=settings.plugins_config,
            budget=PluginBudget(memory=settings.plugins_max_memory, instances=settings.plugins_max_instances,
                                threads=settings.plugins_max_threads),
            kv_store=self.kv)
        # Where accepted async deliveries wait (--queue): opened (no I/O) here, started and closed by the
        # event plane.
        self.queue = open_queue(settings.queue_url, data_dir=settings.data_dir,
                                max_events=settings.queue_max_events, lease_seconds=settings.queue_lease,
                                fsync=settings.queue_fsync)
        # Seeing every event (issue 15): the live tail (GET /v1/events/tail reads it: the Config API app takes
        # it from `self.tail`) and the traces (--otel-endpoint or the OTEL_* variables; None when off). Both
        # feed on one observation per event, made only while one of them wants it.
        self.tail = TailHub()
        self.tracing: Tracing | None = configure_tracing(settings.otel_endpoint)
        if self.tracing is not None:
            self.tracing.register_metrics(self.metrics.registry)  # spans exported / dropped / queued
        self.observer = Observer(self.tail, self.tracing)
        self.events = EventPlane(self.view, self.plugins, self.metrics, queue=self.queue, workers=settings.workers,
                                 max_response_bytes=settings.max_function_response_bytes, observer=self.observer)
        self.events_app: EventsApp = create_events_app(self.events, max_batch_events=settings.max_batch_events,
                                                       events_token=settings.events_token)
        self.config_app: Quart = create_config_app(self)
        self._started: list[Any] = []

    @property
    def draining(self) -> bool:
        return bool(self.events.draining)

    async def start(self) -> None:
        """Start every component; on failure, stop what was started and re-raise."""
        try:
            self._started.append(_ObserveCloser(self.tail, self.tracing))
            self._started.append(_KvCloser(self.kv))
            await self._probe_kv()
            await self.store.open()
            self._started.append(self.store)
            await migrate_ids(self.store)  # before the view loads: ids escape ',' and ';' (issue 12)
            await self.view.start()
            self._started.append(self.view)
            await self.plugins.start()
            self._started.append(self.plugins)
            await self._check_queue()
            await self.events.start()
            self._started.append(self.events)
        except BaseException:
            await self._close_started()
            raise
        log.info("gateway started: store %s at revision %d, delivery queue %s%s", self.settings.store_url,
                 self.view.revision, self.queue.description, "" if self.queue.durable else " (not durable)")
        if self.tracing is not None:
            log.info("tracing: spans go to %s", self.tracing.description)
        if self.settings.workers_backlog is not None:
            log.warning("--workers-backlog is no longer used: accepted async events wait in the delivery queue, "
                        "bounded by --queue-max-events (%d)", self.settings.queue_max_events)

    async def _check_queue(self) -> None:
        """Open the delivery queue ahead of the event plane (which starts it again: a no-op once it is open)
        so that a queue this gateway can never use -- a SQLite file with a newer schema -- stops the start-up
        with the message naming the file. One that cannot be opened *now* does not: the event plane logs it
        and async events get 503 until it can be opened."""
        try:
            await self.queue.start()
        except QueueMisconfigured:
            await self.queue.close()
            raise
        except QueueUnavailable:
            pass

    async def _probe_kv(self) -> None:
        """Say where the kv backend is, and warn (once) when a Redis does not answer: the gateway starts all
        the same, and kv calls answer EG_UNAVAILABLE until it is back."""
        probe = getattr(self.kv, "probe", None)
        if probe is None:
            return
        url = redacted_url(self.settings.plugin_kv or "")
        if await asyncio.to_thread(probe, 1.0):
            log.info("plugin kv: Redis at %s (shared by every gateway using it)", url)

    async def drain(self, timeout: float | None = None) -> bool:
        """Refuse new events (503) and stop delivering: a memory queue is emptied, a durable one lets the
        deliveries in flight finish and keeps the rest; False when time ran out."""
        timeout = self.settings.drain_timeout if timeout is None else timeout
        drained = await self.events.drain(timeout)
        if not drained:
            log.warning("drain timeout (%.1fs) reached with async deliveries not finished", timeout)
        return drained

    async def stop(self) -> None:
        """Close every started component, newest first. Call :meth:`drain` first for a graceful stop."""
        await self._close_started()

    async def _close_started(self) -> None:
        while self._started:
            component = self._started.pop()
            try:
                await component.close()
            except Exception:
                log.exception("error while closing %s", type(component).__name__)


class _ObserveCloser:
    """Last to close: ends the live tail's streams and flushes the spans still buffered (the exporter's
    timeout bounds it; in a thread, so the loop is not held)."""

    def __init__(self, tail: TailHub, tracing: Tracing | None) -> None:
        self.tail = tail
        self.tracing = tracing

    async def close(self) -> None:
        self.tail.close()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)


class _KvCloser:
    """Closes the kv backend with the other components (its connections to Redis)."""

    def __init__(self, kv: Any) -> None:
        self.kv = kv

    async def close(self) -> None:
        self.kv.close()
