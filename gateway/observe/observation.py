"""Watching one event on its way: one mechanism feeding both the live tail and the traces (issue 15).

The gateway has one :class:`Observer` (the tail hub and the tracer, either may be missing). For each event
it watches, the event path holds an :class:`Observation` in a ``ContextVar``; every hook in the path is

    obs = current()
    if obs is not None: ...

so with tracing off and nobody on the tail (the pipeline then sets nothing) a hook costs one
``ContextVar.get`` and a ``None`` test. An observation builds the event's :class:`EventRecord` (only when
the tail had listeners when the event arrived) and its spans (only when tracing is on), then publishes the
finished record to the hub.

A request whose trace the sampler does not sample, with nobody on the tail, is not observed: it gets a
:class:`_PropagatingRequest` whose hooks do nothing but hand its trace context on (the ``traceparent`` of
functions, the event's extension) -- no span, record or stage object. The decision is taken once, at the
root: without asking the sampler where its answer is known (``always_off``, and the ``parentbased_``
samplers for a new trace or a caller's unsampled one: ``SpanRecorder.decision``), else by asking it.

The spans of one request (see docs/operations.md, "Traces"):

- ``eventgateway.request`` (SERVER), the root; it continues an incoming W3C ``traceparent`` /
  ``tracestate``. A batch has one ``eventgateway.event`` child per event; a single event's spans hang
  under the root directly;
- one span per stage: ``eventgateway.event.received``, ``eventgateway.routing``, ``eventgateway.authorizer``,
  ``eventgateway.function.invoking``, ``eventgateway.function.invoked`` / ``invocationFailed``;
- ``plugin <name>`` per sync reaction, under its stage (attributes: plugin, mode, verdict, status, fuel,
  fault kind); async reactions get ``plugin <name>`` spans when they run on their thread, parented by the
  stage span that offered them;
- ``function <id>`` (CLIENT) per function call (function id, provider, mode, attempt, HTTP status); an http
  function receives its ``traceparent``;
- an async delivery is a trace of its own: ``eventgateway.delivery`` (CONSUMER) linked to the span that
  accepted the event, whose context travels in the event's CloudEvents distributed-tracing extension.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from typing import Any, Protocol

from gateway.events import cloudevents as ce

from .record import MAX_ENTRIES, CallRecord, EventRecord, PluginVerdict, StageRecord, cut
from .tracing import Tracing

__all__ = ["Observation", "Observer", "Publisher", "RequestObservation", "current", "trace_extension"]


class Publisher(Protocol):
    """What the observer needs of the live tail (`gateway.observe.tail.TailHub`)."""

    @property
    def listening(self) -> bool: ...

    def publish(self, record: EventRecord) -> None: ...


_CURRENT: ContextVar[Observation | None] = ContextVar("eventgateway_observation", default=None)

#: The observation of the event being handled in this context, or ``None`` (nothing watches).
current: Callable[[], Observation | None] = _CURRENT.get

#: The CloudEvents 0.1 key of the distributed-tracing extension (the extension's text of the 0.x specs:
#: "uses the key `distributedTracing` for in-memory formats"): ``extensions.distributedTracing`` holds
#: ``traceparent`` and ``tracestate``. In 1.0 both are top-level attributes.
V01_KEY = "distributedTracing"

def trace_extension(event: dict[str, Any]) -> tuple[str, str | None] | None:
    """The ``(traceparent, tracestate)`` an event carries in its distributed-tracing extension, if any."""
    if ce.spec_version(event) == ce.V10:
        holder: Any = event
    else:
        extensions = event.get("extensions")
        holder = extensions.get(V01_KEY) if isinstance(extensions, dict) else None
    if not isinstance(holder, Mapping):
        return None
    parent = holder.get("traceparent")
    if not isinstance(parent, str) or not parent:
        return None
    state = holder.get("tracestate")
    return parent, state if isinstance(state, str) and state else None


def _with_trace_extension(event: dict[str, Any], parent: str, state: str | None) -> dict[str, Any]:
    if ce.spec_version(event) == ce.V10:
        stamped = {**event, "traceparent": parent}
        if state:
            stamped["tracestate"] = state
        return stamped
    value = {"traceparent": parent}
    if state:
        value["tracestate"] = state
    return ce.set_extension(event, V01_KEY, value)


#: W3C Trace Context's ``traceparent`` (version, trace id, parent id, flags, what a later version adds), and
#: the bounds the SDK's propagator applies to both headers.
_TRACEPARENT = re.compile(r"^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:(-.*)|[ \t]*)$")
_TRACEPARENT_MAX = 512
_TRACESTATE_MAX = 8192
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class _Otel:
    """The OpenTelemetry names the observations use, imported once, only when tracing is on."""

    def __init__(self) -> None:
        from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

        self.Link = Link
        self.SpanKind = SpanKind
        self.SpanContext = SpanContext
        self.TraceFlags = TraceFlags
        self.TraceState = TraceState
        self.Status = Status
        self.ERROR = StatusCode.ERROR

    def extract(self, parent: str | None, state: str | None) -> Any:
        """The (remote) ``SpanContext`` a ``traceparent`` names; None when it is missing or malformed. The
        W3C rules exactly as the SDK's ``TraceContextTextMapPropagator.extract`` applies them (a test holds the
        two together), without its ``Context`` objects: this runs for every request that carries a header."""
        if not parent or len(parent) > _TRACEPARENT_MAX:
            return None
        match = _TRACEPARENT.match(parent)
        if match is None:
            return None
        version, trace_id, span_id, flags, rest = match.groups()
        if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN or version == "ff" or (version == "00" and rest):
            return None
        trace_state = None
        if state and len(state) <= _TRACESTATE_MAX:
            trace_state = self.TraceState.from_header([state])
        return self.SpanContext(int(trace_id, 16), int(span_id, 16), True, self.TraceFlags(int(flags, 16)),
                                trace_state)


def _traceparent(span: Any) -> tuple[str, str | None]:
    context = span.get_span_context()
    parent = f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    state = context.trace_state.to_header() if context.trace_state else None
    return parent, state or None


def _trace_id(span: Any) -> str | None:
    trace_id = span.get_span_context().trace_id
    return f"{trace_id:032x}" if trace_id else None


class Observer:
    """What watches the events of one gateway: the live tail (``hub``) and the traces (``tracing``)."""

    __slots__ = ("_otel", "_tracer", "hub", "tracing")

    def __init__(self, hub: Publisher | None = None, tracing: Tracing | None = None) -> None:
        self.hub = hub
        self.tracing = tracing
        self._tracer = tracing.recorder if tracing is not None else None
        self._otel = _Otel() if tracing is not None else None

    def active(self) -> bool:
        """Whether an event arriving now is watched (tracing on, or someone on the tail)."""
        if self._tracer is not None:
            return True
        hub = self.hub
        return hub is not None and hub.listening

    def _publisher(self) -> Callable[[EventRecord], None] | None:
        hub = self.hub
        return hub.publish if hub is not None and hub.listening else None

    def request(self, method: str, path: str, space: str, header: Callable[[str], str | None]) -> RequestObservation:
        """The observation of one Events API request (``header``: its headers by name). A request whose trace
        is not sampled, with nobody on the tail, gets a :class:`_PropagatingRequest`: its trace context
        travels, nothing else is made."""
        tracer, otel = self._tracer, self._otel
        if tracer is None or otel is None:
            return RequestObservation(self, method, path, space, header, None)
        parent = otel.extract(header("traceparent"), header("tracestate"))
        listening = self.hub is not None and self.hub.listening
        if not listening and tracer.decision(parent) is False:
            return _PropagatingRequest(tracer.unsampled(parent))
        root = tracer.start_span(
            "eventgateway.request", parent, kind=otel.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": str(cut(path)), "eventgateway.space": space})
        if not listening and not root.is_recording():
            return _PropagatingRequest(root)
        return RequestObservation(self, method, path, space, header, root)

    def delivery(self, *, space: str, function_id: str, event: dict[str, Any], delivery_id: str, attempt: int,
                 system: bool) -> Observation:
        """The observation of one async delivery attempt: a record of kind ``delivery`` and a span of its own,
        linked to the span that accepted the event (from its distributed-tracing extension)."""
        span = None
        tracer, otel = self._tracer, self._otel
        publish = self._publisher()
        if tracer is not None and publish is None and tracer.decision(None) is False:
            return _Propagating(tracer.unsampled(None))  # a root the sampler does not sample: only propagated
        if tracer is not None and otel is not None:
            links = []
            carried = trace_extension(event)
            accepted = otel.extract(*carried) if carried is not None else None
            if accepted is not None:
                links.append(otel.Link(accepted, {"eventgateway.link": "accepted"}))
            span = tracer.start_span(
                "eventgateway.delivery", None, kind=otel.SpanKind.CONSUMER, links=links,
                attributes={"eventgateway.space": space, "eventgateway.function.id": function_id,
                            "eventgateway.delivery.id": delivery_id, "eventgateway.delivery.attempt": attempt,
                            "eventgateway.delivery.system": system, **_event_attributes(event)})
            if publish is None and not span.is_recording():
                return _Propagating(span)
        record = None
        if publish is not None:
            record = _record(event, space, kind="delivery")
            if span is not None:
                record.trace_id = _trace_id(span)
        return Observation(self, record, span, publish, owns_span=True)


def _event_attributes(event: dict[str, Any]) -> dict[str, str]:
    return {"cloudevents.event_id": str(cut(ce.event_id(event))), "cloudevents.event_type": str(cut(ce.event_type(event))),
            "cloudevents.event_source": str(cut(event.get("source", "")))}


def _record(event: dict[str, Any], space: str, *, kind: Any = "request") -> EventRecord:
    return EventRecord(id=str(ce.event_id(event)), type=str(ce.event_type(event)), space=space,
                       source=str(event.get("source", "")), kind=kind)


class _Stage:
    __slots__ = ("context", "previous", "record", "span", "started")

    def __init__(self, previous: _Stage | None) -> None:
        self.previous = previous
        self.started = time.perf_counter()
        self.record: StageRecord | None = None
        self.span: Any = None
        self.context: Any = None


class _Call:
    __slots__ = ("attempt", "function_id", "headers", "mode", "provider", "span", "started")

    def __init__(self, function_id: str, provider: str, mode: str, attempt: int | None) -> None:
        self.function_id = function_id
        self.provider = provider
        self.mode = mode
        self.attempt = attempt
        self.started = time.perf_counter()
        self.span: Any = None
        #: What an http function receives: its ``traceparent`` (and ``tracestate``); None when not tracing.
        self.headers: dict[str, str] | None = None


class Observation:
    """One event's observation (see the module's doc). Made by the :class:`Observer`; used on the event
    loop's thread, by the hooks of the event path."""

    __slots__ = ("_context", "_observer", "_open", "_otel", "_owns", "_publish", "_started", "_token", "_tracer",
                 "call_status", "record", "span")

    def __init__(self, observer: Observer, record: EventRecord | None, span: Any,
                 publish: Callable[[EventRecord], None] | None, *, owns_span: bool) -> None:
        self._observer = observer
        self.record = record
        self.span = span
        self._publish = publish
        self._owns = owns_span
        self._tracer = observer._tracer if span is not None else None
        self._otel = observer._otel
        #: The parent of the spans made under this event (the span's context).
        self._context = span.get_span_context() if span is not None else None
        self._open: _Stage | None = None
        self._started = time.perf_counter()
        self._token: Token[Observation | None] | None = None
        #: The HTTP status of the call being made (the http provider notes it; None for other providers).
        self.call_status: int | None = None

    @property
    def tracing(self) -> bool:
        return self._tracer is not None

    def enter(self) -> None:
        """Make this the current observation of this context (until :meth:`finish`)."""
        self._token = _CURRENT.set(self)

    def _parent(self) -> Any:
        stage = self._open
        return stage.context if stage is not None and stage.context is not None else self._context

    # -- stages ---------------------------------------------------------------------------------------

    def begin_stage(self, name: str) -> _Stage:
        """A stage starts (a system event's plugins, routing, the authorizer): plugin verdicts and calls
        made until :meth:`end_stage` belong to it."""
        stage = _Stage(self._open)
        if self.record is not None:
            stage.record = StageRecord(name, 0.0)
            self.record.add_stage(stage.record)
        tracer = self._tracer
        if tracer is not None:
            stage.span = tracer.start_span(name, self._parent())
            stage.context = stage.span.get_span_context()
        self._open = stage
        return stage

    def end_stage(self, stage: _Stage, *, note: str | None = None, rejected: tuple[str, int, str] | None = None,
                  rewritten: bool = False, attributes: Mapping[str, Any] | None = None) -> None:
        """The stage ended; ``rejected``: ``(plugin, status, message)`` of the rejection that ended it."""
        self._open = stage.previous
        if rejected is not None and note is None:
            note = f"rejected by {rejected[0]}: {rejected[1]} {rejected[2]}"
        elif rewritten and note is None:
            note = "event rewritten"
        if stage.record is not None:
            stage.record.duration_ms = (time.perf_counter() - stage.started) * 1000
            stage.record.note = note
        span = stage.span
        if span is not None:
            if attributes:
                span.set_attributes(attributes)
            if rejected is not None:
                span.set_attributes({"eventgateway.rejected.plugin": rejected[0],
                                     "eventgateway.rejected.status": rejected[1],
                                     "eventgateway.rejected.message": str(cut(rejected[2]))})
            if rewritten:
                span.set_attribute("eventgateway.rewritten", True)
            if note is not None:
                span.set_attribute("eventgateway.note", str(cut(note)))
            span.end()

    def stage_done(self, name: str, started: float, started_ns: int, *, note: str | None = None,
                   attributes: Mapping[str, Any] | None = None) -> None:
        """A stage that ran without plugins or calls (routing), recorded after the fact: ``started`` from
        ``time.perf_counter()``, ``started_ns`` from ``time.time_ns()``."""
        if self.record is not None:
            self.record.add_stage(StageRecord(name, (time.perf_counter() - started) * 1000, note=note))
        tracer = self._tracer
        if tracer is not None:
            span = tracer.start_span(name, self._parent(), start_time=started_ns, attributes=attributes)
            if note is not None:
                span.set_attribute("eventgateway.note", note)
            span.end()

    # -- plugins ----------------------------------------------------------------------------------------

    def plugin(self, name: str, mode: str, verdict: str, started_ns: int, *, status: int | None = None,
               message: str | None = None, fault_kind: str | None = None, fuel: int | None = None) -> None:
        """One sync plugin reaction's verdict (``started_ns`` from ``time.time_ns()`` before the call)."""
        ended_ns = time.time_ns()
        if self.record is not None:
            stage = self._open
            if stage is not None and stage.record is not None and len(stage.record.plugins) < MAX_ENTRIES:
                stage.record.plugins.append(PluginVerdict(
                    name, "async" if mode == "async" else "sync", verdict,  # type: ignore[arg-type]
                    (ended_ns - started_ns) / 1e6, status, cut(message), fault_kind, fuel))
        tracer = self._tracer
        if tracer is not None:
            _plugin_span(tracer, self._otel, self._parent(), name, mode, verdict, started_ns, ended_ns, status,
                         message, fault_kind, fuel)

    def async_parent(self) -> AsyncParent | None:
        """What an async reaction offered now needs to trace itself on its thread (None when not tracing)."""
        tracer = self._tracer
        if tracer is None:
            return None
        return AsyncParent(tracer, self._otel, self._parent())

    # -- function calls ----------------------------------------------------------------------------------

    def begin_call(self, function_id: str, provider: str, mode: str, attempt: int | None) -> _Call:
        call = _Call(function_id, provider, mode, attempt)
        self.call_status = None
        tracer, otel = self._tracer, self._otel
        if tracer is not None and otel is not None:
            attributes: dict[str, Any] = {"eventgateway.function.id": function_id,
                                          "eventgateway.function.provider": provider, "eventgateway.function.mode": mode}
            if attempt is not None:
                attributes["eventgateway.delivery.attempt"] = attempt
            call.span = tracer.start_span(f"function {function_id}", self._parent(), kind=otel.SpanKind.CLIENT,
                                          attributes=attributes)
            parent, state = _traceparent(call.span)
            call.headers = {"traceparent": parent, "tracestate": state} if state else {"traceparent": parent}
        return call

    def end_call(self, call: _Call, ok: bool, error: str | None = None) -> None:
        status = self.call_status
        if self.record is not None:
            self.record.add_call(CallRecord(
                call.function_id, call.provider, "async" if call.mode == "async" else "sync", ok,
                (time.perf_counter() - call.started) * 1000, status, call.attempt or 1, cut(error)))
        span = call.span
        if span is not None:
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            if not ok:
                span.set_status(self._otel.Status(self._otel.ERROR, str(cut(error or "the call failed"))))  # type: ignore[union-attr]
            span.end()

    # -- the event ----------------------------------------------------------------------------------------

    def stamp(self, event: dict[str, Any]) -> dict[str, Any]:
        """``event`` carrying the distributed-tracing extension (the context of the span accepting it), as
        the function receives it and the delivery queue keeps it. An event already carrying the extension
        keeps it (the extension holds the *starting* trace of the event's way); not tracing: unchanged."""
        span = self.span
        if span is None or trace_extension(event) is not None:
            return event
        return _with_trace_extension(event, *_traceparent(span))

    def finish(self, status: int | None, error: BaseException | str | None = None) -> None:
        """The event's answer is decided: the record is published, the span (when this observation owns it)
        ended."""
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None
        record = self.record
        if record is not None:
            record.status = status
            record.duration_ms = (time.perf_counter() - self._started) * 1000
            if self._publish is not None:
                self._publish(record)
        span = self.span
        if span is not None and self._owns:
            _end_span(span, self._otel, status, error)


