"""The request pipeline: parse -> ``event.received`` -> route (and authorize) -> invoke -> reply.

One :class:`~gateway.plugins.contract.PluginSet` is taken per request and used at every stage of its
events, so a plugin reload never shows an event half of each set. Async subscribers get the event
through the delivery queue (:mod:`gateway.queue`, delivered by :mod:`.delivery_worker`): every delivery
of a request -- each async subscriber of each of its events, a whole batch included -- is handed to
``queue.enqueue`` in one call, and the 202 goes out only once it returned (a durable queue has them
stored then). A queue that refuses them (`QueueFull` over ``--queue-max-events``, `QueueUnavailable`)
makes the answer 503 with its message, nothing queued and no sync subscriber called. The pipeline answers
plain :class:`~.reply.Reply` objects; the HTTP edge only converts them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.events import cloudevents as ce
from gateway.events import system_events
from gateway.events.parse import HTTP_REQUEST_TYPE, ParsedRequest, RawRequest, parse_request
from gateway.metrics import Metrics
from gateway.observe.observation import Observer, RequestObservation, current
from gateway.plugins.contract import CurrentPlugins, PluginSet, Rejection
from gateway.plugins.stages import replacement_budget
from gateway.routing import cors
from gateway.routing.table import Match, RouteTable

from gateway.queue.base import DeliveryQueue, NewDelivery, QueueError

from .authorizer import authorize
from .emitter import SystemEmitter
from .invoke import Invoker
from .reply import CALL_FAILED, Reply, error_reply, rejection_reply
from .sync_response import MalformedResponse, parse_sync_response, typed_headers

__all__ = ["EventTypeLookup", "RequestPipeline"]

log = logging.getLogger("gateway.pipeline")
#: Warnings about refused events (503: queue full or unavailable) repeat at most this often.
_REFUSED_WARN_SECONDS = 10.0


class EventTypeLookup(Protocol):
    def event_type(self, space: str, name: str) -> Any | None: ...


@dataclass(frozen=True, slots=True)
class _Routed:
    """An event that routing and its authorizer let through, with the subscriptions it goes to."""

    event: dict[str, Any]
    sync: Match | None
    asyncs: Match | None


class RequestPipeline:
    def __init__(self, view: EventTypeLookup, plugins: CurrentPlugins, metrics: Metrics, routes: RouteTable,
                 invoker: Invoker, emitter: SystemEmitter, queue: DeliveryQueue,
                 observer: Observer | None = None) -> None:
        self._view = view
        self._plugins = plugins
        self._metrics = metrics
        self._routes = routes
        self._invoker = invoker
        self._emitter = emitter
        self._queue = queue
        #: The live tail and the traces: an event is watched only when `Observer.active` says so.
        self._observer = observer if observer is not None else Observer()
        self._refused = 0
        self._refused_warned_at = -_REFUSED_WARN_SECONDS

    async def handle(self, request: RawRequest, space: str) -> Reply:
        started = time.perf_counter()
        try:
            # The replacement events the plugins make for this request (all its events and stages) are
            # capped in bytes: past the cap it is refused with 413 (see replacement_budget).
            with replacement_budget():
                if not self._observer.active():
                    return await self._handle(request, space, None)
                return await self._observed(request, space)
        finally:
            self._metrics.events_custom_processing_seconds.observe(time.perf_counter() - started)

    async def _observed(self, request: RawRequest, space: str) -> Reply:
        observed = self._observer.request(request.method, request.path, space, request.header)
        try:
            reply = await self._handle(request, space, observed)
        except BaseException as exc:
            observed.finish(500, exc)
            raise
        observed.finish(reply.status)
        return reply

    async def _handle(self, request: RawRequest, space: str, observed: RequestObservation | None) -> Reply:
        routes = self._routes.space(space)
        answer = cors.preflight(routes, request.method, request.path, request.fields)
        if answer is not None:
            if observed is not None:
                observed.preflight()
            return Reply(200, answer.headers) if answer.headers is not None else error_reply(403, answer.problem)
        cors_headers = cors.response_headers(routes, request.method, request.path, request.fields)

        try:
            parsed = parse_request(request)
        except ce.InvalidEvent as exc:
            if observed is not None:
                observed.invalid(str(exc))
            return error_reply(400, str(exc), cors_headers)

        plugins = self._plugins.current()
        if observed is not None:
            observed.parsed(parsed.events, parsed.batch)
        if parsed.batch:
            return await self._handle_batch(request, space, parsed, plugins, cors_headers, observed)
        event = parsed.events[0]
        event_type = ce.event_type(event)
        self._metrics.child(self._metrics.events_received, space, event_type).inc()
        try:
            event, rejection = await self._received(space, request.path, event, parsed, plugins)
            if rejection is not None:
                return rejection_reply(rejection, cors_headers)
            return await self._route(request, parsed, space, event, plugins, cors_headers)
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
                            cors_headers: dict[str, str], observed: RequestObservation | None) -> Reply:
        """All or nothing: every event of a batch passes the received stage, then routing and its
        authorizer, before any is queued; batch events go to async subscribers only, as one answer
        cannot carry several sync responses."""
        accepted: list[dict[str, Any]] = []
        for index, event in enumerate(parsed.events):
            if observed is not None:
                observed.select(index)
            self._metrics.child(self._metrics.events_received, space, ce.event_type(event)).inc()
            event, rejection = await self._received(space, request.path, event, parsed, plugins)
            if rejection is not None:
                return rejection_reply(rejection, cors_headers)
            accepted.append(event)
        routed: list[_Routed] = []
        for index, event in enumerate(accepted):
            if observed is not None:
                observed.select(index)
            planned = await self._plan(request, parsed, space, event, cors_headers, async_only=True)
            if isinstance(planned, Reply):
                return planned
            routed.append(planned)
        refused = await self._enqueue_all(space, routed, cors_headers)
        if refused is not None:
            return refused
        for plan in routed:
            self._metrics.child(self._metrics.events_processed, space, ce.event_type(plan.event)).inc()
        return Reply(202, cors_headers)

    async def _plan(self, request: RawRequest, parsed: ParsedRequest, space: str, event: dict[str, Any],
                    cors_headers: dict[str, str], *, async_only: bool = False) -> _Routed | Reply:
        """Match the event's subscriptions and run its authorizer: what to deliver, or the answer
        that ends the event here (nothing matched: 202; authorizer denied: 403)."""
        obs = current()
        if obs is not None:
            started, started_ns = time.perf_counter(), time.time_ns()
        routes = self._routes.space(space)
        event_type = ce.event_type(event)
        sync = None if async_only else routes.sync_subscription(request.method, request.path, event_type)
        asyncs = routes.async_subscriptions(request.method, request.path, event_type)
        matched = sync or asyncs
        if obs is not None:
            n_async = len(asyncs.subscriptions) if asyncs is not None else 0
            obs.stage_done("eventgateway.routing", started, started_ns,
                           note=f"{1 if sync is not None else 0} sync, {n_async} async subscribers",
                           attributes={"eventgateway.subscribers.sync": 1 if sync is not None else 0,
                                       "eventgateway.subscribers.async": n_async})
        if matched is None:
            return Reply(202, cors_headers)
        params = matched.params
        if event_type == HTTP_REQUEST_TYPE and ce.spec_version(event) == ce.V01 and isinstance(event.get("data"), dict):
            event = {**event, "data": {**event["data"], "params": params}}

        definition = self._view.event_type(space, event_type)
        authorizer_id = getattr(definition, "authorizer_id", None) if definition is not None else None
        if authorizer_id:
            request_data = parsed.request_data(request)
            request_data["params"] = params
            stage = obs.begin_stage("eventgateway.authorizer") if obs is not None else None
            auth = await authorize(self._invoker, space, authorizer_id, event, request_data)
            if obs is not None and stage is not None:
                obs.end_stage(stage, note=f"{authorizer_id}: " + ("allowed" if auth.event is not None else auth.message),
                              attributes={"eventgateway.authorizer.id": authorizer_id,
                                          "eventgateway.authorizer.allowed": auth.event is not None})
            if auth.event is None:
                return error_reply(403, auth.message, cors_headers)
            event = auth.event
        if obs is not None:
            # The distributed-tracing extension, set once the event is accepted: it travels with the event
            # to the sync function and through the delivery queue to async ones.
            event = obs.stamp(event)
        return _Routed(event, sync, asyncs)

    async def _enqueue_all(self, space: str, plans: list[_Routed], cors_headers: dict[str, str]) -> Reply | None:
        """Queue every async delivery of ``plans`` at once, all or none: None when queued (or none to
        queue), else the 503 to answer."""
        deliveries = [NewDelivery(space, subscription.function_id, subscription.subscription_id, plan.event)
                      for plan in plans if plan.asyncs is not None for subscription in plan.asyncs.subscriptions]
        if not deliveries:
            return None
        try:
            await self._queue.enqueue(deliveries)
        except QueueError as exc:
            self._refused += 1
            now = time.monotonic()
            if now - self._refused_warned_at >= _REFUSED_WARN_SECONDS:
                log.warning("async events refused with 503 (%d since the last warning): %s", self._refused, exc)
                self._refused_warned_at = now
                self._refused = 0
            return error_reply(503, str(exc), cors_headers)
        return None

    async def _route(self, request: RawRequest, parsed: ParsedRequest, space: str, event: dict[str, Any],
                     plugins: PluginSet, cors_headers: dict[str, str]) -> Reply:
        planned = await self._plan(request, parsed, space, event, cors_headers)
        if isinstance(planned, Reply):
            return planned
        refused = await self._enqueue_all(space, [planned], cors_headers)
        if refused is not None:
            return refused
        if planned.sync is None:
            return Reply(202, cors_headers)
        event = planned.event
        subscription = planned.sync.subscriptions[0]
        result = await self._invoker.invoke(space, subscription.function_id, event, plugins, mode="sync")
        if result.rejection is not None:
            return rejection_reply(result.rejection, cors_headers)
        if not result.ok:
            return error_reply(500, result.client_message or CALL_FAILED, cors_headers)
        try:
            response = parse_sync_response(result.body or b"")
        except MalformedResponse as exc:
            log.info("sync response of %s/%s malformed: %s", space, subscription.function_id, exc)
            return error_reply(500, "HTTP response object malformed", cors_headers)
        return Reply(response.status, {**typed_headers(response), **cors_headers}, response.body)
