"""Loading one plugin: what it is (:class:`PluginSpec`) and what a loaded one holds (:class:`LoadedPlugin`).

A :class:`LoadedPlugin` owns its host plugin (``wasm_abi.Plugin``: compiled module and instances) and the
threads of its sync reactions off the loop; :meth:`LoadedPlugin.close` frees both. The plugin manager
(:mod:`gateway.plugins.manager`) decides when: when no plugin set that uses it is current or in use by
an event any more, and at shutdown.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from wasm_abi import Grants, Plugin, PluginLoadError
from wasm_abi.capabilities import NO_GRANTS
from wasm_abi.instance import INLINE_SYNC_TIMEOUT

from .config_file import ModuleTooLarge, read_module
from .plugin_settings import PluginSettings, PluginSource

__all__ = ["STATE_VALUES", "LoadedPlugin", "PluginSpec", "load_plugin", "spec_from_path"]

#: ``plugin_state`` gauge values.
STATE_VALUES = {"active": 0, "quarantined": 1, "disabled": 2, "failed": 3}

_SOURCE_RANK = {PluginSource.FLAG: 0, PluginSource.FILE: 1, PluginSource.API: 2}

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

    __slots__ = ("_rewrite_warned", "_sync_executor", "async_share", "async_types", "capabilities", "fails_open",
                 "granted", "host", "inline", "may_rewrite", "name", "quarantined", "spec", "sync_types")

    def __init__(self, spec: PluginSpec, host: Plugin) -> None:
        self.spec = spec
        self.host = host
        # Read on every reaction, so kept here rather than looked up through spec.settings each time. The
        # manager may give a loaded plugin a new spec (``_swap``), but only one of the same identity, whose
        # name and settings differ at most in order and enabled: these stay right.
        self.name: str = spec.name
        #: The withheld request headers it was granted (``capabilities.sensitiveHeaders``), None for none.
        self.granted: list[str] | None = spec.settings.capabilities.sensitive_headers or None
        #: ``rewrite``: whether its replacement events are applied.
        self.may_rewrite: bool = spec.settings.rewrite
        #: ``policy = "open"``: a fault lets the event continue (else it rejects the event).
        self.fails_open: bool = spec.settings.policy == "open"
        self.sync_types = frozenset(s.event_type for s in host.subscriptions if s.mode == "sync")
        self.async_types = frozenset(s.event_type for s in host.subscriptions if s.mode == "async")
        #: The capabilities the module imports (ABI.md 7.1), read once: each read walks its imports.
        self.capabilities: tuple[str, ...] = tuple(host.capabilities)
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
        #: deadline (`sync_timeout`, set per call) is at most INLINE_SYNC_TIMEOUT (0.05 s), not for WASI
        #: plugins (wasmtime's own WASI calls cost no fuel, so they run to the deadline every time) and not
        #: for a plugin whose host calls may wait on the network (`may_wait`: granted http, or kv on a
        #: networked backend), which would hold the loop for as long as the network takes.
        self.inline = (not host.uses_wasi and not host.may_wait
                       and host.limits.sync_timeout <= INLINE_SYNC_TIMEOUT)
        self._sync_executor: ThreadPoolExecutor | None = None

    def close(self) -> None:
        """Free the host plugin (its instances, via ``Plugin.close``) and this plugin's sync threads.
        Idempotent. The manager calls it once no plugin set holding this plugin is current or in use."""
        executor, self._sync_executor = self._sync_executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        self.host.close()

    def sync_executor(self) -> ThreadPoolExecutor:
        """This plugin's own threads for sync reactions off the loop: a slow plugin queues only its
        own events there, never another plugin's or the default executor's work."""
        if self._sync_executor is None:
            self._sync_executor = ThreadPoolExecutor(max_workers=self.host.limits.pool_size,
                                                     thread_name_prefix=f"plugin-sync-{self.name}")
        return self._sync_executor


def spec_from_path(path: str | Path, index: int, settings: PluginSettings | None = None) -> PluginSpec:
    """A ``--plugin PATH`` plugin: named after the file, default settings."""
    path = Path(path)
    try:
        wasm = read_module(path, (settings or PluginSettings()).to_limits().max_module_bytes)  # bounded read
    except OSError as exc:
        raise PluginLoadError(path.stem, f"cannot read {path}: {exc.strerror or exc}", "unreadable") from None
    except ModuleTooLarge as exc:
        raise PluginLoadError(path.stem, str(exc), "too_large") from None
    return PluginSpec(name=path.stem, source=PluginSource.FLAG, settings=settings or PluginSettings(),
                      sha256=hashlib.sha256(wasm).hexdigest(), wasm=wasm, origin=str(path), index=index)


def load_plugin(spec: PluginSpec, cache_dir: Path | None = None, grants: Grants = NO_GRANTS) -> LoadedPlugin:
    """Compile, instantiate and ``init`` one plugin (slow for big modules: call it off the loop).
    ``grants``: the capabilities its settings grant, with the backends they use (the manager builds
    them, see ``PluginManager.grants``); a module importing one it lacks fails with ``not_granted``."""
    host = Plugin(spec.wasm, name=spec.name, limits=spec.settings.to_limits(), config=spec.settings.config,
                  origin=spec.origin, cache_dir=cache_dir, grants=grants)
    try:
        return LoadedPlugin(spec, host)
    except PluginLoadError:
        host.close()
        raise