def _end_span(span: Any, otel: Any, status: int | None, error: BaseException | str | None) -> None:
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if error is not None:
        span.set_status(otel.Status(otel.ERROR, str(cut(error))))
    elif status is not None and status >= 500:
        span.set_status(otel.Status(otel.ERROR, f"status {status}"))
    span.end()


def _plugin_span(tracer: Any, otel: Any, parent: Any, name: str, mode: str, verdict: str, started_ns: int,
                 ended_ns: int, status: int | None, message: str | None, fault_kind: str | None,
                 fuel: int | None) -> None:
    attributes: dict[str, Any] = {"eventgateway.plugin.name": name, "eventgateway.plugin.mode": mode,
                                  "eventgateway.plugin.verdict": verdict}
    if status is not None:
        attributes["eventgateway.plugin.status"] = status
    if message is not None:
        attributes["eventgateway.plugin.message"] = str(cut(message))
    if fault_kind is not None:
        attributes["eventgateway.plugin.fault_kind"] = fault_kind
    if fuel is not None:
        attributes["eventgateway.plugin.fuel"] = fuel
    span = tracer.start_span(f"plugin {name}", parent, start_time=started_ns, attributes=attributes)
    if verdict == "fault":
        span.set_status(otel.Status(otel.ERROR, f"plugin fault: {fault_kind}"))
    span.end(end_time=ended_ns)


