"""One immutable, ordered set of loaded plugins, and the reaction rules of ABI v1 applied over it.

The registry (:mod:`gateway.plugins.registry`) builds a new :class:`ActivePluginSet` on every change
and swaps it in; this module is what one event sees from start to end.

Sync reactions run inline on the event-loop thread. The host's ``Plugin.react`` is bounded by fuel and
costs ~10 µs, less than a hop to a thread and back; a thread would not make a runaway plugin safer
(fuel and the epoch deadline already stop it) but would add latency to every event. Async reactions
go to a small thread pool (:class:`AsyncReactor`): they may use more fuel and must never hold up the
loop. Each plugin has its own queue there and at most its share of the threads, so a slow plugin delays
only itself; the queues hold each event once, encoded, and are bounded in reactions per plugin and in
bytes, beyond which reactions are dropped and counted rather than queued without limit.

The replacement events plugins produce for one request are capped in bytes (:data:`MAX_REPLACEMENT_BYTES`,
see :func:`replacement_budget`): a plugin rewriting each event of a batch to its output limit could
otherwise make one small request hold gigabytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from gateway.events.system import for_plugins, restore_withheld
from gateway.metrics import Metrics
from wasm_abi import NoIdleInstance, Plugin, PluginFault, PluginLoadError, Reaction
from wasm_abi.events import REPLACEABLE_EVENT_TYPES
from wasm_abi.instance import INLINE_SYNC_TIMEOUT

from .contract import CONTINUE, PluginSet, Rejection, StageOutcome
from .settings import PluginSettings, PluginSource

__all__ = [
    "EMPTY_SET",
    "MAX_REPLACEMENT_BYTES",
    "STATE_VALUES",
    "ActivePluginSet",
    "AsyncReactor",
    "LoadedPlugin",
    "PluginSpec",
    "QueuedPayload",
    "ReplacementBudget",
    "load_plugin",
    "replacement_budget",
    "spec_from_path",
]

log = logging.getLogger("gateway.plugins")

#: ``plugin_state`` gauge values.
STATE_VALUES = {"active": 0, "quarantined": 1, "disabled": 2, "failed": 3}

_SOURCE_RANK = {PluginSource.FLAG: 0, PluginSource.FILE: 1, PluginSource.API: 2}

MIB = 1024 * 1024

#: Threads running async reactions, for all plugins together.
ASYNC_THREADS = 4
#: Most async reactions of one plugin running at once (and never more than the plugin's instances allow):
#: a slow plugin holds at most this many of the threads, the others keep serving every other plugin.
ASYNC_SHARE = 2
#: Async reactions of one plugin waiting or running before its new ones are dropped.
ASYNC_BACKLOG = 1000
#: Bytes of encoded events the async queues may hold, all plugins together (an event queued for several
#: plugins is held and counted once); one plugin's queue may hold at most half of it. Beyond either,
#: new reactions are dropped and counted.
ASYNC_BACKLOG_BYTES = 64 * MIB
#: Bytes of replacement events (msgpack-encoded) the plugins may produce for one request, over all its
#: events and stages; the request that goes over is refused with 413 (see :func:`replacement_budget`).
MAX_REPLACEMENT_BYTES = 32 * MIB

EventValidator = Callable[[dict[str, Any]], None]

#: For the event loop's thread only (a Packer is not meant to be shared between threads).
_packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack


@dataclass(frozen=True, slots=True)
class PluginSpec:
    """Everything needed to load one plugin; equal specs load identical plugins, so a reload keeps the
    already-loaded plugin (and its health and instances) when its spec did not change."""

    name: str
    source: PluginSource
    settings: PluginSettings
    sha256: str
    wasm: bytes = field(repr=False, compare=False)
    origin: str = field(compare=False)
    #: Position inside its source (flag order, file order); breaks ``order`` ties.
    index: int = 0

    @property
    def rank(self) -> tuple[int, int, int, str]:
        return (self.settings.order, _SOURCE_RANK[self.source], self.index, self.name)

    @property
    def identity(self) -> tuple[str, str, str]:
        """What makes two loads of this plugin interchangeable (rank excluded: reordering needs no reload)."""
        return (self.name, self.sha256, self.settings.model_dump_json(exclude={"order", "enabled"}))


class LoadedPlugin:
    """A loaded host plugin with the operator's settings and its per-mode subscription sets."""

    __slots__ = ("_rewrite_warned", "_sync_executor", "async_share", "async_types", "host", "inline", "quarantined",
                 "spec", "sync_types")

    def __init__(self, spec: PluginSpec, host: Plugin) -> None:
        self.spec = spec
        self.host = host
        self.sync_types = frozenset(s.event_type for s in host.subscriptions if s.mode == "sync")
        self.async_types = frozenset(s.event_type for s in host.subscriptions if s.mode == "async")
        # The host's instance pool makes a caller wait when every instance is busy. Keeping async
        # reactions one instance short of the pool means the event loop's sync call never waits.
        pool_size = host.limits.pool_size
        if self.sync_types and self.async_types and pool_size < 2:
            raise PluginLoadError(spec.name, "pool_size 1 leaves no instance for the event loop's sync reactions "
                                  "while an async reaction runs; a plugin with both sync and async "
                                  "subscriptions needs pool_size >= 2", "bad_settings")
        #: Most async reactions of this plugin running at once (the reactor may allow fewer).
        self.async_share = pool_size - 1 if self.sync_types else pool_size
        #: Set when this set saw the plugin enter quarantine, cleared by its next success: lets the
        #: recovery show in the log and the gauge at once rather than at the next periodic refresh.
        self.quarantined = False
        self._rewrite_warned = False
        #: Whether its sync reactions may run on the event loop: only when each call's wall-clock
        #: deadline (`sync_timeout`, set per call) is at most INLINE_SYNC_TIMEOUT (0.05 s), and not for
        #: WASI plugins (wasmtime's own WASI calls cost no fuel, so they run to the deadline every time).
        self.inline = not host.uses_wasi and host.limits.sync_timeout <= INLINE_SYNC_TIMEOUT
        self._sync_executor: ThreadPoolExecutor | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def sync_executor(self) -> ThreadPoolExecutor:
        """This plugin's own threads for sync reactions off the loop: a slow plugin queues only its
        own events there, never another plugin's or the default executor's work."""
        if self._sync_executor is None:
            self._sync_executor = ThreadPoolExecutor(max_workers=self.host.limits.pool_size,
                                                     thread_name_prefix=f"plugin-sync-{self.name}")
        return self._sync_executor


