"""Distributed traces (issue 15): OpenTelemetry's sampler and exporter configuration, our own span path.

Tracing is on when ``--otel-endpoint URL`` (``EVENT_GATEWAY_OTEL_ENDPOINT``) is given, or when the standard
variables ask for it: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, or
``OTEL_TRACES_EXPORTER`` naming ``otlp`` or ``console``. ``OTEL_TRACES_EXPORTER=none`` and
``OTEL_SDK_DISABLED=true`` turn it off (the flag wins over both, as every flag wins over the environment).
Spans leave through OTLP/HTTP (protobuf). The sampler is the SDK's, named as the SDK names them
(``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``, default ``parentbased_always_on``) but read here, where
a name or ratio the SDK does not know is a start-up error (the SDK would sample everything, with a warning).
The SDK still decides what it decides best from the standard variables: the resource
(``OTEL_RESOURCE_ATTRIBUTES``), and the OTLP/HTTP client's
``OTEL_EXPORTER_OTLP_HEADERS``, ``..._TIMEOUT``, ``..._COMPRESSION``, ``..._CERTIFICATE`` (and the
``_TRACES_`` forms). This module reads the batching variables itself: ``OTEL_BSP_MAX_QUEUE_SIZE`` (2048),
``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` (512), ``OTEL_BSP_SCHEDULE_DELAY`` (5000 ms), ``OTEL_BSP_EXPORT_TIMEOUT``
(30000 ms: how long shutdown waits for the last export), and the attribute limits
``OTEL_(SPAN_)ATTRIBUTE_VALUE_LENGTH_LIMIT`` (here 4096 characters unless set: the SDK has none) and
``OTEL_(SPAN_)ATTRIBUTE_COUNT_LIMIT`` (128); a value that is not a whole number is an error naming it.
The service is ``event-gateway`` unless ``OTEL_SERVICE_NAME`` (or ``service.name`` in
``OTEL_RESOURCE_ATTRIBUTES``) says otherwise.

Nothing here is process-global: each gateway has its own ``TracerProvider`` (OpenTelemetry's global one is
left alone), so several gateways in one process trace independently.

**Why not the SDK's spans, batch processor and encoder.** The SDK's spans are built for spans that live long
and change under several threads: each takes a lock, validates and copies every attribute and calls every
processor twice (~30 µs per span here, where an event makes 5-15 of them); its exporter then builds a
protobuf object per span and attribute (~20 µs per span plus ~3.5 µs per attribute, holding the GIL the
event loop needs). The gateway knows its spans end in order, so :class:`SpanRecorder` keeps a span as a
plain object and, when it ends, :class:`~gateway.observe.otlp.OtlpEncoder` writes its protobuf bytes
directly (a few µs) into a bounded :class:`~gateway.observe.otlp_export.SpanQueue` (bytes: nothing there for
the garbage collector to walk, where waiting span objects made it collect several times as often); the
queue's thread joins them into requests and sends them with the SDK exporter's HTTP client. The sampler is the SDK's,
asked once per trace, at its root, with the caller's context; spans below follow the root's decision (what every built-in sampler decides for them).
Where its answer is known without asking (``always_on``/``always_off`` and the ``parentbased_`` forms, for a
new trace or a caller's span: :meth:`SpanRecorder.decision`) it is not asked, and a request whose trace is
not sampled makes no spans at all (``gateway.observe.observation``): only its context is propagated.
A full queue drops spans and counts them: ``eventgateway_trace_spans_dropped_total{reason="queue_full"}``
(``export_failed`` for batches the collector refused or did not answer in time), so a slow or dead
collector never holds the event path nor grows memory.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from .export_sockets import watch_transport
from .otlp import FinishedSpan, OtlpEncoder, SpanEvent
from .otlp_export import SendDeadline, SpanQueue

__all__ = ["LiteSpan", "SpanRecorder", "Tracing", "TracingConfigError", "configure_tracing", "traces_url"]

log = logging.getLogger("gateway.tracing")

SERVICE_NAME = "event-gateway"
INSTRUMENTATION = "gateway"
#: Longest attribute value exported (characters) unless ``OTEL_(SPAN_)ATTRIBUTE_VALUE_LENGTH_LIMIT`` says.
VALUE_LENGTH_LIMIT = 4096
#: Most events kept per span.
MAX_EVENTS = 128
_ON = ("otlp", "console")


class TracingConfigError(ValueError):
    """The ``OTEL_*`` variables ask for something this gateway cannot do (the message says what)."""


def _shown(url: str) -> str:
    """``url`` as logged: a password in it masked."""
    from gateway.common import SECRET_MARKER, url_password, with_url_password

    return with_url_password(url, SECRET_MARKER) if url_password(url) is not None else url


def traces_url(endpoint: str) -> str:
    """``--otel-endpoint`` is the collector's base URL, as ``OTEL_EXPORTER_OTLP_ENDPOINT`` is: the traces go
    to ``<endpoint>/v1/traces`` (a URL already ending in ``/v1/traces`` is taken as it is)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


