"""The plugin manager: which plugins run, in what order, and swapping them while events flow.

Three sources feed it — ``--plugin PATH`` (default settings), ``--plugins-config plugins.toml`` and
the ``/v1/plugins`` documents in the store — merged into one ordered, immutable
:class:`~gateway.plugins.stages.ActivePluginSet`. The event path asks :meth:`PluginManager.current`
once per incoming event and keeps that set for every stage of that event, so a reload is one reference
swap: new events get the new set, events in flight finish with theirs, nothing is ever half-updated.

Flag and file plugins are loaded at start-up and a failure stops the gateway (the operator asked for
them). Store plugins are reloaded whenever the configuration view reports a ``Kind.PLUGINS`` change, on
every gateway sharing the store; one that cannot load here is listed as ``failed`` with the reason
instead of taking the gateway down. A reload reuses an already-loaded plugin whose module and settings
did not change, so its instances, state and quarantine carry over.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gateway.common import rfc3339, wait_with_timeout
from gateway.events.cloudevents import InvalidEvent, validate
from gateway.events.json_body import non_json_value
from gateway.events.parse import refuse_reserved
from gateway.metrics import Metrics
from gateway.store.base import Change, Kind
from wasm_abi import (
    FaultKind,
    Grants,
    KvStore,
    LoadErrorKind,
    MemoryKv,
    PluginError,
    PluginFault,
    PluginLoadError,
    PluginMetrics,
)

from .loading import STATE_VALUES, LoadedPlugin, PluginSpec, load_plugin, spec_from_path
from .reactor import ASYNC_THREADS, AsyncReactor
from .stages import EMPTY_SET, ActivePluginSet, EventValidator
from .config_file import PluginsConfigError, key_line, load_plugins_config
from .contract import CurrentPlugins
from .documents import ModuleMissing, assemble_module, plugin_documents
from .plugin_settings import PluginSettings, PluginSource, PluginSettingsError, parse_settings

__all__ = ["PluginBudget", "PluginManager", "PluginStartupError", "PluginStatus", "PluginView", "validate_replacement"]

log = logging.getLogger("gateway.plugins")

#: Where the host logs plugin output (the ``log`` import, WASI stdout/stderr), with ``extra`` fields
#: ``plugin`` and ``plugin_level``; it propagates to the gateway's root handlers.
PLUGIN_LOGGER = "wasm_abi.plugin"

_STATE_REFRESH_SECONDS = 1.0
_DROPPED = re.compile(r"^(\d+) log messages were dropped by the rate limit")


class _LogDropCounter(logging.Filter):
    """Counts the plugin log lines the host's rate limit dropped into ``plugin_log_dropped``.

    The host (``wasm_abi.plugin_log``) reports drops by logging "N log messages were dropped by the rate
    limit" when logging resumes; this reads that line rather than reaching into the host's internals.
    """

    def __init__(self, metrics: Metrics, names: Callable[[], set[str]]) -> None:
        super().__init__()
        self._metrics = metrics
        self._names = names

    def filter(self, record: logging.LogRecord) -> bool:
        plugin = getattr(record, "plugin", None)
        if plugin is not None and isinstance(record.args, tuple) and len(record.args) == 2:
            match = _DROPPED.match(str(record.args[1]))
            if match and plugin in self._names():
                self._metrics.plugin_log_dropped.labels(plugin).inc(int(match.group(1)))
        return True


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


@dataclass(frozen=True, slots=True)
class PluginBudget:
    """What every loaded plugin together may reserve (``--plugins-max-memory``, ``--plugins-max-instances``,
    ``--plugins-max-threads``). Per-plugin limits have ceilings, but without a sum many plugins (or one
    with a big pool) could still promise more memory, instances and threads than the machine has.

    A plugin costs ``pool_size x max_memory_bytes`` of memory, ``pool_size`` instances and ``pool_size``
    threads (its own sync threads); the shared async threads are counted once."""

    memory: int
    instances: int
    threads: int

    #: Without a budget from the settings (tests, tools): no memory bound, the flags' default counts.
    @classmethod
    def unbounded(cls) -> PluginBudget:
        return cls(memory=1 << 62, instances=256, threads=512)

    def refusal(self, spec: PluginSpec, loaded: list[PluginSpec]) -> PluginLoadError | None:
        """Why ``spec`` may not join the plugins in ``loaded`` (None: it fits)."""
        def cost(s: PluginSpec) -> tuple[int, int, int]:
            limits = s.settings.to_limits()
            return limits.pool_size * limits.max_memory_bytes, limits.pool_size, limits.pool_size

        memory, instances, threads = cost(spec)
        used = [cost(s) for s in loaded]
        used_memory, used_instances = sum(u[0] for u in used), sum(u[1] for u in used)
        used_threads = sum(u[2] for u in used) + ASYNC_THREADS
        others = f"{len(loaded)} other loaded plugin{'s' if len(loaded) != 1 else ''}"
        pool = spec.settings.to_limits().pool_size
        if used_memory + memory > self.memory:
            message = (f"loading it would reserve {_size(memory)} of memory (pool_size {pool} x max_memory_bytes "
                       f"{spec.settings.to_limits().max_memory_bytes}) on top of the {_size(used_memory)} the "
                       f"{others} reserve: over the budget of all plugins together, {_size(self.memory)} "
                       f"(--plugins-max-memory {self.memory})")
        elif used_instances + instances > self.instances:
            message = (f"loading it would add {instances} instances (pool_size) to the {used_instances} of the "
                       f"{others}: over the budget of all plugins together, {self.instances} instances "
                       "(--plugins-max-instances)")
        elif used_threads + threads > self.threads:
            message = (f"loading it would add {threads} threads (pool_size) to the {used_threads} of the {others} "
                       f"and the shared async pool: over the budget of all plugins together, {self.threads} "
                       "threads (--plugins-max-threads)")
        else:
            return None
        return PluginLoadError(spec.name, message, "budget")


class PluginView(Protocol):
    """What the manager reads of the configuration view: the stored plugin documents and their revision."""

    @property
    def revision(self) -> int: ...

    def plugins(self) -> dict[str, dict[str, Any]]: ...

    def add_listener(self, listener: Callable[[Change], None]) -> None: ...

    def remove_listener(self, listener: Callable[[Change], None]) -> None: ...

    async def wait_for_revision(self, revision: int, timeout: float = ...) -> bool: ...


class PluginStartupError(RuntimeError):
    """A ``--plugin`` or plugins.toml plugin cannot be loaded: the gateway refuses to start."""


@dataclass(frozen=True, slots=True)
class PluginStatus:
    """One plugin as ``/v1/plugins`` shows it."""

    name: str
    source: PluginSource
    origin: str
    sha256: str
    size: int
    settings: PluginSettings
    state: str  # active | quarantined | disabled | failed
    subscriptions: list[dict[str, str]]
    last_fault: dict[str, Any] | None
    retry_at: float | None
    counters: dict[str, Any]
    document: dict[str, Any] | None  # the stored document (API plugins), for updates
    last_fault_at: float | None = None  # Unix time of lastFault, for the metrics
    #: Which rule quarantined it (consecutive faults, fault rate, rebuild budget) while quarantined.
    quarantine_reason: str | None = None
    #: The capabilities its module imports (ABI.md 7.1), when loaded (None: not loaded here).
    imported_capabilities: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        retry_in = max(0.0, self.retry_at - time.time()) if self.retry_at is not None else None
        return {
            "name": self.name,
            "source": self.source.value,
            "origin": self.origin,
            "sha256": self.sha256,
            "size": self.size,
            "state": self.state,
            "settings": self.settings.as_document(),
            # What it is granted (its settings' capabilities) and what its module imports: a loaded
            # plugin imports only granted ones; a grant its module does not import is unused.
            "capabilities": self.settings.capabilities.as_document(),
            "importedCapabilities": self.imported_capabilities,
            "subscriptions": self.subscriptions,
            "lastFault": self.last_fault,
            "retryAt": _iso(self.retry_at),
            "retryInSeconds": round(retry_in, 3) if retry_in is not None else None,
            "quarantineReason": self.quarantine_reason,
            "counters": self.counters,
            "createdAt": (self.document or {}).get("createdAt"),
            "updatedAt": (self.document or {}).get("updatedAt"),
        }


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return rfc3339(timestamp)


class PluginManager(CurrentPlugins):
    """Owns every loaded plugin of one gateway and the set new events start with."""

    def __init__(self, *, view: PluginView | None = None, metrics: Metrics | None = None,
                 plugin_paths: Sequence[str] = (), plugins_config: str | Path | None = None,
                 budget: PluginBudget | None = None, event_validator: EventValidator | None = None,
                 kv_store: KvStore | None = None) -> None:
        """``plugin_paths``: the ``--plugin`` files; ``plugins_config``: the plugins.toml; ``view``: where the
        ``/v1/plugins`` documents are read and followed (none: flag and file plugins only); ``kv_store``:
        the backend of the plugins granted ``kv`` (none: a ``MemoryKv`` of this manager's own, closed with
        it; a given one is the caller's to close)."""
        self._flag_paths: list[str] = list(plugin_paths)
        self._config_file: Path | None = Path(plugins_config) if plugins_config else None
        self._metrics = metrics
        self._validator = event_validator if event_validator is not None else validate_replacement
        self._executor = AsyncReactor()
        self._budget = budget if budget is not None else PluginBudget.unbounded()
        self._given_view = view
        self._current: ActivePluginSet = EMPTY_SET
        self._static: list[PluginSpec] = []  # flag + file plugins
        self._loaded: dict[tuple[str, str, str], LoadedPlugin] = {}  # identity -> the plugin loaded for it
        #: Live plugin sets holding each loaded plugin (by id), and the plugins no longer in ``_loaded``
        #: that a live set still holds: closed when the last such set is gone (see _track).
        self._holders: dict[int, int] = {}
        self._retired: dict[int, LoadedPlugin] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed: dict[str, PluginError | Exception] = {}  # name -> load error (store plugins)
        self._store_specs: dict[str, PluginSpec] = {}
        self._store_docs: dict[str, dict[str, Any]] = {}
        self._applied_revision = 0
        self._changed = asyncio.Condition()
        self._dirty = asyncio.Event()
        self._reload_task: asyncio.Task[None] | None = None
        self._state_task: asyncio.Task[None] | None = None
        self._view: PluginView | None = None
        self._last_states: dict[str, str] = {}
        self._fault_kinds: dict[str, FaultKind | LoadErrorKind] = {}  # plugin -> kind labelling its last-fault series
        self._log_filter: _LogDropCounter | None = None
        self._kv: KvStore = kv_store if kv_store is not None else MemoryKv()
        self._owns_kv = kv_store is None
        #: Each plugin's metric series (the metrics capability), by name: kept across reloads of the
        #: plugin (new settings, new module), dropped when it is no longer configured or granted metrics.
        self._plugin_metrics: dict[str, PluginMetrics] = {}
        if metrics is not None:
            metrics.plugin_custom.bind(self.custom_metrics)

    # -- grants ----------------------------------------------------------------------------------

    def grants(self, spec: PluginSpec) -> Grants:
        """(On the loop, before loading ``spec`` on a thread.) The capabilities ``spec``'s settings grant, with their backends: this manager's kv store (the
        namespace is the plugin's name), its URL prefixes, and its metric series (one object per plugin
        name, so a reload keeps them)."""
        capabilities = spec.settings.capabilities
        metrics = None
        if capabilities.metrics:
            metrics = self._plugin_metrics.get(spec.name)
            if metrics is None:
                metrics = self._plugin_metrics[spec.name] = PluginMetrics()
        return Grants(kv=self._kv if capabilities.kv else None, http=capabilities.http_grants(), metrics=metrics)

    def custom_metrics(self) -> list[tuple[str, PluginMetrics]]:
        """``(plugin, its series)`` of every configured plugin granted metrics, by name: what ``/metrics``
        exports as ``eventgateway_plugin_custom_*`` (see ``gateway.metrics.PluginCustomMetrics``)."""
        granted = {spec.name for spec in [*self._static, *self._store_specs.values()]
                   if spec.settings.capabilities.metrics}
        return sorted(((name, m) for name, m in list(self._plugin_metrics.items()) if name in granted),
                      key=lambda item: item[0])

    # -- the contract --------------------------------------------------------------------------

    def current(self) -> ActivePluginSet:
        return self._current

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load flag and file plugins (any failure raises :class:`PluginStartupError`), then the store's
        plugins, then follow the view's plugin changes."""
        static: list[PluginSpec] = []
        for index, path in enumerate(self._flag_paths):
            try:
                static.append(spec_from_path(path, index))
            except PluginLoadError as exc:
                raise PluginStartupError(f"--plugin {path}: {exc.message}") from None
        if self._config_file is not None:
            try:
                entries = await asyncio.to_thread(load_plugins_config, self._config_file)
            except PluginsConfigError as exc:
                raise PluginStartupError(str(exc)) from None
            for entry in entries:
                static.append(PluginSpec(name=entry.name, source=PluginSource.FILE, settings=entry.settings,
                                         sha256=entry.sha256, wasm=entry.wasm, origin=str(entry.path),
                                         index=entry.index))
        seen: dict[str, PluginSpec] = {}
        for spec in static:
            if spec.name in seen:
                where = ""
                if spec.source is PluginSource.FILE:
                    where = f"{self._file_location(('plugins', spec.name))}: plugins.{spec.name}: "
                raise PluginStartupError(
                    f"{where}two plugins are named {spec.name!r} ({seen[spec.name].origin} and {spec.origin}); "
                    "plugin names must be unique (rename a file or its [plugins.NAME] table)")
            seen[spec.name] = spec
        admitted: list[PluginSpec] = []
        for spec in static:
            if not spec.settings.enabled:
                continue
            refusal = self._budget.refusal(spec, admitted)
            if refusal is not None:
                raise PluginStartupError(self._load_failure(spec, refusal))
            try:
                self._loaded[spec.identity] = await asyncio.to_thread(load_plugin, spec, None, self.grants(spec))
            except PluginError as exc:
                raise PluginStartupError(self._load_failure(spec, exc)) from None
            admitted.append(spec)
        self._static = static
        self._view = self._given_view
        if self._view is not None:
            await self._apply_view()
            self._view.add_listener(self._on_change)
        else:
            self._swap(self._view_revision())
        if self._metrics is not None:
            self._log_filter = _LogDropCounter(self._metrics, lambda: set(self._last_states))
            logging.getLogger(PLUGIN_LOGGER).addFilter(self._log_filter)
        self._reload_task = asyncio.create_task(self._follow(), name="plugin-reload")
        self._state_task = asyncio.create_task(self._watch_states(), name="plugin-states")
        names = ", ".join(f"{p.name} ({p.spec.source.value})" for p in self._current.plugins) or "none"
        log.info("plugins loaded: %s", names)

    def _load_failure(self, spec: PluginSpec, error: PluginError) -> str:
        """Why a flag or file plugin stops start-up. A plugins.toml plugin is named like every other
        plugins.toml error, ``FILE:LINE: KEY: message``: the key is ``config`` when ``init`` refused the
        config map, else ``path`` (the module itself is at fault)."""
        kind = f" ({error.kind})" if error.kind else ""
        if spec.source is not PluginSource.FILE:
            hint = ("; a --plugin plugin is granted no capabilities: configure it in a plugins.toml "
                    "(--plugins-config) with [plugins.NAME.capabilities]" if error.kind == "not_granted" else "")
            return f"--plugin {spec.origin}: cannot load the plugin{kind}: {error.message}{hint}"
        key = ("config" if error.kind in ("init_rejected", "init_failed")
               else "limits" if error.kind == "budget"
               else "capabilities" if error.kind == "not_granted" else "path")
        where = self._file_location(("plugins", spec.name, key))
        return f"{where}: plugins.{spec.name}.{key}: cannot load module {spec.origin}{kind}: {error.message}"

    def _file_location(self, key: tuple[str, ...]) -> str:
        """``FILE:LINE`` of a key of the plugins.toml (just ``FILE`` if it cannot be read again)."""
        try:
            line = key_line(Path(str(self._config_file)).read_text(encoding="utf-8"), key)
        except (OSError, UnicodeDecodeError):  # it was read a moment ago; the message still names the key
            line = None
        return f"{self._config_file}:{line}" if line else str(self._config_file)

    async def close(self) -> None:
        if self._log_filter is not None:
            logging.getLogger(PLUGIN_LOGGER).removeFilter(self._log_filter)
        if self._view is not None:
            try:
                self._view.remove_listener(self._on_change)
            except ValueError:
                pass
        for task in (self._reload_task, self._state_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        await asyncio.to_thread(self._executor.close, True)
        self._current = EMPTY_SET
        # Every loaded plugin is closed now (instances and threads), whether or not a set still holds it:
        # nothing reacts any more (events drained, the reactor closed).
        plugins = [*self._loaded.values(), *self._retired.values()]
        self._loaded.clear()
        self._retired.clear()
        self._static = []
        self._store_specs = {}
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        for plugin in plugins:
            try:
                await asyncio.to_thread(plugin.close)
            except Exception:
                log.exception("closing plugin %r failed", plugin.name)
        self._plugin_metrics.clear()
        if self._owns_kv:
            self._kv.close()

    # -- reloads -------------------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        if change.kind is Kind.PLUGINS:
            self._dirty.set()

    async def _follow(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._apply_view()
            except Exception:  # keep serving the last good set; the next change retries
                log.exception("plugin reload failed; keeping the previous plugin set")

    async def reload(self) -> None:
        """Rebuild from the view now (tests, operators' SIGHUP)."""
        await self._apply_view()

    def _view_revision(self) -> int:
        return self._view.revision if self._view is not None else 0

    async def _apply_view(self) -> None:
        revision = self._view_revision()
        documents: dict[str, dict[str, Any]] = dict(self._view.plugins()) if self._view is not None else {}
        wanted = plugin_documents(documents)
        specs: dict[str, PluginSpec] = {}
        failed: dict[str, PluginError | Exception] = {}
        static_names = {s.name for s in self._static}
        for name, doc in wanted.items():
            if name in static_names:
                log.error("stored plugin %r is ignored: a plugin of that name is configured by --plugin or "
                          "plugins.toml, which takes precedence", name)
                continue
            previous = self._store_specs.get(name)
            try:
                settings = parse_settings(doc.get("settings", {}))
                if previous is not None and previous.sha256 == doc.get("sha256"):
                    wasm = previous.wasm
                else:
                    wasm = assemble_module(documents, doc)
            except (PluginSettingsError, ModuleMissing) as exc:
                failed[name] = exc
                log.error("stored plugin %r cannot be used: %s", name, exc)
                continue
            specs[name] = PluginSpec(name=name, source=PluginSource.API, settings=settings,
                                     sha256=doc["sha256"], wasm=wasm, origin="uploaded module", index=0)
        # Within the plugin budget: plugins already loaded keep their place, new ones join in run order.
        admitted = [s for s in self._static if s.settings.enabled]
        for spec in sorted(specs.values(), key=lambda s: (s.identity not in self._loaded, s.rank)):
            name = spec.name
            if not spec.settings.enabled:
                continue
            refusal = self._budget.refusal(spec, admitted)
            if refusal is not None:
                failed[name] = refusal
                if (dropped := self._loaded.pop(spec.identity, None)) is not None:
                    self._retire(dropped)
                log.error("stored plugin %r cannot be loaded on this gateway: %s", name, refusal.message)
                continue
            if spec.identity not in self._loaded:
                try:
                    self._loaded[spec.identity] = await asyncio.to_thread(load_plugin, spec, None, self.grants(spec))
                except PluginError as exc:
                    failed[name] = exc
                    log.error("stored plugin %r cannot be loaded on this gateway: %s", name, exc.message)
                    continue
            admitted.append(spec)
        self._store_specs = specs
        self._store_docs = {name: wanted[name] for name in wanted}
        self._failed = failed
        self._swap(revision)
        self._forget_unused()

    def _swap(self, revision: int) -> None:
        loaded: list[LoadedPlugin] = []
        for spec in [*self._static, *self._store_specs.values()]:
            if not spec.settings.enabled or (spec.source is PluginSource.API and spec.name in self._failed):
                continue
            plugin = self._loaded.get(spec.identity)
            if plugin is None:
                continue
            # Same identity: same module and settings but for order/enabled, which the new set reads.
            plugin.spec = spec
            loaded.append(plugin)
        new_set = ActivePluginSet(loaded, self._metrics, self._executor, self._validator, revision)
        self._track(new_set)
        before = self._current.names()
        self._current = new_set
        if new_set.names() != before:
            log.info("plugin set is now [%s] (store revision %d)", ", ".join(new_set.names()), revision)
        self._refresh_states()
        self._applied_revision = max(self._applied_revision, revision)
        asyncio.get_running_loop().create_task(self._notify())

    def _forget_unused(self) -> None:
        configured = [*self._static, *self._store_specs.values()]
        keep = {spec.identity for spec in configured if spec.settings.enabled}
        for identity in list(self._loaded):
            if identity not in keep:
                self._retire(self._loaded.pop(identity))
        # A plugin's metric series go with it (or with its metrics grant); its kv keys stay in the backend
        # (a plugin removed and added again, or the same plugin on another gateway, finds them there).
        metered = {spec.name for spec in configured if spec.settings.capabilities.metrics}
        for name in list(self._plugin_metrics):
            if name not in metered:
                del self._plugin_metrics[name]

    # -- plugin lifetime ---------------------------------------------------------------------------
    #
    # A plugin leaves ``_loaded`` when no configuration wants it any more, but events that started
    # with an older set may still be reacting with it (and async deliveries and reactions queued with
    # that set). It is closed once no live set holds it. A set is alive while anything references it
    # (the manager as current, a request, a queued delivery or reaction): Python frees it the moment
    # the last of them lets go, and a finalizer then releases its plugins. The event path pays nothing
    # for this (no counter per event); the bookkeeping runs once per set, on the event loop.

    def _track(self, plugin_set: ActivePluginSet) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        ids = tuple(id(p) for p in plugin_set.plugins)
        for key in ids:
            self._holders[key] = self._holders.get(key, 0) + 1
        if ids:
            weakref.finalize(plugin_set, _set_released, self._loop, weakref.WeakMethod(self._release), ids)

    def _release(self, ids: tuple[int, ...]) -> None:
        """A plugin set is gone (on the loop): close the retired plugins it was the last to hold."""
        for key in ids:
            count = self._holders.get(key, 0) - 1
            if count > 0:
                self._holders[key] = count
                continue
            self._holders.pop(key, None)
            plugin = self._retired.pop(key, None)
            if plugin is not None:
                self._close_later(plugin)

    def _retire(self, plugin: LoadedPlugin) -> None:
        """``plugin`` left ``_loaded``: close it now if no live set holds it, else when the last one goes."""
        if self._holders.get(id(plugin), 0) > 0:
            self._retired[id(plugin)] = plugin
        else:
            self._close_later(plugin)

    def _close_later(self, plugin: LoadedPlugin) -> None:
        async def close() -> None:
            try:
                await asyncio.to_thread(plugin.close)
            except Exception:
                log.exception("closing plugin %r failed", plugin.name)
            else:
                log.debug("plugin %r (sha256 %s) closed: no plugin set uses it any more", plugin.name,
                          plugin.spec.sha256[:12])

        task = asyncio.get_running_loop().create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_applied(self, revision: int, timeout: float = 10.0) -> bool:
        """Wait until a set built from view revision ``revision`` (or later) is current. The plugin API
        calls it after a write so that the client's next event already sees the change."""
        if self._view is not None:
            await self._view.wait_for_revision(revision, timeout)
        return await wait_with_timeout(
            self._changed, lambda: self._applied_revision >= revision and not self._dirty.is_set(), timeout)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        return await wait_with_timeout(self._changed, lambda: predicate() and not self._dirty.is_set(), timeout)

    # -- state for the API, the metrics and the log ------------------------------------------------

    def statuses(self) -> list[PluginStatus]:
        """Every configured plugin, in run order (disabled and failed ones after the loaded ones)."""
        specs = sorted([*self._static, *self._store_specs.values()], key=lambda s: s.rank)
        result = [self._status(spec) for spec in specs]
        known = {s.name for s in specs}
        for name, error in self._failed.items():
            if name not in known and name in self._store_docs:
                result.append(self._failed_status(name, self._store_docs[name], error))
        return result

    def status(self, name: str) -> PluginStatus | None:
        return next((s for s in self.statuses() if s.name == name), None)

    def stored_document(self, name: str) -> dict[str, Any] | None:
        return self._store_docs.get(name)

    def stored_spec(self, name: str) -> PluginSpec | None:
        return self._store_specs.get(name)

    def static_origin(self, name: str) -> str | None:
        """Where a flag/file plugin of this name is configured, or None."""
        spec = next((s for s in self._static if s.name == name), None)
        if spec is None:
            return None
        return f"plugins.toml ({self._config_file})" if spec.source is PluginSource.FILE else f"--plugin {spec.origin}"

    def _status(self, spec: PluginSpec) -> PluginStatus:
        doc = self._store_docs.get(spec.name) if spec.source is PluginSource.API else None
        loaded = self._loaded.get(spec.identity) if spec.settings.enabled else None
        host = loaded.host if loaded is not None else None
        error = self._failed.get(spec.name) if spec.source is PluginSource.API else None
        subscriptions: list[dict[str, str]] = []
        last_fault: dict[str, Any] | None = None
        retry_at: float | None = None
        counters: dict[str, Any] = {"reactions": {}, "faults": {}}
        last_fault_at: float | None = None
        quarantine_reason: str | None = None
        imported: list[str] | None = list(loaded.capabilities) if loaded is not None else None
        if not spec.settings.enabled:
            state = "disabled"
        elif error is not None or host is None:
            state = "failed"
            last_fault = _error_fault(error)
            imported = None
        else:
            health = host.state
            state = health.status
            subscriptions = [{"eventType": s.event_type, "type": s.mode} for s in host.subscriptions]
            if health.last_fault_kind is not None:
                last_fault = {"kind": health.last_fault_kind, "message": health.last_fault_message,
                              "at": _iso(health.last_fault_at), "consecutive": health.consecutive_faults}
                last_fault_at = health.last_fault_at
            retry_at = health.retry_at
            quarantine_reason = health.quarantine_reason if state == "quarantined" else None
            counters = {"reactions": health.reactions, "faults": health.faults}
        return PluginStatus(name=spec.name, source=spec.source, origin=spec.origin, sha256=spec.sha256,
                            size=len(spec.wasm), settings=spec.settings, state=state,
                            subscriptions=subscriptions, last_fault=last_fault, retry_at=retry_at,
                            counters=counters, document=doc, last_fault_at=last_fault_at,
                            quarantine_reason=quarantine_reason, imported_capabilities=imported)

    def _failed_status(self, name: str, doc: dict[str, Any], error: Exception) -> PluginStatus:
        try:
            settings = parse_settings(doc.get("settings", {}))
        except PluginSettingsError:
            settings = PluginSettings()
        return PluginStatus(name=name, source=PluginSource.API, origin="api", sha256=str(doc.get("sha256")),
                            size=int(doc.get("size") or 0), settings=settings, state="failed",
                            subscriptions=[], last_fault=_error_fault(error), retry_at=None,
                            counters={"reactions": {}, "faults": {}}, document=doc)

    def _refresh_states(self) -> None:
        """Set the ``plugin_state`` gauge and log every state change (quarantine start and end)."""
        states: dict[str, str] = {}
        for status in self.statuses():
            states[status.name] = status.state
            if self._metrics is not None:
                self._metrics.plugin_state.labels(status.name).set(STATE_VALUES[status.state])
                retry_at = status.retry_at if status.state == "quarantined" and status.retry_at else 0.0
                self._metrics.plugin_retry_at.labels(status.name).set(retry_at)
                self._set_last_fault(status)
        for name, state in states.items():
            before = self._last_states.get(name)
            if before == state:
                continue
            if state == "quarantined":
                pass  # logged by the plugin set at the fault that started it, with the fault
            elif before == "quarantined" and state == "active":
                log.warning("plugin %r: quarantine over, the next event probes it", name)
            elif before is not None:
                log.info("plugin %r is now %s", name, state)
        if self._metrics is not None:
            for name in set(self._last_states) - set(states):
                for gauge in (self._metrics.plugin_state, self._metrics.plugin_retry_at):
                    try:
                        gauge.remove(name)
                    except KeyError:
                        pass
                self._drop_last_fault(name)
        self._last_states = states

    def _set_last_fault(self, status: PluginStatus) -> None:
        """One ``plugin_last_fault_timestamp_seconds`` series per plugin, labelled with the last kind: a new
        kind replaces the series of the previous one rather than leaving it behind."""
        assert self._metrics is not None
        kind = (status.last_fault or {}).get("kind") if status.last_fault_at is not None else None
        if self._fault_kinds.get(status.name) != kind:
            self._drop_last_fault(status.name)
        if kind is not None and status.last_fault_at is not None:
            self._metrics.plugin_last_fault.labels(status.name, kind).set(status.last_fault_at)
            self._fault_kinds[status.name] = kind

    def _drop_last_fault(self, name: str) -> None:
        kind = self._fault_kinds.pop(name, None)
        if kind is not None and self._metrics is not None:
            try:
                self._metrics.plugin_last_fault.remove(name, kind)
            except KeyError:
                pass

    async def _watch_states(self) -> None:
        while True:
            await asyncio.sleep(_STATE_REFRESH_SECONDS)
            try:
                self._refresh_states()
            except Exception:
                log.exception("could not refresh plugin states")

    # -- checks for the API -------------------------------------------------------------------------

    async def check_loadable(self, spec: PluginSpec) -> None:
        """Load ``spec`` once (off the loop) to refuse a bad upload with the host's reason; the loaded
        plugin is kept so the reload that follows the write does not compile it again. A plugin that would
        go over the plugin budget (with every other loaded plugin) is refused first."""
        others = [s for s in [*self._static, *self._store_specs.values()]
                  if s.settings.enabled and s.name != spec.name and s.identity in self._loaded
                  and not (s.source is PluginSource.API and s.name in self._failed)]
        refusal = self._budget.refusal(spec, others)
        if refusal is not None:
            raise refusal
        if spec.identity in self._loaded:
            return  # the same module with the same settings is loaded already
        self._loaded[spec.identity] = await asyncio.to_thread(load_plugin, spec, None, self.grants(spec))


def _error_kind(error: Exception) -> LoadErrorKind | FaultKind:
    """The kind shown for a store plugin that failed to load: the host's own, else what the gateway's
    checks make of the error (settings it refused, or any other failure)."""
    if isinstance(error, (PluginLoadError, PluginFault)):
        return error.kind
    if isinstance(error, PluginSettingsError):
        return "bad_settings"
    return "load_failed"


def _error_fault(error: Exception | None) -> dict[str, Any] | None:
    if error is None:
        return None
    kind = _error_kind(error)
    message = getattr(error, "message", None) or str(error)
    return {"kind": kind, "message": message, "at": None, "consecutive": 0}


def validate_replacement(event: dict[str, Any]) -> None:
    """A replacement event must be a CloudEvent the rest of the event path can handle: raises
    `InvalidEvent` (the host makes it the plugin's ``bad_output`` fault) when it is not."""
    # The host refuses a system type in the attribute it reads; this refuses one in either attribute.
    refuse_reserved(event, "replacement event")
    validate(event, "replacement event")
    # msgpack bin and ext values decode (bytes, ExtType, Timestamp) but JSON cannot carry them, and a
    # function receives the event as JSON: refused here, as the plugin's fault, rather than failing the
    # request with a 500 (or losing an async delivery) when the event is encoded for the function.
    problem = non_json_value(event)
    if problem is not None:
        raise InvalidEvent(f"replacement event: {problem}, which JSON cannot carry (functions receive events "
                           "as JSON; ABI.md section 2.1): send binary data as a string, e.g. base64 in "
                           "'data_base64'")


def _set_released(loop: asyncio.AbstractEventLoop, release: weakref.WeakMethod[Callable[[tuple[int, ...]], None]],
                  ids: tuple[int, ...]) -> None:
    """A plugin set's finalizer, on whatever thread dropped it last: hand its release to the loop."""
    method = release()
    if method is None:
        return
    try:
        loop.call_soon_threadsafe(method, ids)
    except RuntimeError:  # the loop is closed: the manager's close() has closed every plugin already
        pass