class AsyncParent:
    """The trace context an async reaction was offered in; the reaction's thread makes its span with it."""

    __slots__ = ("_context", "_otel", "_tracer")

    def __init__(self, tracer: Any, otel: Any, context: Any) -> None:
        self._tracer = tracer
        self._otel = otel
        self._context = context

    def reaction(self, name: str, verdict: str, started_ns: int, *, status: int | None = None,
                 message: str | None = None, fault_kind: str | None = None, fuel: int | None = None) -> None:
        """One async reaction ran (on any thread): its span, parented by the stage that offered it."""
        _plugin_span(self._tracer, self._otel, self._context, name, "async", verdict, started_ns, time.time_ns(),
                     status, message, fault_kind, fuel)


class RequestObservation:
    """One Events API request: the root span, and an :class:`Observation` per event of it."""

    __slots__ = ("_batch", "_observer", "_parse_record", "_publish", "_started", "_token", "events", "space", "span")

    def __init__(self, observer: Observer, method: str, path: str, space: str,
                 header: Callable[[str], str | None], span: Any) -> None:
        self._observer = observer
        self._publish = observer._publisher()
        self._started = time.perf_counter()
        self.space = space
        self.events: list[Observation] = []
        self._batch = False
        self._parse_record: EventRecord | None = None
        self._token: Token[Observation | None] | None = None
        #: The root span (``eventgateway.request``, made by the observer), or None when not tracing.
        self.span: Any = span

    def preflight(self) -> None:
        if self.span is not None:
            self.span.set_attribute("eventgateway.cors_preflight", True)

    def invalid(self, message: str) -> None:
        """The request held no valid event (400): its record has a ``parse`` stage saying why."""
        if self._publish is not None:
            record = EventRecord(id="", type="", space=self.space, source="")
            record.add_stage(StageRecord("parse", 0.0, note=message))
            if self.span is not None:
                record.trace_id = _trace_id(self.span)
            self._parse_record = record
        if self.span is not None:
            self.span.set_attribute("eventgateway.invalid", str(cut(message)))

    def parsed(self, events: list[dict[str, Any]], batch: bool) -> None:
        """The request's events: one observation each, the first one current."""
        self._batch = batch
        observer, tracer, otel, root = self._observer, self._observer._tracer, self._observer._otel, self.span
        if root is not None:
            root.set_attribute("eventgateway.events", len(events))
            if not batch and events:
                root.set_attributes(_event_attributes(events[0]))
        trace_id = _trace_id(root) if root is not None else None
        for event in events:
            span = root
            if batch and tracer is not None and otel is not None:
                span = tracer.start_span("eventgateway.event", root.get_span_context(),
                                         attributes=_event_attributes(event))
            record = None
            if self._publish is not None:
                record = _record(event, self.space)
                record.trace_id = trace_id
            self.events.append(Observation(observer, record, span, self._publish, owns_span=batch))
        if self.events:
            self._token = _CURRENT.set(self.events[0])

    def select(self, index: int) -> None:
        """Event ``index`` of a batch is the one being handled now."""
        _CURRENT.set(self.events[index])

    def finish(self, status: int | None, error: BaseException | None = None) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None
        for observation in self.events:
            observation.finish(status, error)
        if self._parse_record is not None and self._publish is not None:
            self._parse_record.status = status
            self._parse_record.duration_ms = (time.perf_counter() - self._started) * 1000
            self._publish(self._parse_record)
        if self.span is not None:
            _end_span(self.span, self._observer._otel, status, error)


