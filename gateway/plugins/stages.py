"""One immutable, ordered set of loaded plugins, and the reaction rules of ABI v1 applied over it.

The plugin manager (:mod:`gateway.plugins.manager`) builds a new :class:`ActivePluginSet` on every
change and swaps it in; this module is what one event sees from start to end.

Sync reactions run inline on the event-loop thread when they can (``LoadedPlugin.inline``). The host's
``Plugin.react`` is bounded by fuel and costs ~10 µs, less than a hop to a thread and back; a thread would
not make a runaway plugin safer (fuel and the epoch deadline already stop it) but would add latency to
every event. A plugin whose host calls may wait on the network (``Plugin.may_wait``: granted ``http``, or
``kv`` on a networked backend), a WASI plugin and one with a long ``sync_timeout`` run their sync
reactions on their own threads instead, so the loop keeps serving other events while they wait. Async
reactions go to the async reactor (:mod:`gateway.plugins.reactor`).

The replacement events plugins produce for one request are capped in bytes (:data:`MAX_REPLACEMENT_BYTES`,
see :func:`replacement_budget`): a plugin rewriting each event of a batch to its output limit could
otherwise make one small request hold gigabytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import msgpack

from gateway.events.system_events import for_plugins, restore_withheld
from gateway.metrics import Metrics
from gateway.observe.observation import AsyncParent, Observation, current
from wasm_abi import NoIdleInstance, PluginFault, Reaction
from wasm_abi.events import REPLACEABLE_EVENT_TYPES

from .contract import CONTINUE, PluginSet, Rejection, StageOutcome
from .loading import STATE_VALUES, LoadedPlugin
from .reactor import MIB, AsyncReactor, QueuedPayload

__all__ = ["EMPTY_SET", "MAX_REPLACEMENT_BYTES", "ActivePluginSet", "ReplacementBudget", "EventValidator",
           "replacement_budget"]

log = logging.getLogger("gateway.plugins")

#: Bytes of replacement events (msgpack-encoded) the plugins may produce for one request, over all its
#: events and stages; the request that goes over is refused with 413 (see :func:`replacement_budget`).
MAX_REPLACEMENT_BYTES = 32 * MIB

EventValidator = Callable[[dict[str, Any]], None]

#: For the event loop's thread only (a Packer is not meant to be shared between threads).
_packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack
_perf_counter = time.perf_counter


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
        self._reactions = metrics.plugin_reactions if metrics is not None else None
        # (A flag, not the bound method: that would be a reference cycle, and the manager closes a plugin
        # when the last set holding it is freed.)
        self._validates = validate_event is not None
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
        obs = current()
        call_sync, apply_sync = self._call_sync, self._apply_sync
        for plugin in plugins:
            if obs is not None:
                started_ns, rewritten = time.time_ns(), stage.rewritten
            payload = stage.payload(plugin.granted)  # on the loop: its packer
            # The common case: an instance is idle, so the call is bounded by the sync fuel and deadline
            # (~10 µs for a trivial plugin, less than a hop to a thread). None: no idle instance (taken by
            # an async reaction, or one must be made after a fault).
            called = call_sync(plugin, stage, payload, True) if plugin.inline else None
            if called is None:
                # A plugin that may not run on the loop (see LoadedPlugin.inline), or no idle instance:
                # the call would wait for one or make one (instantiate, `_initialize`, `init`, under the
                # load limits: up to seconds). Neither may hold the event loop.
                called = await asyncio.get_running_loop().run_in_executor(
                    plugin.sync_executor(), call_sync, plugin, stage, payload)
                assert called is not None  # waiting for an instance is allowed there
            result, seconds = called
            stop = apply_sync(plugin, stage, result, seconds)
            if obs is not None:
                _observe_sync(obs, plugin.name, started_ns, result, stop, stage.rewritten is not rewritten)
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
            called = self._call_sync(plugin, stage, stage.payload(plugin.granted))
            assert called is not None  # waiting for an instance is allowed here
            stop = self._apply_sync(plugin, stage, *called)
            if stop is not None:
                return stop
        return stage.outcome()

    def _sync_subscribers(self, system_event: dict[str, Any]) -> tuple[LoadedPlugin, ...] | None:
        event_type = system_event.get("type")
        return self._sync.get(event_type) if isinstance(event_type, str) else None

    def _call_sync(self, plugin: LoadedPlugin, stage: _SyncStage, payload: bytes,
                   idle_only: bool = False) -> tuple[Reaction | PluginFault, float] | None:
        """One sync reaction and its wall time in seconds; a fault is returned, not raised, and already
        counted (a success is counted by `_apply_sync`, which knows its outcome: one metrics update per
        reaction). With ``idle_only``, None when no instance is idle (nothing ran, nothing was counted)."""
        # A replacement is checked inside the host call, so that an invalid one is the plugin's fault like
        # any other: its instance is discarded and it counts towards quarantine.
        check = self._invalid_replacement if self._validates and stage.replaceable and plugin.may_rewrite else None
        started = _perf_counter()
        try:
            reaction = plugin.host.react_encoded(payload, stage.event_type, "sync", check, idle_only)
        except NoIdleInstance:
            return None
        except PluginFault as fault:
            self._faulted(plugin, fault, stage.event_type, "sync", started)
            return fault, 0.0
        seconds = _perf_counter() - started
        if plugin.quarantined:
            self._recovered(plugin)
        return reaction, seconds

    def _apply_sync(self, plugin: LoadedPlugin, stage: _SyncStage, result: Reaction | PluginFault,
                    seconds: float) -> StageOutcome | None:
        """Count one plugin's sync reaction (with its wall time and fuel) and apply it to the stage; a
        returned outcome ends the stage."""
        event_type = stage.event_type
        if isinstance(result, PluginFault):  # already counted by `_call_sync`
            fault = result
            if plugin.fails_open:
                log.warning("plugin %r faulted (%s) on %s; policy is open, continuing: %s",
                            plugin.name, fault.kind, event_type, _first_line(fault.message))
                return None
            log.warning("plugin %r faulted (%s) on %s; policy is closed, rejecting the event: %s",
                        plugin.name, fault.kind, event_type, _first_line(fault.message))
            return StageOutcome(rejection=Rejection(
                plugin=plugin.name, status=503,
                message=f"plugin {plugin.name!r} failed ({fault.kind}) and its failure policy is closed"))
        reaction = result
        reactions = self._reactions
        if reaction.error is not None:
            if reactions is not None:
                reactions.record(plugin.name, event_type, "sync", "reject", seconds, reaction.fuel_used)
            return StageOutcome(rejection=Rejection(
                plugin=plugin.name, status=reaction.status or 403, message=reaction.error))
        if reaction.event is None or not stage.replaceable:  # the common case: continue
            if reactions is not None:
                reactions.record(plugin.name, event_type, "sync", "continue", seconds, reaction.fuel_used)
            return None
        if not plugin.may_rewrite:
            if reactions is not None:
                reactions.record(plugin.name, event_type, "sync", "continue", seconds, reaction.fuel_used)
            if not plugin._rewrite_warned:
                plugin._rewrite_warned = True
                log.warning("plugin %r returned a replacement event but may not rewrite events "
                            "(rewrite = false); the replacement is ignored", plugin.name)
            return None
        if reactions is not None:
            reactions.record(plugin.name, event_type, "sync", "rewrite", seconds, reaction.fuel_used)
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
        stage.rewrite(reaction.event, plugin.granted)
        return None

    def react_async(self, system_event: dict[str, Any]) -> None:
        event_type = system_event.get("type")
        plugins = self._async.get(event_type) if isinstance(event_type, str) else None
        if not plugins or not isinstance(event_type, str):
            return
        executor = self._executor
        shared: QueuedPayload | None = None
        obs = current()
        # Traced: each reaction's span, made on its thread, is parented by the stage that offered it.
        parent = obs.async_parent() if obs is not None else None
        for plugin in plugins:
            if executor is None:
                problem: str | None = "the gateway has no async reactor"
            else:
                # Encoded once for every plugin granted no withheld header (one granted some gets its own):
                # the queues hold these bytes rather than the event's dict (several times bigger), and
                # count them once however many plugins they wait for.
                granted = plugin.granted
                if granted:
                    payload = QueuedPayload(msgpack.packb(for_plugins(system_event, granted), use_bin_type=True))
                else:
                    if shared is None:
                        shared = QueuedPayload(msgpack.packb(for_plugins(system_event), use_bin_type=True))
                    payload = shared
                problem = (executor.offer(self._run_async, plugin, event_type, payload,
                                          key=plugin.host, payload=payload, share=plugin.async_share)
                           if parent is None else
                           executor.offer(self._run_async, plugin, event_type, payload, parent,
                                          key=plugin.host, payload=payload, share=plugin.async_share))
            if problem is not None:
                self._count(plugin, event_type, "async", "dropped")
                dropped = executor.dropped() if executor is not None else 1
                if dropped == 1 or dropped % 1000 == 0:  # a saturated reactor must not flood the log too
                    log.warning("async reaction of plugin %r to %s dropped: %s (%d dropped so far; see "
                                "eventgateway_plugin_reactions_total{outcome=\"dropped\"})",
                                plugin.name, event_type, problem, dropped)

    # -- internals ---------------------------------------------------------------------------------

    def _run_async(self, plugin: LoadedPlugin, event_type: str, payload: QueuedPayload,
                   parent: AsyncParent | None = None) -> None:
        started_ns = time.time_ns() if parent is not None else 0
        try:
            reaction = self._call(plugin, event_type, "async", payload.data)
        except PluginFault as fault:
            if parent is not None:
                parent.reaction(plugin.name, "skipped" if fault.kind == "quarantined" else "fault", started_ns,
                                message=_first_line(fault.message), fault_kind=fault.kind)
            return
        except Exception as exc:
            log.exception("async reaction of plugin %r to %s failed", plugin.name, event_type)
            if parent is not None:
                parent.reaction(plugin.name, "fault", started_ns, message=repr(exc), fault_kind="host")
            return
        self._count(plugin, event_type, "async", "reject" if reaction.error is not None else "continue")
        if parent is not None:
            parent.reaction(plugin.name, "reject" if reaction.error is not None else "continue", started_ns,
                            status=(reaction.status or 403) if reaction.error is not None else None,
                            message=reaction.error, fuel=reaction.fuel_used)

    def _call(self, plugin: LoadedPlugin, event_type: str, mode: str, payload: bytes) -> Reaction:
        """One host call (async reactions) with its wall time and fuel observed; faults are counted,
        logged by the manager, and re-raised."""
        started = _perf_counter()
        try:
            reaction = plugin.host.react_encoded(payload, event_type, mode)
        except PluginFault as fault:
            self._faulted(plugin, fault, event_type, mode, started)
            raise
        self._observe(plugin, event_type, mode, started, reaction.fuel_used)
        if plugin.quarantined:
            self._recovered(plugin)
        return reaction

    def _faulted(self, plugin: LoadedPlugin, fault: PluginFault, event_type: str, mode: str,
                 started: float) -> None:
        """Count a reaction that faulted (or was skipped: quarantined) and note a quarantine."""
        if fault.kind == "quarantined":  # not run: no time to observe
            self._count(plugin, event_type, mode, "skipped")
            if not plugin.quarantined:  # started without a fault here (rebuild budget, another set)
                self._quarantined(plugin, fault)
        else:
            self._observe(plugin, event_type, mode, started)
            self._fault(plugin, fault, event_type, mode)

    def _recovered(self, plugin: LoadedPlugin) -> None:
        plugin.quarantined = False
        log.warning("plugin %r recovered: the probe after its quarantine succeeded", plugin.name)
        if self._metrics is not None:
            self._metrics.plugin_state.labels(plugin.name).set(STATE_VALUES["active"])

    def _observe(self, plugin: LoadedPlugin, event_type: str, mode: str, started: float, fuel: int = 0) -> None:
        if self._metrics is not None:
            self._metrics.plugin_reactions.record(plugin.name, event_type, mode,
                                                  seconds=_perf_counter() - started, fuel=fuel)

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


def _observe_sync(obs: Observation, name: str, started_ns: int, result: Reaction | PluginFault,
                  stop: StageOutcome | None, rewrote: bool) -> None:
    """One sync reaction's verdict for the live tail and the trace."""
    rejection = stop.rejection if stop is not None else None
    status = rejection.status if rejection is not None else None
    if isinstance(result, PluginFault):
        if result.kind == "quarantined":
            obs.plugin(name, "sync", "skipped", started_ns, status=status, fault_kind="quarantined")
        else:
            obs.plugin(name, "sync", "fault", started_ns, status=status, message=_first_line(result.message),
                       fault_kind=result.kind)
    elif rejection is not None:
        obs.plugin(name, "sync", "reject", started_ns, status=status, message=rejection.message,
                   fuel=result.fuel_used)
    else:
        obs.plugin(name, "sync", "rewrite" if rewrote else "continue", started_ns, fuel=result.fuel_used)


def _first_line(text: str) -> str:
    """Traps carry a multi-line backtrace; one line per fault keeps the log readable under load."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return text
    # A trap reads "react trapped: error while executing at wasm backtrace: ... Caused by: <reason>".
    return f"{lines[0]} {lines[-1]}" if len(lines) > 1 and "backtrace" in lines[0] else lines[0]