class ReplacementBudget:
    """The bytes of replacement events one request's plugins have produced, against its cap."""

    __slots__ = ("cap", "used")

    def __init__(self, cap: int = MAX_REPLACEMENT_BYTES) -> None:
        self.cap = cap
        self.used = 0


_REPLACEMENT_BUDGET: ContextVar[ReplacementBudget | None] = ContextVar("replacement_budget", default=None)


@contextmanager
def replacement_budget(cap: int = MAX_REPLACEMENT_BYTES) -> Iterator[ReplacementBudget]:
    """Cap the replacement events of everything this context (one request) runs: each rewrite a sync
    stage applies adds its msgpack size, and the rewrite that takes the total over ``cap`` ends its stage
    with a 413 rejection naming the cap instead. Outside such a context (async deliveries, the CLI) a
    stage is bounded by its plugins' output limits alone."""
    budget = ReplacementBudget(cap)
    token = _REPLACEMENT_BUDGET.set(budget)
    try:
        yield budget
    finally:
        _REPLACEMENT_BUDGET.reset(token)


class _SyncStage:
    """The state of one sync stage as it passes from plugin to plugin."""

    __slots__ = ("_payload", "current", "event_type", "replaceable", "rewritten")

    def __init__(self, system_event: dict[str, Any]) -> None:
        self.current = system_event
        self.event_type: str = system_event["type"]
        self.replaceable = self.event_type in REPLACEABLE_EVENT_TYPES
        self.rewritten: dict[str, Any] | None = None
        self._payload: bytes | None = None

    def payload(self, granted: list[str] | None = None) -> bytes:
        """The current system event as msgpack without the withheld request headers (see
        ``for_plugins``): encoded once for every plugin granted none; a plugin granted some gets its own."""
        if granted:
            return _packb(for_plugins(self.current, granted))
        if self._payload is None:
            self._payload = _packb(for_plugins(self.current))
        return self._payload

    def rewrite(self, event: dict[str, Any], granted: list[str] | None = None) -> None:
        # Headers the plugin never saw go back into its replacement: it cannot have meant to drop them.
        event = restore_withheld(self.current.get("data", {}).get("event"), event, granted or ())
        self.rewritten = event
        # The next plugin sees the event as rewritten so far.
        self.current = {**self.current, "data": {**self.current.get("data", {}), "event": event}}
        self._payload = None

    def outcome(self) -> StageOutcome:
        return StageOutcome(event=self.rewritten) if self.rewritten is not None else CONTINUE


