"""Calling a function, wrapped in its system events.

``function.invoking`` goes first (a sync plugin can block the call or rewrite the event the function
receives), then the call, then ``function.invoked`` with the function's real ``result`` or
``function.invocationFailed`` with a readable ``error``. Deliveries *of* system events skip all of this
(``emit_system=False``): system events never emit system events.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.events import cloudevents as ce
from gateway.events import system_events
from gateway.metrics import Metrics
from gateway.observe.observation import Observation, current
from gateway.plugins.contract import PluginSet, Rejection
from gateway.providers import ProviderError, ProviderPool

from .emitter import SystemEmitter

__all__ = ["FunctionLookup", "Invocation", "Invoker"]

log = logging.getLogger("gateway.pipeline.invoke")


class FunctionLookup(Protocol):
    def function(self, space: str, id: str) -> Any | None: ...


@dataclass(frozen=True, slots=True)
class Invocation:
    """How a call went: ``body`` on success, ``error`` on failure, ``rejection`` when a plugin blocked it."""

    body: bytes | None = None
    error: str | None = None
    rejection: Rejection | None = None
    #: What a sync client is told about the failure when upstream said more than "Function call failed".
    client_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.body is not None


class Invoker:
    def __init__(self, view: FunctionLookup, providers: ProviderPool, emitter: SystemEmitter, metrics: Metrics) -> None:
        self._view = view
        self._providers = providers
        self._emitter = emitter
        self._metrics = metrics

    async def call(self, space: str, function_id: str, payload: bytes, mode: str, *,
                   attempt: int | None = None) -> Invocation:
        """Call the function with ``payload``, no system events (authorizers, system event delivery).
        ``attempt``: the async delivery attempt (an http function gets it as the
        ``Event-Gateway-Delivery-Attempt`` header); None for sync calls and authorizers (no header)."""
        function = self._view.function(space, function_id)
        if function is None:
            return Invocation(error=f"function {function_id!r} not found in space {space!r}")
        obs = current()
        if obs is not None:
            return await self._observed_call(obs, space, function, function_id, payload, mode, attempt)
        started = time.perf_counter()
        try:
            provider = self._providers.for_function(function)
            body = await provider.call(payload, attempt=attempt)
        except ProviderError as exc:
            self._metrics.child(self._metrics.function_invocations, space, function_id, mode, "failure").inc()
            return Invocation(error=str(exc), client_message=exc.client_message)
        finally:
            self._metrics.child(self._metrics.function_duration_seconds, space, function_id, mode).observe(
                time.perf_counter() - started)
        self._metrics.child(self._metrics.function_invocations, space, function_id, mode, "success").inc()
        return Invocation(body=body)

    async def _observed_call(self, obs: Observation, space: str, function: Any, function_id: str, payload: bytes,
                             mode: str, attempt: int | None) -> Invocation:
        """:meth:`call` watched: a CallRecord and a span, and an http function receives the span's
        ``traceparent``."""
        observed = obs.begin_call(function_id, str(getattr(function, "type", "")), mode, attempt)
        started = time.perf_counter()
        try:
            provider = self._providers.for_function(function)
            if observed.headers is not None:
                body = await provider.call(payload, attempt=attempt, headers=observed.headers)
            else:
                body = await provider.call(payload, attempt=attempt)
        except ProviderError as exc:
            self._metrics.child(self._metrics.function_invocations, space, function_id, mode, "failure").inc()
            obs.end_call(observed, False, str(exc))
            return Invocation(error=str(exc), client_message=exc.client_message)
        except BaseException as exc:
            obs.end_call(observed, False, repr(exc))
            raise
        finally:
            self._metrics.child(self._metrics.function_duration_seconds, space, function_id, mode).observe(
                time.perf_counter() - started)
        self._metrics.child(self._metrics.function_invocations, space, function_id, mode, "success").inc()
        obs.end_call(observed, True)
        return Invocation(body=body)

    async def invoke(self, space: str, function_id: str, event: dict[str, Any], plugins: PluginSet, *,
                     mode: str, attempt_note: str = "", attempt: int | None = None) -> Invocation:
        """Deliver a (non-system) event to a function with the four-stage system event protocol."""
        emitter = self._emitter
        if emitter.wanted(space, system_events.FUNCTION_INVOKING, plugins):
            outcome = await emitter.emit(space, system_events.function_invoking(space, function_id, event), plugins)
            if outcome.rejection is not None:
                log.info("plugin %s blocked %s delivery to %s/%s: %s", outcome.rejection.plugin, mode, space,
                         function_id, outcome.rejection.message)
                return Invocation(rejection=outcome.rejection)
            if outcome.event is not None:
                event = outcome.event
        result = await self.call(space, function_id, ce.to_json(event), mode, attempt=attempt)
        if result.ok:
            if emitter.wanted(space, system_events.FUNCTION_INVOKED, plugins):
                outcome = await emitter.emit(
                    space, system_events.function_invoked(space, function_id, event, system_events.decode_result(result.body or b"")),
                    plugins)
                if outcome.rejection is not None and mode == "sync":
                    return Invocation(rejection=outcome.rejection)
        else:
            log.info("function %s/%s failed (%s)%s: %s", space, function_id, mode, attempt_note, result.error)
            if emitter.wanted(space, system_events.FUNCTION_INVOCATION_FAILED, plugins):
                await emitter.emit(
                    space,
                    system_events.function_invocation_failed(space, function_id, event, f"{result.error}{attempt_note}"),
                    plugins, sync=False)
        return result
