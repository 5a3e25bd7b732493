"""The hand-written OTLP encoder (gateway.observe.otlp): its bytes, decoded with ``opentelemetry-proto``'s
``ExportTraceServiceRequest``, are exactly the spans it was given; for ordinary values they decode to the same
message the SDK's own encoder builds."""

from __future__ import annotations

import math

from google.protobuf.json_format import MessageToDict
from opentelemetry import trace as api
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.trace.status import Status, StatusCode

from gateway.observe.otlp import FinishedSpan, OtlpEncoder, SpanEvent

TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SAMPLED = api.TraceFlags(api.TraceFlags.SAMPLED)
RESOURCE = {"service.name": "edge", "deployment.environment": "test", "host.cpus": 2, "flag": True}


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind is not None else None


def _attributes(key_values) -> dict:
    return {kv.key: _value(kv.value) for kv in key_values}


def _decode(data: bytes):
    request = ExportTraceServiceRequest.FromString(data)
    assert len(request.resource_spans) == 1 and len(request.resource_spans[0].scope_spans) == 1
    return request.resource_spans[0], request.resource_spans[0].scope_spans[0]


def _span(name: str = "s", **fields) -> FinishedSpan:
    values = dict(name=name, trace_id=TRACE, span_id=0x00F067AA0BA902B7, parent_span_id=0, parent_remote=None,
                  trace_state=None, kind=1, start=1_700_000_000_000_000_000, end_time=1_700_000_000_000_500_000,
                  attributes={}, events=(), links=(), status_code=0, status_message=None)
    values.update(fields)
    return FinishedSpan(**values)


def test_every_field_decodes_to_what_was_given() -> None:
    remote = api.SpanContext(0x1234, 0x99, is_remote=True, trace_flags=SAMPLED, trace_state=TraceState([("v", "1")]))
    spans = [
        _span("eventgateway.request", parent_span_id=0xABCDEF, parent_remote=True, kind=2,
              trace_state=TraceState([("vendor", "abc"), ("other", "x")]),
              attributes={"s": "text", "t": True, "f": False, "i": 42, "neg": -7, "big": 2**63 - 1, "d": 2.5,
                          "nan": math.nan, "strs": ["a", "b"], "ints": [1, -2], "bools": [True, False],
                          "floats": [0.5, 1.5], "raw": b"\x00\xff", "empty": ""},
              events=[SpanEvent("exception", 1_700_000_000_000_100_000, {"exception.message": "boom", "n": 3})],
              links=[Link(remote, {"eventgateway.link": "accepted"})],
              status_code=2, status_message="status 500"),
        _span("function fn", span_id=0x2, parent_span_id=0x00F067AA0BA902B7, parent_remote=False, kind=3,
              status_code=1),
        _span("plain", span_id=0x3),
    ]
    resource_spans, scope_spans = _decode(OtlpEncoder(RESOURCE, "gateway").request(spans))
    assert _attributes(resource_spans.resource.attributes) == RESOURCE
    assert scope_spans.scope.name == "gateway"
    first, second, third = scope_spans.spans
    assert first.trace_id.hex() == "4bf92f3577b34da6a3ce929d0e0e4736" and first.span_id.hex() == "00f067aa0ba902b7"
    assert first.parent_span_id.hex() == "0000000000abcdef" and first.trace_state == "vendor=abc,other=x"
    assert first.name == "eventgateway.request" and first.kind == 2
    assert (first.start_time_unix_nano, first.end_time_unix_nano) == (spans[0].start, spans[0].end_time)
    decoded = _attributes(first.attributes)
    assert math.isnan(decoded.pop("nan"))
    assert decoded == {"s": "text", "t": True, "f": False, "i": 42, "neg": -7, "big": 2**63 - 1, "d": 2.5,
                       "strs": ["a", "b"], "ints": [1, -2], "bools": [True, False], "floats": [0.5, 1.5],
                       "raw": b"\x00\xff", "empty": ""}
    assert first.attributes[1].value.WhichOneof("value") == "bool_value"  # a bool is no int
    [event] = first.events
    assert (event.name, event.time_unix_nano) == ("exception", 1_700_000_000_000_100_000)
    assert _attributes(event.attributes) == {"exception.message": "boom", "n": 3}
    [link] = first.links
    assert (link.trace_id.hex(), link.span_id.hex()) == (f"{0x1234:032x}", f"{0x99:016x}")
    assert link.trace_state == "v=1" and _attributes(link.attributes) == {"eventgateway.link": "accepted"}
    assert link.flags == 0x300  # the linked context is remote
    assert (first.status.code, first.status.message) == (2, "status 500")
    assert first.flags == 0x300  # parent remote
    assert second.kind == 3 and second.flags == 0x100 and second.status.code == 1
    assert second.parent_span_id.hex() == "00f067aa0ba902b7"
    assert third.parent_span_id == b"" and third.trace_state == "" and not third.attributes
    assert third.HasField("status") and third.status.code == 0