class _Propagating(Observation):
    """An event whose trace is not sampled, watched by nobody on the tail: nothing is recorded, no span or
    record is made; its trace context (``span``: the unsampled root, a :class:`~gateway.observe.tracing.LiteSpan`)
    still travels as a sampled one would: functions receive its ``traceparent`` (flags ``00``) and
    ``tracestate``, the event its distributed-tracing extension. The hooks of the event path cost a call each.
    Every span the SDK would make under it is not sampled either (each follows the root's decision), so one
    context stands for them all: the function is given the root's span id as its parent."""

    __slots__ = ("_headers",)

    def __init__(self, context: Any) -> None:  # the base's other fields are never read here
        self.span = context
        self.record = None
        self._tracer = None
        self._token = None
        self.call_status = None
        self._headers: dict[str, str] | None = None

    def _propagated(self) -> dict[str, str]:
        headers = self._headers
        if headers is None:
            parent, state = _traceparent(self.span)
            headers = self._headers = {"traceparent": parent, "tracestate": state} if state else {"traceparent": parent}
        return headers

    def begin_stage(self, name: str) -> _Stage:
        return _NO_STAGE

    def end_stage(self, stage: _Stage, *, note: str | None = None, rejected: tuple[str, int, str] | None = None,
                  rewritten: bool = False, attributes: Mapping[str, Any] | None = None) -> None:
        pass

    def stage_done(self, name: str, started: float, started_ns: int, *, note: str | None = None,
                   attributes: Mapping[str, Any] | None = None) -> None:
        pass

    def plugin(self, name: str, mode: str, verdict: str, started_ns: int, *, status: int | None = None,
               message: str | None = None, fault_kind: str | None = None, fuel: int | None = None) -> None:
        pass

    def async_parent(self) -> AsyncParent | None:
        return None

    def begin_call(self, function_id: str, provider: str, mode: str, attempt: int | None) -> _Call:
        call = _Call(function_id, provider, mode, attempt)
        call.headers = self._propagated()
        self.call_status = None
        return call

    def end_call(self, call: _Call, ok: bool, error: str | None = None) -> None:
        pass

    def stamp(self, event: dict[str, Any]) -> dict[str, Any]:
        if trace_extension(event) is not None:
            return event
        headers = self._propagated()
        return _with_trace_extension(event, headers["traceparent"], headers.get("tracestate"))

    def finish(self, status: int | None, error: BaseException | str | None = None) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None


#: The stage every :class:`_Propagating` observation hands out (it records nothing in it).
_NO_STAGE = _Stage(None)


class _PropagatingRequest(RequestObservation):
    """A request whose trace is not sampled, watched by nobody on the tail: one :class:`_Propagating`
    observation stands for all its events (the root's context is what each of them propagates)."""

    __slots__ = ("_observation",)

    def __init__(self, context: Any) -> None:  # the base's other fields are never read here
        self.span = None
        self._token = None
        self._observation = _Propagating(context)

    def preflight(self) -> None:
        pass

    def invalid(self, message: str) -> None:
        pass

    def parsed(self, events: list[dict[str, Any]], batch: bool) -> None:
        if events:
            self._token = _CURRENT.set(self._observation)

    def select(self, index: int) -> None:
        pass

    def finish(self, status: int | None, error: BaseException | None = None) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None
