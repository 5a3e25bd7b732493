"""Distributed traces (issue 15): the OpenTelemetry SDK, off unless configured.

Tracing is on when ``--otel-endpoint URL`` (``EVENT_GATEWAY_OTEL_ENDPOINT``) is given, or when the standard
variables ask for it: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, or
``OTEL_TRACES_EXPORTER`` naming ``otlp`` or ``console``. ``OTEL_TRACES_EXPORTER=none`` and
``OTEL_SDK_DISABLED=true`` turn it off (the flag wins over both, as every flag wins over the environment).
Spans leave through the OTLP/HTTP (protobuf) exporter behind a batch span processor; the SDK reads the rest
of its standard variables itself: ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (default
``parentbased_always_on``), ``OTEL_EXPORTER_OTLP_HEADERS``, ``..._TIMEOUT``, ``..._COMPRESSION``,
``..._CERTIFICATE``, ``OTEL_BSP_*``, ``OTEL_RESOURCE_ATTRIBUTES``. The service is ``event-gateway`` unless
``OTEL_SERVICE_NAME`` (or ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``) says otherwise.

Nothing here is process-global: each gateway has its own ``TracerProvider`` (OpenTelemetry's global one is
left alone), so several gateways in one process trace independently.

**Why spans are made by :class:`SpanRecorder`, not ``Tracer.start_span``.** The SDK's spans are built for
spans that live long and change under several threads: each one takes a lock, validates and copies every
attribute and calls every processor twice: ~30 µs per span here, where an event makes 5-15 of them and the
gateway's own CPU per event is ~1 ms (docs/benchmarks.md). The gateway knows its spans end in order on one
thread, so :class:`SpanRecorder` keeps a span as a plain object and, when it ends, hands the SDK's own
``ReadableSpan`` to the SDK's own batch span processor: the same sampler (asked once per trace, at its root,
with the caller's context; spans below follow the root's decision, which is what every built-in sampler
decides for them), the same ids, resource, export queue, exporter and shutdown.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

__all__ = ["LiteSpan", "SpanRecorder", "Tracing", "TracingConfigError", "configure_tracing", "traces_url"]

log = logging.getLogger("gateway.tracing")

SERVICE_NAME = "event-gateway"
INSTRUMENTATION = "gateway"
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
    """A span of :class:`SpanRecorder`: attributes and status kept until :meth:`end` hands it to the processors.
    A span the sampler did not sample keeps nothing (it still has a context to propagate)."""

    __slots__ = ("_recorder", "attributes", "context", "kind", "links", "name", "parent", "start", "status")

    def __init__(self, recorder: SpanRecorder, name: str, context: Any, parent: Any, kind: Any,
                 attributes: dict[str, Any] | None, links: Sequence[Any], start: int) -> None:
        self._recorder: SpanRecorder | None = recorder
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.links = links
        self.start = start
        self.status: Any = None

    def get_span_context(self) -> Any:
        return self.context

    def is_recording(self) -> bool:
        return self.attributes is not None

    def set_attribute(self, key: str, value: Any) -> None:
        if self.attributes is not None:
            self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self.attributes is not None:
            self.attributes.update(attributes)

    def set_status(self, status: Any) -> None:
        self.status = status

    def end(self, end_time: int | None = None) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is not None and self.attributes is not None:
            recorder._finished(self, end_time if end_time is not None else time.time_ns())


class SpanRecorder:
    """Makes the gateway's spans for the SDK's processors (see the module's doc)."""

    def __init__(self, provider: Any, processors: Sequence[Any]) -> None:
        from opentelemetry import trace as api
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace.status import Status, StatusCode

        self._api = api
        self._readable = ReadableSpan
        self._processors = tuple(processors)
        self._sampler = provider.sampler
        self._resource = provider.resource
        self._scope = InstrumentationScope(INSTRUMENTATION)
        self._unset = Status(StatusCode.UNSET)
        self._sampled = api.TraceFlags(api.TraceFlags.SAMPLED)
        self._not_sampled = api.TraceFlags(api.TraceFlags.DEFAULT)
        self._internal = api.SpanKind.INTERNAL

    def start_span(self, name: str, parent: Any = None, *, kind: Any = None, attributes: Mapping[str, Any] | None = None,
                   links: Sequence[Any] = (), start_time: int | None = None) -> LiteSpan:
        """A span under ``parent`` (a ``SpanContext``: one of ours, or a caller's from a ``traceparent``;
        ``None`` or invalid: a new trace)."""
        api = self._api
        kind = self._internal if kind is None else kind
        values = dict(attributes) if attributes else {}
        if parent is not None and parent.is_valid and not parent.is_remote:
            trace_id, flags, state = parent.trace_id, parent.trace_flags, parent.trace_state
        else:
            if parent is not None and not parent.is_valid:
                parent = None
            trace_id = parent.trace_id if parent is not None else (random.getrandbits(128) or 1)
            context = api.set_span_in_context(api.NonRecordingSpan(parent)) if parent is not None else None
            result = self._sampler.should_sample(context, trace_id, name, kind, values, links)
            flags = self._sampled if result.decision.is_sampled() else self._not_sampled
            state = result.trace_state
            if result.attributes:
                values = {**result.attributes, **values}
        span_context = api.SpanContext(trace_id, random.getrandbits(64) or 1, is_remote=False, trace_flags=flags,
                                       trace_state=state)
        return LiteSpan(self, name, span_context, parent, kind, values if flags.sampled else None, links,
                        start_time if start_time is not None else time.time_ns())

    def _finished(self, span: LiteSpan, end_time: int) -> None:
        readable = self._readable(
            span.name, span.context, span.parent, self._resource, span.attributes, (), span.links, span.kind,
            None, span.status or self._unset, span.start, end_time, self._scope)
        for processor in self._processors:
            processor.on_end(readable)


class Tracing:
    """The span recorder of one gateway and its provider (flushed and shut down by :meth:`shutdown`)."""

    def __init__(self, provider: Any, processors: Sequence[Any], description: str) -> None:
        self.provider = provider
        self.recorder = SpanRecorder(provider, processors)
        self.description = description

    def shutdown(self) -> None:
        """Export what is still buffered (bounded by the exporter's timeout) and stop. Blocking: call it
        from a thread at gateway shutdown."""
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
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

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
    # The SDK reads OTEL_TRACES_SAMPLER(_ARG) when no sampler is given.
    provider = TracerProvider(resource=Resource.create(attributes))
    described: list[str] = []
    processors: list[Any] = []
    for name in dict.fromkeys(exporters):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            if endpoint is not None:
                url = traces_url(endpoint)
            elif env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
                url = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]  # the signal's own URL: taken as it is
            else:
                url = traces_url(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318")
            exporter = OTLPSpanExporter(endpoint=url)  # headers, timeout, compression: from OTEL_* itself
            processors.append(BatchSpanProcessor(exporter))
            described.append(f"OTLP/HTTP to {_shown(str(url))}")
        elif name == "console":
            processors.append(BatchSpanProcessor(ConsoleSpanExporter()))
            described.append("the console")
    for processor in processors:
        provider.add_span_processor(processor)  # shut down (flushed) with the provider
    return Tracing(provider, processors, ", ".join(described))