class LiteSpan:
    """A span of :class:`SpanRecorder`. It is its own span context (the fields of OpenTelemetry's
    ``SpanContext`` that the observations, the W3C headers and child spans read: ``trace_id``, ``span_id``,
    ``trace_flags``, ``trace_state``, ``is_valid``, ``is_remote``), and, once ended, the finished span handed
    to the export queue (the fields of :class:`~gateway.observe.otlp.FinishedSpan`): one object per span.
    A span the sampler did not sample records nothing (it still has a context to propagate); an ended span
    records nothing more."""

    __slots__ = ("_recorder", "attributes", "end_time", "events", "kind", "links", "name", "parent_remote",
                 "parent_span_id", "span_id", "start", "status_code", "status_message", "trace_flags",
                 "trace_id", "trace_state")

    is_valid = True
    is_remote = False

    def __init__(self, recorder: SpanRecorder | None, name: str, trace_id: int, span_id: int, trace_flags: Any,
                 trace_state: Any, parent_span_id: int, parent_remote: bool | None, kind: int,
                 attributes: dict[str, Any], links: Sequence[Any], start: int) -> None:
        self._recorder = recorder
        self.name = name
        self.trace_id = trace_id
        self.span_id = span_id
        self.trace_flags = trace_flags
        self.trace_state = trace_state
        self.parent_span_id = parent_span_id
        self.parent_remote = parent_remote
        self.kind = kind
        self.attributes = attributes
        self.links = links
        self.start = start
        self.end_time = 0
        self.events: list[SpanEvent] | tuple[()] = ()
        self.status_code = 0
        self.status_message: str | None = None

    def get_span_context(self) -> LiteSpan:
        return self

    def is_recording(self) -> bool:
        return self._recorder is not None

    def set_attribute(self, key: str, value: Any) -> None:
        if self._recorder is not None:
            self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._recorder is not None:
            self.attributes.update(attributes)

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None) -> None:
        if self._recorder is not None:
            if not self.events:
                self.events = []
            if len(self.events) < MAX_EVENTS:
                self.events.append(SpanEvent(name, timestamp if timestamp is not None else time.time_ns(),
                                             dict(attributes) if attributes else {}))

    def set_status(self, status: Any, description: str | None = None) -> None:
        """``status``: an OpenTelemetry ``Status``, or a ``StatusCode`` with ``description``."""
        if self._recorder is not None:
            code = getattr(status, "status_code", status)
            self.status_code = int(code.value)
            self.status_message = getattr(status, "description", None) if description is None else description

    def end(self, end_time: int | None = None) -> None:
        recorder = self._recorder
        if recorder is not None:
            self._recorder = None
            self.end_time = end_time if end_time is not None else time.time_ns()
            recorder.add(self)


class _Fanout:
    """Several export queues behind one (``OTEL_TRACES_EXPORTER=otlp,console``)."""

    def __init__(self, queues: Sequence[SpanQueue]) -> None:
        self._queues = tuple(queues)

    def add(self, span: Any) -> None:
        for queue in self._queues:
            queue.add(span)