class ActivePluginSet(PluginSet):
    """An immutable, ordered set of loaded plugins: what one event sees from start to end."""

    def __init__(
        self,
        plugins: Iterable[LoadedPlugin],
        metrics: Metrics | None,
        executor: AsyncReactor | None,
        validate_event: EventValidator | None = None,
        revision: int = 0,
    ) -> None:
        self.plugins: tuple[LoadedPlugin, ...] = tuple(sorted(plugins, key=lambda p: p.spec.rank))
        self.revision = revision
        self._metrics = metrics
        self._executor = executor
        self._validate_event = validate_event
        sync: dict[str, list[LoadedPlugin]] = {}
        asyn: dict[str, list[LoadedPlugin]] = {}
        for plugin in self.plugins:
            for event_type in plugin.sync_types:
                sync.setdefault(event_type, []).append(plugin)
            for event_type in plugin.async_types:
                asyn.setdefault(event_type, []).append(plugin)
        self._sync = {t: tuple(ps) for t, ps in sync.items()}
        self._async = {t: tuple(ps) for t, ps in asyn.items()}
        self._wanted = frozenset(self._sync) | frozenset(self._async)
        if metrics is not None and executor is not None:
            metrics.plugin_async_backlog_bytes.set_function(lambda: executor.queued_bytes)

    def __len__(self) -> int:
        return len(self.plugins)

    def names(self) -> list[str]:
        return [p.name for p in self.plugins]

    def wants(self, event_type: str) -> bool:
        return event_type in self._wanted

    async def react_sync(self, system_event: dict[str, Any]) -> StageOutcome:
        plugins = self._sync_subscribers(system_event)
        if not plugins:
            return CONTINUE
        stage = _SyncStage(system_event)
        for plugin in plugins:
            payload = stage.payload(plugin.spec.settings.capabilities.sensitive_headers)  # on the loop: its packer
            result: Reaction | PluginFault | None = None
            if plugin.inline:
                try:
                    # The common case: an instance is idle, so the call is bounded by the sync fuel and
                    # deadline (~10 µs for a trivial plugin, less than a hop to a thread).
                    result = self._call_sync(plugin, stage, payload, idle_only=True)
                except NoIdleInstance:
                    pass  # taken by an async reaction, or one must be made after a fault: not here
            if result is None:
                # A plugin that may not run on the loop (see LoadedPlugin.inline), or no idle instance:
                # the call would wait for one or make one (instantiate, `_initialize`, `init`, under the
                # load limits: up to seconds). Neither may hold the event loop.
                result = await asyncio.get_running_loop().run_in_executor(
                    plugin.sync_executor(), self._call_sync, plugin, stage, payload)
            stop = self._apply_sync(plugin, stage, result)
            if stop is not None:
                return stop
        return stage.outcome()

    def react_sync_now(self, system_event: dict[str, Any]) -> StageOutcome:
        """:meth:`react_sync` without an event loop (the CLI, tests): every call inline."""
        plugins = self._sync_subscribers(system_event)
        if not plugins:
            return CONTINUE
        stage = _SyncStage(system_event)
        for plugin in plugins:
            payload = stage.payload(plugin.spec.settings.capabilities.sensitive_headers)
            stop = self._apply_sync(plugin, stage, self._call_sync(plugin, stage, payload))
            if stop is not None:
                return stop
        return stage.outcome()

    def _sync_subscribers(self, system_event: dict[str, Any]) -> tuple[LoadedPlugin, ...] | None:
        event_type = system_event.get("type")
        return self._sync.get(event_type) if isinstance(event_type, str) else None

    def _call_sync(self, plugin: LoadedPlugin, stage: _SyncStage, payload: bytes,
                   idle_only: bool = False) -> Reaction | PluginFault:
        """One sync reaction; a fault is returned, not raised. With ``idle_only`` it raises
        `NoIdleInstance` when no instance is idle (nothing ran, nothing was counted)."""
        try:
            # A replacement is checked inside the host call, so that an invalid one is the plugin's
            # fault like any other: its instance is discarded and it counts towards quarantine.
            check = (self._invalid_replacement
                     if self._validate_event is not None and stage.replaceable and plugin.spec.settings.rewrite
                     else None)
            return self._call(plugin, stage.event_type, "sync", payload, check, idle_only)
        except PluginFault as fault:
            return fault

    def _apply_sync(self, plugin: LoadedPlugin, stage: _SyncStage,
                    result: Reaction | PluginFault) -> StageOutcome | None:
        """Apply one plugin's sync reaction to the stage; a returned outcome ends the stage."""
        event_type = stage.event_type
        if isinstance(result, PluginFault):
            fault = result
            if plugin.spec.settings.policy == "open":
                log.warning("plugin %r faulted (%s) on %s; policy is open, continuing: %s",
                            plugin.name, fault.kind, event_type, _first_line(fault.message))
                return None
            log.warning("plugin %r faulted (%s) on %s; policy is closed, rejecting the event: %s",
                        plugin.name, fault.kind, event_type, _first_line(fault.message))
            return StageOutcome(rejection=Rejection(
                plugin=plugin.name, status=503,
                message=f"plugin {plugin.name!r} failed ({fault.kind}) and its failure policy is closed"))
        reaction = result
        if reaction.error is not None:
            self._count(plugin, event_type, "sync", "reject")
            return StageOutcome(rejection=Rejection(
                plugin=plugin.name, status=reaction.status or 403, message=reaction.error))
        if reaction.event is not None and stage.replaceable:
            if not plugin.spec.settings.rewrite:
                self._count(plugin, event_type, "sync", "continue")
                if not plugin._rewrite_warned:
                    plugin._rewrite_warned = True
                    log.warning("plugin %r returned a replacement event but may not rewrite events "
                                "(rewrite = false); the replacement is ignored", plugin.name)
                return None
            self._count(plugin, event_type, "sync", "rewrite")
            budget = _REPLACEMENT_BUDGET.get()
            if budget is not None:
                budget.used += len(_packb(reaction.event))
                if budget.used > budget.cap:
                    log.warning("plugin %r rewrote %s past the replacement cap of this request (%d bytes of "
                                "replacement events, cap %d): the request is refused with 413",
                                plugin.name, event_type, budget.used, budget.cap)
                    return StageOutcome(rejection=Rejection(
                        plugin=plugin.name, status=413,
                        message=f"plugins rewrote the events of this request to more than {budget.cap} bytes "
                                f"of replacement events in all (plugin {plugin.name!r} went over; the gateway "
                                f"caps replacement bytes per request at {budget.cap}): send fewer or smaller "
                                f"events per request"))
            stage.rewrite(reaction.event, plugin.spec.settings.capabilities.sensitive_headers)
            return None
        self._count(plugin, event_type, "sync", "continue")
        return None

    def react_async(self, system_event: dict[str, Any]) -> None:
        event_type = system_event.get("type")
        plugins = self._async.get(event_type) if isinstance(event_type, str) else None
        if not plugins:
            return
        executor = self._executor
        shared: QueuedPayload | None = None
        for plugin in plugins:
            if executor is None:
                problem: str | None = "the gateway has no async reactor"
            else:
                # Encoded once for every plugin granted no withheld header (one granted some gets its own):
                # the queues hold these bytes rather than the event's dict (several times bigger), and
                # count them once however many plugins they wait for.
                granted = plugin.spec.settings.capabilities.sensitive_headers
                if granted:
                    payload = QueuedPayload(msgpack.packb(for_plugins(system_event, granted), use_bin_type=True))
                else:
                    if shared is None:
                        shared = QueuedPayload(msgpack.packb(for_plugins(system_event), use_bin_type=True))
                    payload = shared
                problem = executor.offer(self._run_async, plugin, event_type, payload,
                                         key=plugin.host, payload=payload, share=plugin.async_share)
            if problem is not None:
                self._count(plugin, event_type, "async", "dropped")
                dropped = executor.dropped() if executor is not None else 1
                if dropped == 1 or dropped % 1000 == 0:  # a saturated reactor must not flood the log too
                    log.warning("async reaction of plugin %r to %s dropped: %s (%d dropped so far; see "
                                "eventgateway_plugin_reactions_total{outcome=\"dropped\"})",
                                plugin.name, event_type, problem, dropped)

    # -- internals ---------------------------------------------------------------------------------

    def _run_async(self, plugin: LoadedPlugin, event_type: str, payload: QueuedPayload) -> None:
        try:
            reaction = self._call(plugin, event_type, "async", payload.data)
        except PluginFault:
            return
        except Exception:
            log.exception("async reaction of plugin %r to %s failed", plugin.name, event_type)
            return
        self._count(plugin, event_type, "async", "reject" if reaction.error is not None else "continue")

    def _call(self, plugin: LoadedPlugin, event_type: str, mode: str, payload: bytes,
              check_replacement: Callable[[dict[str, Any]], str | None] | None = None,
              idle_only: bool = False) -> Reaction:
        """One host call with its metrics; faults are counted, logged by the manager, and re-raised
        (`NoIdleInstance` passes through uncounted: nothing ran)."""
        started = time.perf_counter()
        try:
            reaction = plugin.host.react_encoded(payload, event_type, mode, check_replacement, idle_only)
        except PluginFault as fault:
            if fault.kind == "quarantined":  # not run: no time to observe
                self._count(plugin, event_type, mode, "skipped")
                if not plugin.quarantined:  # started without a fault here (rebuild budget, another set)
                    self._quarantined(plugin, fault)
            else:
                self._observe(plugin, event_type, mode, started)
                self._fault(plugin, fault, event_type, mode)
            raise
        except ValueError as exc:  # the event is over the plugin's input limit
            self._observe(plugin, event_type, mode, started)
            fault = PluginFault(plugin.name, "input_too_large", str(exc))
            self._fault(plugin, fault, event_type, mode)
            raise fault from None
        self._observe(plugin, event_type, mode, started, reaction.fuel_used)
        if plugin.quarantined:
            plugin.quarantined = False
            log.warning("plugin %r recovered: the probe after its quarantine succeeded", plugin.name)
            if self._metrics is not None:
                self._metrics.plugin_state.labels(plugin.name).set(STATE_VALUES["active"])
        return reaction

    def _observe(self, plugin: LoadedPlugin, event_type: str, mode: str, started: float, fuel: int = 0) -> None:
        if self._metrics is not None:
            self._metrics.plugin_reactions.record(plugin.name, event_type, mode,
                                                  seconds=time.perf_counter() - started, fuel=fuel)

    def _fault(self, plugin: LoadedPlugin, fault: PluginFault, event_type: str, mode: str) -> None:
        if self._metrics is not None:
            self._metrics.plugin_faults.labels(plugin.name, fault.kind or "unknown").inc()
            self._metrics.plugin_reactions.record(plugin.name, event_type, mode, "fault")
        if plugin.host.state.quarantined:
            self._quarantined(plugin, fault)

    def _quarantined(self, plugin: LoadedPlugin, fault: PluginFault) -> None:
        state = plugin.host.state
        plugin.quarantined = True
        last = (f"last fault {state.last_fault_kind}: {_first_line(state.last_fault_message or '')}"
                if fault.kind == "quarantined" else f"last fault {fault.kind}: {_first_line(fault.message)}")
        log.error("plugin %r quarantined after %s; %s; retry in %.1fs", plugin.name, state.quarantine_reason, last,
                  max(0.0, (state.retry_at or time.time()) - time.time()))
        if self._metrics is not None:
            self._metrics.plugin_state.labels(plugin.name).set(STATE_VALUES["quarantined"])

    def _count(self, plugin: LoadedPlugin, event_type: str, mode: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.plugin_reactions.record(plugin.name, event_type, mode, outcome)

    def _invalid_replacement(self, event: dict[str, Any]) -> str | None:
        """The gateway's own rules for a replacement event (the host has already refused a non-map, a
        missing type and a system event type)."""
        try:
            self._validate_event(event)  # type: ignore[misc]  # only called when a validator is set
        except Exception as exc:  # the validator's own error type says what is wrong
            return str(exc)
        return None


EMPTY_SET = ActivePluginSet((), None, None)


def _first_line(text: str) -> str:
    """Traps carry a multi-line backtrace; one line per fault keeps the log readable under load."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return text
    # A trap reads "react trapped: error while executing at wasm backtrace: ... Caused by: <reason>".
    return f"{lines[0]} {lines[-1]}" if len(lines) > 1 and "backtrace" in lines[0] else lines[0]


class QueuedPayload:
    """One encoded event waiting in the async queues, shared by every plugin it is queued for."""

    __slots__ = ("data", "refs")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.refs = 0  # queued or running jobs holding it (under the reactor's lock)


class _Lane:
    """One plugin's async queue: its jobs in order, how many run now, and what it holds."""

    __slots__ = ("bytes", "held", "jobs", "key", "ready", "running", "share")

    def __init__(self, key: Hashable, share: int) -> None:
        self.key = key
        self.share = share
        self.jobs: deque[tuple[Callable[..., None], tuple[Any, ...], QueuedPayload | None]] = deque()
        self.running = 0
        self.held = 0  # jobs queued or running
        self.bytes = 0  # payload bytes of those jobs
        self.ready = False  # in the reactor's round-robin ring


class AsyncReactor:
    """The thread pool of async reactions, fair between plugins and bounded in memory.

    Every plugin (``key``) has its own queue. A fixed set of threads takes jobs round-robin from the
    queues of plugins that are below their share of running jobs (``ASYNC_SHARE``, and the plugin's own
    ``share``), so a plugin whose reactions all run to their deadline holds at most its share of the
    threads and every other plugin's reactions keep running on the rest. A job's payload (the event,
    encoded once) is counted while any job holding it is queued or running: once in
    ``queued_bytes``, and in each plugin's own bytes. ``offer`` never blocks; a job over the plugin's
    backlog, its half of the bytes, or the total bytes is refused (the caller counts the drop)."""

    def __init__(self, threads: int = ASYNC_THREADS, backlog: int = ASYNC_BACKLOG,
                 backlog_bytes: int = ASYNC_BACKLOG_BYTES, share: int | None = None) -> None:
        self.threads = threads
        self.share = share if share is not None else max(1, min(ASYNC_SHARE, threads // 2))
        self.backlog = backlog
        self.backlog_bytes = backlog_bytes
        self.lane_bytes = max(1, backlog_bytes // 2)
        self._cond = threading.Condition(threading.Lock())
        self._lanes: dict[Hashable, _Lane] = {}
        self._ready: deque[_Lane] = deque()
        self._workers: list[threading.Thread] = []
        self._closed = False
        self._dropped = 0
        #: Bytes of payloads queued or running now (each payload once), and the most ever.
        self.queued_bytes = 0
        self.peak_bytes = 0

    def dropped(self) -> int:
        """Reactions refused so far (for rate-limiting the drop warning)."""
        return self._dropped

    def submit(self, fn: Callable[..., None], *args: Any, key: Hashable = None,
               payload: QueuedPayload | None = None, share: int | None = None) -> bool:
        """Queue ``fn(*args)``; False means dropped."""
        return self.offer(fn, *args, key=key, payload=payload, share=share) is None

    def offer(self, fn: Callable[..., None], *args: Any, key: Hashable = None,
              payload: QueuedPayload | None = None, share: int | None = None) -> str | None:
        """Queue ``fn(*args)`` in ``key``'s queue (``payload`` is what it holds); None when queued, else
        why it was dropped."""
        size = len(payload.data) if payload is not None else 0
        with self._cond:
            lane = self._lanes.get(key)
            if lane is None:
                lane = _Lane(key, self.share if share is None else max(1, min(share, self.share)))
            problem = self._refusal(lane, size, payload)
            if problem is not None:
                self._dropped += 1
                return problem
            self._lanes[key] = lane
            lane.jobs.append((fn, args, payload))
            lane.held += 1
            lane.bytes += size
            if payload is not None:
                if not payload.refs:
                    self.queued_bytes += size
                    self.peak_bytes = max(self.peak_bytes, self.queued_bytes)
                payload.refs += 1
            self._make_ready(lane)
            if len(self._workers) < self.threads:
                self._start_worker()
            return None

    def _refusal(self, lane: _Lane, size: int, payload: QueuedPayload | None) -> str | None:
        if self._closed:
            return "the gateway is shutting down"
        if lane.held >= self.backlog:
            return f"the plugin's async backlog is full ({lane.held} reactions waiting or running)"
        if lane.bytes + size > self.lane_bytes:
            return (f"the plugin's waiting async reactions hold {lane.bytes} bytes of events and this one "
                    f"{size} more (one plugin's share of the async backlog is {self.lane_bytes} bytes)")
        if (payload is None or not payload.refs) and self.queued_bytes + size > self.backlog_bytes:
            return (f"the async backlog holds {self.queued_bytes} bytes of events and this one {size} more "
                    f"(its bound is {self.backlog_bytes} bytes)")
        return None

    def _make_ready(self, lane: _Lane) -> None:
        """Put a lane with work and a free share at the back of the ring (the lock is held)."""
        if lane.jobs and not lane.ready and lane.running < lane.share:
            lane.ready = True
            self._ready.append(lane)
            self._cond.notify()

    def _start_worker(self) -> None:
        worker = threading.Thread(target=self._work, name=f"plugin-async-{len(self._workers)}", daemon=True)
        self._workers.append(worker)
        worker.start()

    def _work(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._ready:
                    if self._closed:
                        return
                    cond.wait()
                lane = self._ready.popleft()
                lane.ready = False
                fn, args, payload = lane.jobs.popleft()
                lane.running += 1
                self._make_ready(lane)  # more of its jobs may run: behind every other waiting plugin
            try:
                fn(*args)
            except Exception:
                log.exception("async plugin job %r failed", fn)
            finally:
                with cond:
                    lane.running -= 1
                    self._release(lane, payload)
                    self._make_ready(lane)
                # An idle thread must not keep the last job's plugin (and its Stores) alive.
                del lane, fn, args, payload

    def _release(self, lane: _Lane, payload: QueuedPayload | None) -> None:
        """A job of ``lane`` is done or dropped: release what it held (the lock is held)."""
        size = len(payload.data) if payload is not None else 0
        lane.held -= 1
        lane.bytes -= size
        if payload is not None:
            payload.refs -= 1
            if not payload.refs:
                self.queued_bytes -= size
        if not lane.held and self._lanes.get(lane.key) is lane:
            del self._lanes[lane.key]

    def close(self, wait: bool = True) -> None:
        """Refuse new jobs and drop the queued ones (a backlog of slow reactions could otherwise hold a
        shutdown for minutes); with ``wait``, wait for the running ones, each bounded by its deadline."""
        with self._cond:
            self._closed = True
            dropped = 0
            for lane in list(self._lanes.values()):
                while lane.jobs:
                    _, _, payload = lane.jobs.popleft()
                    self._release(lane, payload)
                    dropped += 1
            self._ready.clear()
            self._dropped += dropped
            self._cond.notify_all()
            workers = list(self._workers)
        if dropped:
            log.info("%d queued async plugin reactions dropped at shutdown", dropped)
        if wait:
            for worker in workers:
                if worker is not threading.current_thread():
                    worker.join()


def spec_from_path(path: str | Path, index: int, settings: PluginSettings | None = None) -> PluginSpec:
    """A ``--plugin PATH`` plugin: named after the file, default settings."""
    from .config_file import ModuleTooLarge, read_module

    path = Path(path)
    try:
        wasm = read_module(path, (settings or PluginSettings()).to_limits().max_module_bytes)  # bounded read
    except OSError as exc:
        raise PluginLoadError(path.stem, f"cannot read {path}: {exc.strerror or exc}", "unreadable") from None
    except ModuleTooLarge as exc:
        raise PluginLoadError(path.stem, str(exc), "too_large") from None
    return PluginSpec(name=path.stem, source=PluginSource.FLAG, settings=settings or PluginSettings(),
                      sha256=hashlib.sha256(wasm).hexdigest(), wasm=wasm, origin=str(path), index=index)


def load_plugin(spec: PluginSpec, cache_dir: Path | None = None) -> LoadedPlugin:
    """Compile, instantiate and ``init`` one plugin (slow for big modules: call it off the loop)."""
    host = Plugin(spec.wasm, name=spec.name, limits=spec.settings.to_limits(), config=spec.settings.config,
                  origin=spec.origin, cache_dir=cache_dir)
    try:
        return LoadedPlugin(spec, host)
    except PluginLoadError:
        host.close()
        raise

