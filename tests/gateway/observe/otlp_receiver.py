"""A real OTLP/HTTP trace receiver for the tests: ``POST /v1/traces`` with an ``ExportTraceServiceRequest``
(protobuf, gzip or not), decoded with ``opentelemetry-proto`` into plain :class:`Span` values."""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from quart import Quart, Response, request

from tests.asgi_server import AsgiServer

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind is not None else None


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: str
    attributes: dict[str, Any]
    links: list[tuple[str, str, dict[str, Any]]]
    status_code: int
    service: str
    start_ns: int
    end_ns: int


@dataclass
class OtlpReceiver:
    url: str = ""
    spans: list[Span] = field(default_factory=list)
    requests: int = 0
    content_types: set[str] = field(default_factory=set)
    _server: AsgiServer | None = None

    def app(self) -> Quart:
        app = Quart("otlp_receiver")

        @app.post("/v1/traces")
        async def traces() -> Response:
            body = await request.get_data()
            if request.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            self.content_types.add(request.headers.get("Content-Type", ""))
            export = ExportTraceServiceRequest.FromString(body)
            self.requests += 1
            for resource_spans in export.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(Span(
                            name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(), kind=KINDS.get(span.kind, str(span.kind)),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            links=[(link.trace_id.hex(), link.span_id.hex(),
                                    {a.key: _value(a.value) for a in link.attributes}) for link in span.links],
                            status_code=span.status.code, service=str(resource.get("service.name")),
                            start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano))
            return Response(ExportTraceServiceResponse().SerializeToString(), status=200,
                            content_type="application/x-protobuf")

        return app

    async def start(self) -> None:
        self._server = AsgiServer(self.app())
        self.url = await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()

    def trace(self, trace_id: str) -> list[Span]:
        return [s for s in self.spans if s.trace_id == trace_id]

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> list[Span]:
        """Wait until ``predicate(spans)`` is true (fails the test on timeout); the spans received."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self.spans):
            if asyncio.get_running_loop().time() > deadline:
                names = sorted((s.name, s.trace_id[:8]) for s in self.spans)
                raise AssertionError(f"the spans expected did not arrive within {timeout}s; received: {names}")
            await asyncio.sleep(0.05)
        return self.spans
