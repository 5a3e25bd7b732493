"""One immutable, ordered set of loaded plugins, and the reaction rules of ABI v1 applied over it.

The registry (:mod:`gateway.plugins.registry`) builds a new :class:`ActivePluginSet` on every change
and swaps it in; this module is what one event sees from start to end.

Sync reactions run inline on the event-loop thread. The host's ``Plugin.react`` is bounded by fuel and
costs ~10 µs, less than a hop to a thread and back; a thread would not make a runaway plugin safer
(fuel and the epoch deadline already stop it) but would add latency to every event. Async reactions
go to a small bounded thread pool: they may use more fuel and must never hold up the loop, and when
the pool's backlog is full they are dropped and counted rather than queued without limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from gateway.events.system import for_plugins, restore_withheld
from gateway.metrics import Metrics
from wasm_abi import Plugin, PluginFault, PluginLoadError, Reaction
from wasm_abi.events import REPLACEABLE_EVENT_TYPES
from wasm_abi.instance import INLINE_SYNC_TIMEOUT

from .contract import CONTINUE, PluginSet, Rejection, StageOutcome
from .settings import PluginSettings, PluginSource

__all__ = [
    "EMPTY_SET",
    "STATE_VALUES",
    "ActivePluginSet",
    "AsyncReactor",
    "LoadedPlugin",
    "PluginSpec",
    "load_plugin",
    "spec_from_path",
]

log = logging.getLogger("gateway.plugins")

#: ``plugin_state`` gauge values.
STATE_VALUES = {"active": 0, "quarantined": 1, "disabled": 2, "failed": 3}

_SOURCE_RANK = {PluginSource.FLAG: 0, PluginSource.FILE: 1, PluginSource.API: 2}

#: Async reactions waiting for a thread, across all plugins, before new ones are dropped.
ASYNC_BACKLOG = 1000
ASYNC_THREADS = 4

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

    __slots__ = ("_rewrite_warned", "_sync_executor", "async_slots", "async_types", "host", "inline", "quarantined",
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
        self.async_slots = threading.BoundedSemaphore(pool_size - 1 if self.sync_types else pool_size)
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
            if plugin.inline and plugin.host.instance_ready:
                # The common case: an instance is idle, so the call is bounded by the sync fuel (~10 µs
                # for a trivial plugin, less than a hop to a thread).
                result = self._call_sync(plugin, stage, payload)
            else:
                # A WASI plugin (see LoadedPlugin.inline), or no idle instance: the call would make one
                # (instantiate, `_initialize`, `init`, under the load limits: up to seconds). Neither
                # may hold the event loop.
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

    def _call_sync(self, plugin: LoadedPlugin, stage: _SyncStage, payload: bytes) -> Reaction | PluginFault:
        try:
            # A replacement is checked inside the host call, so that an invalid one is the plugin's
            # fault like any other: its instance is discarded and it counts towards quarantine.
            check = (self._invalid_replacement
                     if self._validate_event is not None and stage.replaceable and plugin.spec.settings.rewrite
                     else None)
            return self._call(plugin, stage.event_type, "sync", payload, check)
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
            stage.rewrite(reaction.event, plugin.spec.settings.capabilities.sensitive_headers)
            return None
        self._count(plugin, event_type, "sync", "continue")
        return None

    def react_async(self, system_event: dict[str, Any]) -> None:
        event_type = system_event.get("type")
        plugins = self._async.get(event_type) if isinstance(event_type, str) else None
        if not plugins:
            return
        for plugin in plugins:
            if self._executor is None or not self._executor.submit(self._run_async, plugin, system_event):
                self._count(plugin, event_type, "async", "dropped")
                dropped = self._executor.dropped() if self._executor is not None else 1
                if dropped == 1 or dropped % 1000 == 0:  # a saturated pool must not flood the log too
                    log.warning("async reaction of plugin %r to %s dropped: the plugin thread pool is saturated "
                                "(%d dropped so far; see eventgateway_plugin_reactions_total{outcome=\"dropped\"})",
                                plugin.name, event_type, dropped)

    # -- internals ---------------------------------------------------------------------------------

    def _run_async(self, plugin: LoadedPlugin, system_event: dict[str, Any]) -> None:
        event_type = system_event.get("type", "")
        with plugin.async_slots:
            try:
                # Not the shared packer: this runs on a pool thread.
                seen = for_plugins(system_event, plugin.spec.settings.capabilities.sensitive_headers)
                reaction = self._call(plugin, event_type, "async", msgpack.packb(seen, use_bin_type=True))
            except PluginFault:
                return
            except Exception:
                log.exception("async reaction of plugin %r to %s failed", plugin.name, event_type)
                return
        self._count(plugin, event_type, "async", "reject" if reaction.error is not None else "continue")

    def _call(self, plugin: LoadedPlugin, event_type: str, mode: str, payload: bytes,
              check_replacement: Callable[[dict[str, Any]], str | None] | None = None) -> Reaction:
        """One host call with its metrics; faults are counted, logged by the manager, and re-raised."""
        started = time.perf_counter()
        try:
            reaction = plugin.host.react_encoded(payload, event_type, mode, check_replacement)
        except PluginFault as fault:
            if fault.kind == "quarantined":  # not run: no time to observe
                self._count(plugin, event_type, mode, "skipped")
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
        state = plugin.host.state
        if state.quarantined:
            plugin.quarantined = True
            log.error("plugin %r quarantined after %d consecutive faults; last fault %s: %s; retry in %.1fs",
                      plugin.name, state.consecutive_faults, fault.kind, _first_line(fault.message),
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


class AsyncReactor:
    """A bounded thread pool for async reactions: ``submit`` never blocks; False means dropped."""

    def __init__(self, threads: int = ASYNC_THREADS, backlog: int = ASYNC_BACKLOG) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="plugin-async")
        self._slots = threading.BoundedSemaphore(backlog)
        self._closed = False
        self._dropped = 0

    def dropped(self) -> int:
        """Reactions refused so far (for rate-limiting the drop warning)."""
        return self._dropped

    def submit(self, fn: Callable[..., None], *args: Any) -> bool:
        if self._closed or not self._slots.acquire(blocking=False):
            self._dropped += 1
            return False

        def run() -> None:
            try:
                fn(*args)
            finally:
                self._slots.release()

        try:
            self._pool.submit(run)
        except RuntimeError:  # shut down meanwhile
            self._slots.release()
            return False
        return True

    def close(self, wait: bool = True) -> None:
        self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


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

