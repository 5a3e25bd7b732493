"""The event path: received -> plugins -> authorizer -> sync subscriber -> async subscribers.

One :class:`~gateway.plugins.contract.PluginSet` is taken per request and used at every stage of its
events, so a plugin reload never shows an event half of each set. The processor answers plain
:class:`Reply` objects; the Quart layer only converts them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.events import cloudevents as ce
from gateway.events import system_events
from gateway.events.parse import (
    HTTP_REQUEST_TYPE,
    ParsedRequest,
    RawRequest,
    flatten_headers,
    http_request_event,
    parse_request,
)
from gateway.metrics import Metrics
from gateway.plugins.stages import replacement_budget
from gateway.plugins.contract import CurrentPlugins, PluginSet, Rejection
from gateway.routing import cors
from gateway.routing.table import RouteTable

from .async_queue import AsyncQueue, Attempt, RetryPolicy
from .authorizer import authorize
from .invoke import Invoker
from .sync_response import MalformedResponse, parse_sync_response

__all__ = ["Delivery", "Processor", "Reply"]

log = logging.getLogger("gateway.pipeline")

_JSON = {"Content-Type": "application/json"}
CALL_FAILED = "Function call failed. Please check logs."


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def error_reply(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps({"errors": [{"message": message}]}).encode()
    return Reply(status, {**(headers or {}), **_JSON}, body)


def rejection_reply(rejection: Rejection, headers: dict[str, str] | None = None) -> Reply:
    return error_reply(rejection.status, rejection.message or f"rejected by plugin {rejection.plugin}", headers)


@dataclass(frozen=True, slots=True)
class _Routed:
    """An event that routing and its authorizer let through, with the subscriptions it goes to."""

    event: dict[str, Any]
    sync: Any  # the sync match, or None
    asyncs: Any  # the async matches, or None


@dataclass(frozen=True, slots=True)
class Delivery:
    """An async delivery waiting in the queue."""

    space: str
    function_id: str
    event: dict[str, Any]
    plugins: PluginSet
    system: bool  # a system event: delivered without emitting system events


def _policy(function: Any) -> RetryPolicy:
    policy = getattr(function, "retry_policy", None) if function is not None else None
    if policy is None:
        return RetryPolicy()
    return RetryPolicy(policy.max_attempts, policy.initial_backoff, policy.multiplier, policy.max_backoff)


class Processor:
    def __init__(self, view: Any, plugins: CurrentPlugins, metrics: Metrics, routes: RouteTable,
                 invoker: Invoker, emitter: Any, queue_factory: Any) -> None:
        self._view = view
        self._plugins = plugins
        self._metrics = metrics
        self._routes = routes
        self._invoker = invoker
        self._emitter = emitter
        self.queue: AsyncQueue = queue_factory(self._deliver_async, self._drop)

    # -- async delivery ------------------------------------------------------------------------

    def enqueue(self, space: str, subscription: Any, event: dict[str, Any], plugins: PluginSet,
                *, is_system: bool = False) -> None:
        function = self._view.function(space, subscription.function_id)
        self.queue.submit(Delivery(space, subscription.function_id, event, plugins, is_system), _policy(function))

    def enqueue_system(self, space: str, subscription: Any, event: dict[str, Any], plugins: PluginSet) -> None:
        self.enqueue(space, subscription, event, plugins, is_system=True)

    async def _deliver_async(self, delivery: Delivery, attempt: Attempt) -> bool:
        if delivery.system:
            result = await self._invoker.call(delivery.space, delivery.function_id, ce.to_json(delivery.event),
                                              "async")
            if not result.ok:
                log.info("system event delivery to %s/%s failed: %s", delivery.space, delivery.function_id,
                         result.error)
            return result.ok
        note = (f" (attempt {attempt.number}, the last: event dropped)" if attempt.last
                else f" (attempt {attempt.number}, will retry)")
        result = await self._invoker.invoke(delivery.space, delivery.function_id, delivery.event, delivery.plugins,
                                            mode="async", attempt_note=note)
        if result.rejection is not None:
            self._metrics.events_dropped.labels(delivery.space, ce.event_type(delivery.event)).inc()
            log.warning("async delivery to %s/%s dropped: plugin %s blocked it (%s)", delivery.space,
                        delivery.function_id, result.rejection.plugin, result.rejection.message)
            return True
        return result.ok

    async def _drop(self, delivery: Delivery, reason: str) -> None:
        event_type = ce.event_type(delivery.event)
        self._metrics.events_dropped.labels(delivery.space, event_type).inc()
        log.warning("async delivery of %s %s to %s/%s dropped: %s", event_type, ce.event_id(delivery.event),
                    delivery.space, delivery.function_id, reason)
        if delivery.system or not reason.startswith("async backlog full"):
            return  # exhausted retries already emitted invocationFailed on the last attempt
        if self._emitter.wanted(delivery.space, system_events.FUNCTION_INVOCATION_FAILED, delivery.plugins):
            await self._emitter.emit(
                delivery.space,
                system_events.function_invocation_failed(delivery.space, delivery.function_id, delivery.event,
                                                  f"not delivered: {reason}"),
                delivery.plugins, sync=False)

    # -- the request path ----------------------------------------------------------------------

    async def handle(self, request: RawRequest, space: str) -> Reply:
        started = time.perf_counter()
        try:
            # The replacement events the plugins make for this request (all its events and stages) are
            # capped in bytes: past the cap it is refused with 413 (see replacement_budget).
            with replacement_budget():
                return await self._handle(request, space)
        finally:
            self._metrics.events_custom_processing_seconds.observe(time.perf_counter() - started)

    async def _handle(self, request: RawRequest, space: str) -> Reply:
        routes = self._routes.space(space)
        header_map = {k.lower(): v for k, v in request.headers}
        cors_headers: dict[str, str] = {}
        if request.method == "OPTIONS" and header_map.get("access-control-request-method"):
            config = routes.cors_config(header_map["access-control-request-method"].upper(), request.path)
            if config is not None:
                canonical = {"Origin": header_map.get("origin", ""),
                             "Access-Control-Request-Method": header_map["access-control-request-method"],
                             "Access-Control-Request-Headers": header_map.get("access-control-request-headers", "")}
                allowed = cors.preflight_headers(config, canonical)
                if allowed is None:
                    return error_reply(403, cors.preflight_problem(config, canonical) or "CORS preflight refused")
                return Reply(200, allowed)
        elif header_map.get("origin"):
            config = routes.cors_config(request.method, request.path)
            if config is not None:
                cors_headers = cors.simple_headers(config, {"Origin": header_map["origin"]})

        try:
            parsed = parse_request(request)
        except ce.InvalidEvent as exc:
            return error_reply(400, str(exc), cors_headers)

        plugins = self._plugins.current()
        if parsed.batch:
            return await self._handle_batch(request, space, parsed, plugins, cors_headers)
        event = parsed.events[0]
        event_type = ce.event_type(event)
        self._metrics.child(self._metrics.events_received, space, event_type).inc()
        try:
            event, rejection = await self._received(space, request.path, event, parsed, plugins)
            if rejection is not None:
                return rejection_reply(rejection, cors_headers)
            return await self._route(request, space, event, plugins, cors_headers)
        finally:
            self._metrics.child(self._metrics.events_processed, space, event_type).inc()

    async def _received(self, space: str, path: str, event: dict[str, Any], parsed: ParsedRequest,
                        plugins: PluginSet) -> tuple[dict[str, Any], Rejection | None]:
        if not self._emitter.wanted(space, system_events.EVENT_RECEIVED, plugins):
            return event, None
        outcome = await self._emitter.emit(space, system_events.event_received(event, path, parsed.headers), plugins)
        if outcome.rejection is not None:
            return event, outcome.rejection
        return (outcome.event if outcome.event is not None else event), None

    async def _handle_batch(self, request: RawRequest, space: str, parsed: ParsedRequest, plugins: PluginSet,
                            cors_headers: dict[str, str]) -> Reply:
        """All or nothing: every event of a batch passes the received stage, then routing and its
        authorizer, before any is queued; batch events go to async subscribers only, as one answer
        cannot carry several sync responses."""
        accepted: list[dict[str, Any]] = []
        for event in parsed.events:
            self._metrics.child(self._metrics.events_received, space, ce.event_type(event)).inc()
            event, rejection = await self._received(space, request.path, event, parsed, plugins)
            if rejection is not None:
                return rejection_reply(rejection, cors_headers)
            accepted.append(event)
        routed: list[_Routed] = []
        for event in accepted:
            planned = await self._plan(request, space, event, cors_headers, async_only=True)
            if isinstance(planned, Reply):
                return planned
            routed.append(planned)
        for plan in routed:
            self._enqueue_all(space, plan, plugins)
            self._metrics.child(self._metrics.events_processed, space, ce.event_type(plan.event)).inc()
        return Reply(202, cors_headers)

    async def _plan(self, request: RawRequest, space: str, event: dict[str, Any], cors_headers: dict[str, str],
                    *, async_only: bool = False) -> _Routed | Reply:
        """Match the event's subscriptions and run its authorizer: what to deliver, or the answer
        that ends the event here (nothing matched: 202; authorizer denied: 403)."""
        routes = self._routes.space(space)
        event_type = ce.event_type(event)
        sync = None if async_only else routes.sync_subscription(request.method, request.path, event_type)
        asyncs = routes.async_subscriptions(request.method, request.path, event_type)
        if sync is None and asyncs is None:
            return Reply(202, cors_headers)
        params = (sync or asyncs).params  # type: ignore[union-attr]
        if event_type == HTTP_REQUEST_TYPE and ce.spec_version(event) == ce.V01 and isinstance(event.get("data"), dict):
            event = {**event, "data": {**event["data"], "params": params}}

        definition = self._view.event_type(space, event_type)
        authorizer_id = getattr(definition, "authorizer_id", None) if definition is not None else None
        if authorizer_id:
            mime = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
            request_data = http_request_event(request, mime, flatten_headers(request.headers))["data"]
            request_data["params"] = params
            auth = await authorize(self._invoker, space, authorizer_id, event, request_data)
            if auth.event is None:
                return error_reply(403, auth.message, cors_headers)
            event = auth.event
        return _Routed(event, sync, asyncs)

    def _enqueue_all(self, space: str, plan: _Routed, plugins: PluginSet) -> None:
        if plan.asyncs is not None:
            for subscription in plan.asyncs.subscriptions:
                self.enqueue(space, subscription, plan.event, plugins)

    async def _route(self, request: RawRequest, space: str, event: dict[str, Any], plugins: PluginSet,
                     cors_headers: dict[str, str]) -> Reply:
        planned = await self._plan(request, space, event, cors_headers)
        if isinstance(planned, Reply):
            return planned
        self._enqueue_all(space, planned, plugins)
        if planned.sync is None:
            return Reply(202, cors_headers)
        event = planned.event
        subscription = planned.sync.subscriptions[0]
        result = await self._invoker.invoke(space, subscription.function_id, event, plugins, mode="sync")
        if result.rejection is not None:
            return rejection_reply(result.rejection, cors_headers)
        if not result.ok:
            return error_reply(500, CALL_FAILED, cors_headers)
        try:
            response = parse_sync_response(result.body or b"")
        except MalformedResponse as exc:
            log.info("sync response of %s/%s malformed: %s", space, subscription.function_id, exc)
            return error_reply(500, "HTTP response object malformed", cors_headers)
        return Reply(response.status, {**response.headers, **cors_headers}, response.body)
