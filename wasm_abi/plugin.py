"""`Plugin`: one loaded plugin module, its instance pool, health and log."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

from .capabilities import NO_GRANTS, Grants
from .errors import InputTooLarge, NoIdleInstance, PluginFault, PluginLoadError, load_error_kind
from .events import REPLACEABLE_EVENT_TYPES
from .health import SYSTEM_CLOCK, Clock, PluginHealth, PluginState
from .imports import needed_capabilities
from .instance import PluginInstance
from .limits import Limits
from .loader import LoadedModule, load_module
from .plugin_log import LogHandler, PluginLog
from .pool import InstancePool, PoolClosed
from .reaction import Reaction, decode_reaction
from .subscriptions import PluginSubscription, decode_subscriptions

_packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack
_thread_time = time.thread_time


class Plugin:
    """A sandboxed plugin, ready to react to system events from any thread.

    Build one with `Plugin.from_file` or `Plugin.from_bytes`; loading instantiates the module
    once, runs `_initialize` and `init`, and reads `subscriptions()`, so a plugin that cannot
    work fails here with a `PluginLoadError` rather than on the first event.

    Whoever loads a plugin owns it: `close()` it when done, or use it as a context manager
    (``with Plugin.from_file(path) as plugin: ...``), which closes it on the way out. A plugin
    nobody closes is freed with its last reference, at any time, interpreter exit included.
    """

    def __init__(
        self,
        data: bytes,
        *,
        name: str,
        limits: Limits | None = None,
        config: dict[str, Any] | None = None,
        log_handler: LogHandler | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        origin: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        grants: Grants | None = None,
    ) -> None:
        limits = limits if limits is not None else Limits()
        if not isinstance(limits, Limits):
            raise TypeError(f"limits must be a wasm_abi.Limits, got {type(limits).__name__}")
        if not isinstance(name, str) or not name:
            raise ValueError("a plugin needs a non-empty name")
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"plugin config must be a dict, got {type(config).__name__}")
        if grants is None:
            grants = NO_GRANTS
        if not isinstance(grants, Grants):
            raise TypeError(f"grants must be a wasm_abi.Grants, got {type(grants).__name__}")
        self.name = name
        self.limits = limits
        #: The capabilities this plugin was granted (ABI.md section 7.1).
        self.grants = grants
        self.config = dict(config or {})
        self.log = PluginLog(name, limits.max_log_message_bytes, limits.log_rate_per_second, limits.log_burst,
                             log_handler)
        self._module: LoadedModule = load_module(
            data, name=name, limits=limits, config=config, log=self.log,
            origin=origin or f"module {name!r}", cache_dir=Path(cache_dir) if cache_dir is not None else None,
            grants=grants,
        )
        self.sha256 = self._module.sha256
        self._health = PluginHealth(name, limits, self._live_successes, clock)
        self._sync_fuel, self._async_fuel = limits.sync_fuel, limits.async_fuel
        self._max_input = limits.max_input_bytes
        first = self._new_instance_for_load()
        try:
            self.subscriptions: list[PluginSubscription] = decode_subscriptions(name, first.subscriptions())
        except PluginFault as fault:
            raise PluginLoadError(name, f"while calling subscriptions(): {fault.message}",
                                  load_error_kind(fault.kind)) from None
        first.flush_logs()
        self._pool: InstancePool[PluginInstance] = InstancePool(
            self._new_instance, limits.pool_size, on_discard=self._health.absorb_counts
        )
        self._pool.add(first)
        self._closed = False

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        name: str | None = None,
        limits: Limits | None = None,
        config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Plugin:
        """Load a `.wasm` binary or a `.wat` text module; the name defaults to the file's stem."""
        path = Path(path)
        limits = limits if limits is not None else Limits()
        plugin_name = name or path.stem
        try:
            # Read at most one byte past the limit: a size from stat() means nothing for a pipe
            # or a device (`/dev/zero` would otherwise be read until memory runs out).
            with path.open("rb") as f:
                data = f.read(limits.max_module_bytes + 1)
            if len(data) > limits.max_module_bytes:
                raise PluginLoadError(plugin_name, f"{path} is over the module size limit of "
                                      f"{limits.max_module_bytes} bytes", "too_large")
        except OSError as exc:
            raise PluginLoadError(plugin_name, f"cannot read {path}: {exc.strerror or exc}", "unreadable") from None
        return cls(data, name=plugin_name, limits=limits, config=config, origin=str(path), **kwargs)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        name: str | None = None,
        limits: Limits | None = None,
        config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Plugin:
        """Load a module from memory (Wasm binary, or WAT text as bytes or str)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        return cls(data, name=name or "plugin", limits=limits, config=config, **kwargs)

    def _new_instance_for_load(self) -> PluginInstance:
        try:
            return PluginInstance(self._module)
        except PluginFault as fault:
            raise PluginLoadError(self.name, f"while loading: {fault.message}",
                                  load_error_kind(fault.kind)) from None

    def _new_instance(self) -> PluginInstance:
        """A fresh instance for the pool; load problems are faults here. One that replaces an
        instance discarded after a fault is charged to the rebuild budget (its CPU time), and is
        not made at all, but answered with a `quarantined` fault, while the budget is spent."""
        health = self._health
        charged = health.before_instance()
        started = _thread_time() if charged else 0.0
        try:
            return PluginInstance(self._module)
        except (PluginFault, PluginLoadError) as exc:
            fault = PluginFault(self.name, "init_failed", f"could not make a fresh instance: {exc.message}")
            if charged:
                health.charge_rebuild(_thread_time() - started)
                charged = False
            health.fault(fault)
            raise fault from None
        except BaseException:
            if charged:
                health.refund_rebuild()
                charged = False
            raise
        finally:
            if charged:
                health.charge_rebuild(_thread_time() - started)

    def _live_successes(self) -> int:
        """Successful reactions of the instances alive now (for the fault-rate window; not hot)."""
        pool = getattr(self, "_pool", None)
        if pool is None:
            return 0
        return sum(getattr(i, "ok_sync", 0) + getattr(i, "ok_async", 0) for i in pool.snapshot())

    # -- calls ------------------------------------------------------------------------------

    def react(self, event: dict[str, Any], mode: str = "sync") -> Reaction:
        """Hand one system event (the CloudEvents 1.0 envelope) to the plugin.

        Safe to call from several threads at once.  Raises `PluginFault` if the plugin
        misbehaves; the instance involved is discarded and the next call gets a fresh one.
        """
        if not isinstance(event, dict):
            raise TypeError(f"event for plugin {self.name!r} must be a dict (a system event), "
                            f"got {type(event).__name__}")
        try:
            payload = _packb(event)
        except Exception as exc:  # noqa: BLE001 - msgpack raises TypeError, ValueError, OverflowError
            error = TypeError if isinstance(exc, TypeError) else ValueError
            raise error(f"event for plugin {self.name!r} cannot be encoded as msgpack: {exc}") from None
        return self.react_encoded(payload, event.get("type"), mode)

    def react_encoded(self, payload: bytes, event_type: Any, mode: str = "sync",
                      check_replacement: Callable[[dict[str, Any]], str | None] | None = None,
                      idle_only: bool = False) -> Reaction:
        """`react` for an event the caller has already encoded as msgpack, so that several plugins
        reacting to one event share one encoding. ``event_type`` is the event's ``type``: it decides
        whether the reaction may replace the event.

        ``check_replacement`` lets the caller apply its own rules to a replacement event (is it a
        valid event for the gateway?): a problem it names is a ``bad_output`` fault of the plugin,
        handled like any other (instance discarded, counted towards quarantine).

        With ``idle_only`` the call runs only on an instance that is idle right now: when there is
        none (all busy on other threads, or one must be made after a fault, which runs
        `_initialize` and `init` under the load limits), it raises `NoIdleInstance` at once, having
        run and counted nothing. An event loop calls with it, and retries on a thread."""
        # Hot path: every attribute lookup here costs measurable time per reaction.
        if mode == "sync":
            sync, fuel = True, self._sync_fuel
        elif mode == "async":
            sync, fuel = False, self._async_fuel
        else:
            raise ValueError(f"mode must be 'sync' or 'async', got {mode!r}")
        health = self._health
        if self._closed:
            raise PluginFault(self.name, "closed", "the plugin was closed")
        if health.retry_at_monotonic:
            health.check()
        if len(payload) > self._max_input:
            raise InputTooLarge(self.name, len(payload), self._max_input)
        pool = self._pool
        try:
            instance = pool.try_acquire() if idle_only else pool.acquire()
        except PoolClosed:  # closed by another thread since the check above
            raise PluginFault(self.name, "closed", "the plugin was closed") from None
        if instance is None:
            raise NoIdleInstance(self.name)
        try:
            raw, fuel_used = instance.react(payload, fuel, sync)
            if raw is None or raw == b"\x80":
                reaction = Reaction(None, None, None, fuel_used)
            else:
                reaction = decode_reaction(
                    self.name, raw,
                    may_replace=sync and event_type in REPLACEABLE_EVENT_TYPES,
                    fuel_used=fuel_used,
                )
                if reaction.event is not None and check_replacement is not None:
                    problem = check_replacement(reaction.event)
                    if problem is not None:
                        raise PluginFault(self.name, "bad_output", f"replacement event is invalid: {problem}")
        except PluginFault as fault:
            pool.discard(instance)
            instance.flush_logs()
            if fault.kind == "out_of_fuel":
                fault = PluginFault(self.name, fault.kind, f"{fault.message} (budget: {fuel} fuel per {mode} reaction)")
            health.fault(fault)
            raise fault from None
        except BaseException:
            pool.discard(instance)
            raise
        if sync:
            instance.ok_sync += 1
        else:
            instance.ok_async += 1
        pool.release(instance)
        if health.consecutive:
            health.success()
        return reaction

    # -- operations -------------------------------------------------------------------------

    def close(self) -> None:
        """Free every instance now: each idle instance's Store and linear memory are released
        before `close` returns. Later reactions raise a `PluginFault` of kind ``closed``. A
        reaction already running on another thread finishes with the instance it holds, which
        is freed when that reaction returns (never put back). Idempotent; safe from any thread."""
        self._closed = True
        for instance in self._pool.close():
            self._health.absorb_counts(instance)

    def __enter__(self) -> Plugin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def state(self) -> PluginState:
        """Health and counters: active/quarantined, last fault, retry time, reactions, faults."""
        return self._health.snapshot(self._pool.snapshot())

    @property
    def instance_ready(self) -> bool:
        """Whether an idle instance is waiting, so that `react` will not have to instantiate one
        (which runs `_initialize` and `init` under the load limits, possibly for seconds). Only a
        hint: another thread may take the instance first. A caller that must not wait or build
        passes ``idle_only=True`` to `react_encoded` instead, which decides atomically."""
        return self._pool.has_idle

    @property
    def uses_wasi(self) -> bool:
        return self._module.uses_wasi

    @property
    def capabilities(self) -> list[str]:
        """The capabilities the module imports (each one granted, or it would not have loaded)."""
        return needed_capabilities(self._module.module)

    @property
    def may_wait(self) -> bool:
        """Whether a reaction may wait on the network in a host call (granted http, or kv on a
        networked backend): an event loop must then run its sync reactions on a thread."""
        return self.grants.may_wait and bool(self.capabilities)

    def __repr__(self) -> str:
        return f"<Plugin {self.name!r} sha256={self.sha256[:12]} subscriptions={self.subscriptions!r}>"
