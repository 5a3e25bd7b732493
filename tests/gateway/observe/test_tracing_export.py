"""The export paths of the traces other than the gateway's own encoder: the SDK exporter's own encoding (used
when the installed exporter has no HTTP client to hand bytes to) and the console exporter; both from spans
made by the gateway's recorder, received by a real OTLP/HTTP receiver or printed."""

from __future__ import annotations

import asyncio
import json

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.trace import SpanKind

from gateway.observe.otlp import OtlpEncoder
from gateway.observe.tracing import _otlp_sender, configure_tracing

from .otlp_receiver import OtlpReceiver


class _WithoutClient:
    """The SDK exporter as a version without ``_client`` shows itself: only its public methods."""

    def __init__(self, exporter: OTLPSpanExporter) -> None:
        self.export = exporter.export
        self.shutdown = exporter.shutdown


def _spans(tracing):
    recorder = tracing.recorder
    root = recorder.start_span("root", kind=SpanKind.SERVER, attributes={"a": "x", "n": 3})
    child = recorder.start_span("child", root.get_span_context(), attributes={"ok": True})
    child.add_event("note", {"k": "v"})
    child.end()
    root.end()
    return [child, root]


async def test_without_the_exporters_http_client_the_sdk_encodes_and_sends() -> None:
    receiver = OtlpReceiver()
    await receiver.start()
    tracing = configure_tracing(receiver.url, {"OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_BSP_EXPORT_TIMEOUT": "100"})
    assert tracing is not None
    try:
        send, prepare = _otlp_sender(_WithoutClient(OTLPSpanExporter(endpoint=receiver.url + "/v1/traces")),
                            OtlpEncoder({}, "gateway"), tracing.provider.resource)
        child, root = _spans(tracing)
        assert prepare is None  # the SDK encodes the spans themselves
        assert await asyncio.to_thread(send, [child, root])
        spans = await receiver.wait_for(lambda spans: len(spans) == 2)
        by_name = {s.name: s for s in spans}
        assert by_name["root"].kind == "server" and by_name["root"].attributes == {"a": "x", "n": 3}
        assert by_name["child"].parent_span_id == f"{root.span_id:016x}"
        assert by_name["child"].trace_id == f"{root.trace_id:032x}" and by_name["child"].attributes == {"ok": True}
        assert by_name["root"].service == "event-gateway"
    finally:
        tracing.shutdown()
        await receiver.stop()


def test_the_console_exporter_prints_the_spans(capsys) -> None:
    tracing = configure_tracing(None, {"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "600000"})
    assert tracing is not None
    try:
        child, root = _spans(tracing)
        assert tracing.flush(10)
    finally:
        tracing.shutdown()
    printed = capsys.readouterr().out
    decoder = json.JSONDecoder()
    spans, at = [], 0
    while printed[at:].strip():
        at += len(printed[at:]) - len(printed[at:].lstrip())
        span, at = decoder.raw_decode(printed, at)
        spans.append(span)
    assert [s["name"] for s in spans] == ["child", "root"]
    assert spans[0]["parent_id"] == f"0x{root.span_id:016x}" and spans[0]["attributes"] == {"ok": True}
    assert spans[0]["events"][0]["name"] == "note" and spans[1]["kind"] == "SpanKind.SERVER"