def _readable(span: FinishedSpan, resource: Resource) -> ReadableSpan:
    kinds = {kind.value + 1: kind for kind in SpanKind}
    context = api.SpanContext(span.trace_id, span.span_id, False, SAMPLED, span.trace_state)
    parent = (api.SpanContext(span.trace_id, span.parent_span_id, bool(span.parent_remote), SAMPLED)
              if span.parent_span_id else None)
    return ReadableSpan(span.name, context, parent, resource, span.attributes,
                        [Event(e.name, e.attributes, e.timestamp) for e in span.events], span.links,
                        kinds[span.kind], None,
                        Status(StatusCode(span.status_code), span.status_message if span.status_code == 2 else None),
                        span.start, span.end_time, InstrumentationScope("gateway"))


def test_the_same_message_as_the_sdk_encoder_builds() -> None:
    resource = Resource.create({"service.name": "edge"})
    remote = api.SpanContext(0x77, 0x88, is_remote=True, trace_flags=SAMPLED)
    spans = [_span("root", parent_span_id=0x5, parent_remote=True, kind=2,
                   attributes={"http.request.method": "POST", "http.response.status_code": 200, "ok": True,
                               "ratio": 0.25, "list": ["x", "y"]},
                   events=[SpanEvent("e", 5, {"k": "v"})], links=[Link(remote, {"why": "accepted"})],
                   status_code=2, status_message="failed"),
             _span("plugin guard", span_id=0x6, parent_span_id=0x00F067AA0BA902B7, parent_remote=False,
                   attributes={"eventgateway.plugin.fuel": 12345, "eventgateway.plugin.verdict": "continue"}),
             _span("delivery", span_id=0x7, kind=5, trace_state=TraceState([("a", "b")]))]
    ours = ExportTraceServiceRequest.FromString(
        OtlpEncoder(dict(resource.attributes), "gateway").request(spans))
    sdk = encode_spans([_readable(span, resource) for span in spans])
    assert MessageToDict(ours) == MessageToDict(sdk)


def test_hostile_values_are_bounded_and_still_decode() -> None:
    many = {f"key.{n}": n for n in range(500)}
    spans = [
        _span("huge", attributes={"huge": "x" * 1_000_000, "list": ["y" * 10_000, "z"], "raw": b"\x01" * 50_000}),
        _span("surrogates \ud800", span_id=0x2, attributes={"lone \udfff": "bad \ud800 text", "ok": "é"},
              status_code=2, status_message="\udc80 fault"),
        _span("many", span_id=0x3, attributes=many,
              events=[SpanEvent("e \ud800", 1, {f"k{n}": "v" for n in range(300)})]),
        _span("odd values", span_id=0x4,
              attributes={"too big": 2**70, "too small": -(2**64), "none": None, "dict": {"a": 1}, "mixed": [1, "a"]}),
    ]
    encoder = OtlpEncoder(RESOURCE, "gateway", value_limit=4096, count_limit=128)
    data = encoder.request(spans)
    assert len(data) < 200_000  # the megabyte string was cut
    _, scope_spans = _decode(data)
    huge, surrogates, many_span, odd = scope_spans.spans
    values = _attributes(huge.attributes)
    assert values["huge"] == "x" * 4096 and values["list"] == ["y" * 4096, "z"] and values["raw"] == b"\x01" * 4096
    assert surrogates.name == "surrogates ?"
    assert _attributes(surrogates.attributes) == {"lone ?": "bad ? text", "ok": "é"}
    assert surrogates.status.message == "? fault"
    assert len(many_span.attributes) == 128 and many_span.dropped_attributes_count == 500 - 128
    assert _attributes(many_span.attributes) == {f"key.{n}": n for n in range(128)}
    [event] = many_span.events
    assert event.name == "e ?" and len(event.attributes) == 128 and event.dropped_attributes_count == 300 - 128
    assert _attributes(odd.attributes) == {"too big": str(2**70), "too small": str(-(2**64)), "none": "None",
                                           "dict": "{'a': 1}", "mixed": [1, "a"]}


def test_the_caches_do_not_change_what_is_sent() -> None:
    encoder = OtlpEncoder(RESOURCE, "gateway")
    for round_ in range(3):  # the second and third rounds encode from the caches
        spans = [_span(f"s{n}", span_id=n + 1, attributes={"mode": "sync", "n": n, "flag": n % 2 == 0,
                                                            "id": f"event-{round_}-{n}"}) for n in range(50)]
        _, scope_spans = _decode(encoder.request(spans))
        assert [_attributes(s.attributes) for s in scope_spans.spans] == [
            {"mode": "sync", "n": n, "flag": n % 2 == 0, "id": f"event-{round_}-{n}"} for n in range(50)]
    # True and 1 are different attribute values (1 == True in a dict key: the cache keys on the type too).
    _, scope_spans = _decode(encoder.request([_span(attributes={"v": 1}), _span(span_id=2, attributes={"v": True})]))
    assert [s.attributes[0].value.WhichOneof("value") for s in scope_spans.spans] == ["int_value", "bool_value"]