class SpanRecorder:
    """Makes the gateway's spans and queues them for export when they end (see the module's doc)."""

    def __init__(self, provider: Any, queues: Sequence[SpanQueue]) -> None:
        from opentelemetry import trace as api

        self._api = api
        #: What an ended span is handed to (its export queue, or every queue).
        self.add: Callable[[Any], None] = queues[0].add if len(queues) == 1 else _Fanout(queues).add
        self._sampler = provider.sampler
        #: The sampler's answer where it is known without asking it (``always_on``/``always_off`` and the
        #: ``parentbased_`` forms): for a new trace, under a caller's sampled and unsampled span (None where
        #: the sampler must be asked: a ratio, another sampler).
        self._root_decision, self._sampled_parent_decision, self._unsampled_parent_decision = _static_decisions(
            provider.sampler)
        #: A new trace (no parent) is always sampled (``always_on``, ``parentbased_always_on``, the default).
        self._roots_sampled = self._root_decision is True
        self._sampled = api.TraceFlags(api.TraceFlags.SAMPLED)
        self._not_sampled = api.TraceFlags(api.TraceFlags.DEFAULT)
        self._kinds = {id(kind): kind.value + 1 for kind in api.SpanKind}  # the API's kinds by identity: OTLP's numbers
        self._internal = api.SpanKind.INTERNAL

    def decision(self, parent: Any) -> bool | None:
        """Whether a span under ``parent`` (a caller's ``SpanContext``, or None: a new trace) is sampled, when
        the sampler's answer is known without asking it; None when it must be asked (:meth:`start_span`)."""
        if parent is None:
            return self._root_decision
        return self._sampled_parent_decision if parent.trace_flags & 1 else self._unsampled_parent_decision

    def unsampled(self, parent: Any) -> LiteSpan:
        """A span that is not sampled under ``parent`` (a caller's ``SpanContext``, or None): nothing recorded,
        a context to propagate (the caller's trace and trace state, or a new trace), as the SDK gives its
        non-recording spans."""
        if parent is None:
            return LiteSpan(None, "", random.getrandbits(128) or 1, random.getrandbits(64) or 1, self._not_sampled,
                            None, 0, None, 1, {}, (), 0)
        return LiteSpan(None, "", parent.trace_id, random.getrandbits(64) or 1, self._not_sampled, parent.trace_state,
                        parent.span_id, parent.is_remote, 1, {}, (), 0)

    def start_span(self, name: str, parent: Any = None, *, kind: Any = None, attributes: Mapping[str, Any] | None = None,
                   links: Sequence[Any] = (), start_time: int | None = None) -> LiteSpan:
        """A span under ``parent`` (a :class:`LiteSpan`, or a caller's ``SpanContext`` from a ``traceparent``;
        ``None`` or invalid: a new trace)."""
        values = dict(attributes) if attributes else {}
        kind_number = 1 if kind is None else self._kinds[id(kind)]
        if type(parent) is LiteSpan:  # one of ours: the trace's sampling decision was taken at its root
            return LiteSpan(self if parent.trace_flags is self._sampled else None, name, parent.trace_id, random.getrandbits(64) or 1,
                            parent.trace_flags, parent.trace_state, parent.span_id, False, kind_number, values, links,
                            start_time if start_time is not None else time.time_ns())
        if parent is None and self._roots_sampled:
            return LiteSpan(self, name, random.getrandbits(128) or 1, random.getrandbits(64) or 1, self._sampled, None,
                            0, None, kind_number, values, links, start_time if start_time is not None else time.time_ns())
        api = self._api
        if parent is not None and not parent.is_valid:
            parent = None
        trace_id = parent.trace_id if parent is not None else (random.getrandbits(128) or 1)
        context = api.set_span_in_context(api.NonRecordingSpan(parent)) if parent is not None else None
        result = self._sampler.should_sample(context, trace_id, name, self._internal if kind is None else kind,
                                             values, links)
        sampled = result.decision.is_sampled()
        if sampled and result.attributes:
            values = {**result.attributes, **values}
        return LiteSpan(self if sampled else None, name, trace_id, random.getrandbits(64) or 1,
                        self._sampled if sampled else self._not_sampled, result.trace_state,
                        parent.span_id if parent is not None else 0, parent.is_remote if parent is not None else None,
                        kind_number, values, links, start_time if start_time is not None else time.time_ns())


def _static_decisions(sampler: Any) -> tuple[bool | None, bool | None, bool | None]:
    """What ``sampler`` decides for a root, under a caller's sampled span and under a caller's unsampled span,
    where it decides without looking at the span (a static sampler, alone or as a ``ParentBased``'s delegate
    for that case); None: it must be asked."""
    from opentelemetry.sdk.trace.sampling import Decision, ParentBased, StaticSampler

    def static(delegate: Any) -> bool | None:
        if type(delegate) is StaticSampler:
            return getattr(delegate, "_decision", None) is Decision.RECORD_AND_SAMPLE
        return None

    if type(sampler) is ParentBased:
        return (static(getattr(sampler, "_root", None)), static(getattr(sampler, "_remote_parent_sampled", None)),
                static(getattr(sampler, "_remote_parent_not_sampled", None)))
    decision = static(sampler)
    return decision, decision, decision


class _TraceExportMetrics:
    """Prometheus series of the export queues, read when scraped (nothing is counted twice on the event path)."""

    def __init__(self, queues: Sequence[tuple[str, SpanQueue]]) -> None:
        self._queues = tuple(queues)

    def describe(self) -> list[Any]:
        return list(self.collect())

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        exported = CounterMetricFamily("eventgateway_trace_spans_exported",
                                       "Spans the trace collector accepted.", labels=["exporter"])
        dropped = CounterMetricFamily(
            "eventgateway_trace_spans_dropped",
            "Spans not exported: queue_full (the export queue was full: the collector is slow or down), "
            "export_failed (the collector refused the batch or did not answer in time).", labels=["exporter", "reason"])
        queued = GaugeMetricFamily("eventgateway_trace_spans_queued", "Spans waiting for export.", labels=["exporter"])
        for name, queue in self._queues:
            exported.add_metric([name], queue.exported)
            dropped.add_metric([name, "queue_full"], queue.dropped_queue_full)
            dropped.add_metric([name, "export_failed"], queue.dropped_export_failed)
            queued.add_metric([name], len(queue))
        return iter((exported, dropped, queued))


class Tracing:
    """The span recorder of one gateway, its export queues and its provider (the sampler and the resource);
    flushed and stopped by :meth:`shutdown`."""

    def __init__(self, provider: Any, queues: Sequence[tuple[str, SpanQueue]], description: str,
                 export_timeout: float = 30.0) -> None:
        self.provider = provider
        self.queues = tuple(queues)
        self.recorder = SpanRecorder(provider, [queue for _, queue in self.queues])
        self.description = description
        self.export_timeout = export_timeout
        self._closers: list[Callable[[], None]] = []

    def register_metrics(self, registry: Any) -> None:
        """Export the queues' counters (spans exported, dropped by reason, queued) through ``registry``."""
        registry.register(_TraceExportMetrics(self.queues))

    def flush(self, timeout: float | None = None) -> bool:
        """Export every span ended so far (blocking); whether it finished within ``timeout`` seconds."""
        deadline = time.monotonic() + (self.export_timeout if timeout is None else timeout)
        return all([queue.flush(max(deadline - time.monotonic(), 0.0)) for _, queue in self.queues])

    def shutdown(self) -> None:
        """Export what is still queued (bounded by ``OTEL_BSP_EXPORT_TIMEOUT``) and stop. Blocking: call it
        from a thread at gateway shutdown."""
        deadline = time.monotonic() + self.export_timeout
        for _, queue in self.queues:
            queue.shutdown(max(deadline - time.monotonic(), 0.0))
        for close in self._closers:
            try:
                close()
            except Exception:
                log.exception("tracing: closing an exporter failed")
        try:
            self.provider.shutdown()
        except Exception:
            log.exception("tracing: shutting the tracer provider down failed")


def configure_tracing(endpoint: str | None, environ: Mapping[str, str] | None = None) -> Tracing | None:
    """The gateway's tracing, or ``None`` when it is off (see the module's doc)."""
    env = os.environ if environ is None else environ
    exporters = [name.strip().lower() for name in env.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()]
    env_endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint is None and (env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or exporters == ["none"]):
        return None
    unknown = [name for name in exporters if name not in (*_ON, "none")]
    if unknown:
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER={env.get('OTEL_TRACES_EXPORTER')!r}: this gateway exports "
                                 f"traces with otlp (OTLP/HTTP) or console, not {', '.join(unknown)}")
    if endpoint is None and not env_endpoint and not any(name in _ON for name in exporters):
        return None
    if not exporters or exporters == ["none"]:
        exporters = ["otlp"]  # an endpoint is configured: that is what it is for
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").strip().lower()
    if "otlp" in exporters and protocol != "http/protobuf":
        raise TracingConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: this gateway sends traces with "
                                 f"OTLP/HTTP (http/protobuf) only; point it at the collector's HTTP port (4318)")

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    # What the SDK would read from the environment, read from ``environ`` (the same mapping in production;
    # the tests pass their own), then the service's name: OTEL_SERVICE_NAME, service.name, or ours.
    attributes: dict[str, str] = {}
    for item in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, value = item.partition("=")
        if key.strip() and value.strip():
            attributes[unquote(key.strip())] = unquote(value.strip())
    if env.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = env["OTEL_SERVICE_NAME"]
    attributes.setdefault("service.name", SERVICE_NAME)
    max_queued = _env_int(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048, minimum=1)
    batch_size = _env_int(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, minimum=1)
    delay = _env_int(env, "OTEL_BSP_SCHEDULE_DELAY", 5000, minimum=0) / 1000
    export_timeout = _env_int(env, "OTEL_BSP_EXPORT_TIMEOUT", 30000, minimum=0) / 1000
    value_limit = _env_opt_int(env, "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", minimum=1)
    if value_limit is None:
        value_limit = _env_int(env, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", VALUE_LENGTH_LIMIT, minimum=1)
    count_limit = _env_opt_int(env, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", minimum=0)
    if count_limit is None:
        count_limit = _env_int(env, "OTEL_ATTRIBUTE_COUNT_LIMIT", 128, minimum=0)
    provider = TracerProvider(resource=Resource.create(attributes), sampler=_sampler(env))
    resource = dict(provider.resource.attributes)
    described: list[str] = []
    queues: list[tuple[str, SpanQueue]] = []
    closers: list[Callable[[], None]] = []
    for name in dict.fromkeys(exporters):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            if endpoint is not None:
                url = traces_url(endpoint)
            elif env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
                url = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]  # the signal's own URL: taken as it is
            else:
                url = traces_url(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318")
            exporter = OTLPSpanExporter(endpoint=url)  # headers, timeout, compression, TLS: from OTEL_* itself
            encoder = OtlpEncoder(resource, INSTRUMENTATION, value_limit=value_limit, count_limit=count_limit)
            send, prepare = _otlp_sender(exporter, encoder, provider.resource)
            queues.append(("otlp", SpanQueue(send, max_queued=max_queued, batch_size=batch_size, delay=delay,
                                             name="otlp", prepare=prepare)))
            closers.append(exporter.shutdown)
            described.append(f"OTLP/HTTP to {_shown(str(url))}")
        elif name == "console":
            queues.append(("console", SpanQueue(_console_sender(provider.resource), max_queued=max_queued,
                                                batch_size=batch_size, delay=delay, name="console")))
            described.append("the console")
    tracing = Tracing(provider, queues, ", ".join(described), export_timeout)
    tracing._closers.extend(closers)
    return tracing


#: OTEL_TRACES_SAMPLER's values (the SDK's names); the ratio ones take OTEL_TRACES_SAMPLER_ARG.
SAMPLERS = ("always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off",
            "parentbased_traceidratio")


def _sampler(env: Mapping[str, str]) -> Any:
    """The sampler ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` name, read from ``env`` (the SDK would
    read ``os.environ`` itself, and fall back to its default with a warning on a name or ratio it does not
    know: here that is a start-up error naming the variable)."""
    from opentelemetry.sdk.trace import sampling

    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    if name not in SAMPLERS:
        raise TracingConfigError(f"OTEL_TRACES_SAMPLER={env.get('OTEL_TRACES_SAMPLER')!r}: expected one of "
                                 f"{', '.join(SAMPLERS)}")
    if not name.endswith("traceidratio"):
        return {"always_on": sampling.ALWAYS_ON, "always_off": sampling.ALWAYS_OFF,
                "parentbased_always_on": sampling.ParentBased(sampling.ALWAYS_ON),
                "parentbased_always_off": sampling.ParentBased(sampling.ALWAYS_OFF)}[name]
    raw = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    try:
        rate = float(raw) if raw else 1.0
    except ValueError:
        rate = float("nan")
    if not 0.0 <= rate <= 1.0:  # NaN too
        raise TracingConfigError(f"OTEL_TRACES_SAMPLER_ARG={env.get('OTEL_TRACES_SAMPLER_ARG')!r}: {name} takes "
                                 f"the share of traces to sample, a number from 0 to 1")
    return sampling.TraceIdRatioBased(rate) if name == "traceidratio" else sampling.ParentBasedTraceIdRatio(rate)


def _env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    value = _env_opt_int(env, name, minimum=minimum)
    return default if value is None else value


def _env_opt_int(env: Mapping[str, str], name: str, *, minimum: int) -> int | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise TracingConfigError(f"{name}={text!r}: expected a whole number >= {minimum}")
    return value


def _otlp_sender(exporter: Any, encoder: OtlpEncoder,
                 resource: Any) -> tuple[Callable[[Sequence[Any]], bool], Callable[[Any], Any] | None]:
    """What the OTLP queue sends a batch with, and what it makes of a span as it queues it: each span
    encoded by :class:`OtlpEncoder` when it ends, a batch of them POSTed with the SDK exporter's HTTP client (its
    endpoint, headers, compression, timeout, TLS files and retries, all read from ``OTEL_*``). That client
    is ``OTLPSpanExporter._client`` (opentelemetry-exporter-otlp-proto-http 1.45); with a version that has
    none, the batch goes through the SDK's own ``export`` (its encoder: correct, slower)."""
    client = getattr(exporter, "_client", None)
    if client is None or not callable(getattr(client, "export", None)):
        log.warning("tracing: this opentelemetry-exporter-otlp-proto-http has no _client; spans are encoded by "
                    "the SDK (slower)")
        from opentelemetry.sdk.trace.export import SpanExportResult

        readable = _readable_maker(resource)
        return lambda batch: exporter.export([readable(span) for span in batch]) == SpanExportResult.SUCCESS, None
    max_size = getattr(exporter, "_max_request_size", 0)
    _leave_answer_bodies_unread(client)
    # The client's timeout bounds its retries and each read, not a collector trickling its answer or never
    # reading the request: one hard deadline per export, the client's timeout (its retries included), at which
    # the export's sockets are shut down (SendDeadline).
    if not watch_transport(getattr(client, "_transport", None)):
        log.warning("tracing: the OTLP exporter's HTTP transport is not one whose sockets can be watched; an "
                    "export given up at its deadline may hold its thread (and stop later exports) while the "
                    "collector holds its connection")
    timeout = getattr(client, "_timeout", None)
    deadline = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else 10.0

    def send(batch: Sequence[bytes]) -> bool:
        data = encoder.request_of_fields(batch)
        if max_size and len(data) > max_size:
            log.warning("tracing: dropping %d spans: their request is %d bytes, over the exporter's limit of %d",
                        len(batch), len(data), max_size)
            return False
        result = client.export(data)
        # The client takes any status below 400 as success; a redirect (it follows none) delivered nothing.
        return bool(result.success) and not (300 <= (result.status_code or 200) < 400)

    return SendDeadline(send, deadline), encoder.span_field


def _leave_answer_bodies_unread(client: Any) -> None:
    """Make the exporter's ``requests`` session stream each answer and close it unread: the status and the
    headers (``Retry-After``) are all the client looks at, and requests otherwise reads a whole body into
    memory, however large a collector makes it (256 MiB answered: 515 MiB held). Closing it unread closes
    the connection: each export opens its connection anew (one per batch)."""
    session = getattr(getattr(client, "_transport", None), "_session", None)
    hooks = getattr(session, "hooks", None)
    if not isinstance(hooks, dict) or not isinstance(hooks.get("response"), list):
        return
    session.stream = True  # type: ignore[union-attr]
    hooks["response"].append(_close_unread)


def _close_unread(response: Any, *args: Any, **kwargs: Any) -> Any:
    response.close()
    return response


def _readable_maker(resource: Any) -> Callable[[FinishedSpan], Any]:
    """What makes a finished span into the SDK's ``ReadableSpan`` (for the SDK's exporters)."""
    from opentelemetry import trace as api
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace.status import Status, StatusCode

    scope = InstrumentationScope(INSTRUMENTATION)
    kinds = {kind.value + 1: kind for kind in api.SpanKind}
    sampled = api.TraceFlags(api.TraceFlags.SAMPLED)

    def readable(span: FinishedSpan) -> Any:
        context = api.SpanContext(span.trace_id, span.span_id, False, sampled, span.trace_state)
        parent = (api.SpanContext(span.trace_id, span.parent_span_id, bool(span.parent_remote), sampled)
                  if span.parent_span_id else None)
        events = [Event(e.name, e.attributes, e.timestamp) for e in span.events]
        code = StatusCode(span.status_code)
        return ReadableSpan(span.name, context, parent, resource, span.attributes, events, span.links,
                            kinds[span.kind], None,
                            Status(code, span.status_message if code is StatusCode.ERROR else None),
                            span.start, span.end_time, scope)

    return readable


def _console_sender(resource: Any) -> Callable[[Sequence[FinishedSpan]], bool]:
    """Print a batch with the SDK's ``ConsoleSpanExporter``."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExportResult

    console = ConsoleSpanExporter(out=sys.stdout)  # the stdout of now (its default is the one at import)
    readable = _readable_maker(resource)

    def send(batch: Sequence[FinishedSpan]) -> bool:
        return console.export([readable(span) for span in batch]) == SpanExportResult.SUCCESS

    return send
