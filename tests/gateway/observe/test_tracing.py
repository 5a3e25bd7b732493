"""Distributed traces (issue 15) end to end: a real gateway process started with ``--otel-endpoint``, real WAT
plugins, a real http function, and a real OTLP/HTTP receiver decoding what the gateway exports with
``opentelemetry-proto``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from tests.gateway_fixtures import RecordedRequest
from tests.wat import kit_plugin

from .otlp_receiver import Span

pytestmark = pytest.mark.slow  # a gateway process

RECEIVED = "eventgateway.event.received"
INVOKING = "eventgateway.function.invoking"
INVOKED = "eventgateway.function.invoked"
CE = {"content-type": "application/cloudevents+json"}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def _one(spans: list[Span], name: str, **attributes: object) -> Span:
    found = [s for s in spans if s.name == name and all(s.attributes.get(k) == v for k, v in attributes.items())]
    assert len(found) == 1, f"{name} {attributes}: {len(found)} spans; spans: {[(s.name, s.attributes) for s in spans]}"
    return found[0]


def _header(recorded: RecordedRequest, name: str) -> str | None:
    return {k.lower(): v for k, v in recorded.headers.items()}.get(name.lower())


def _parts(traceparent: str | None) -> tuple[str, str, str]:
    assert traceparent is not None
    version, trace_id, span_id, flags = traceparent.split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled (the SDK may set the W3C "random" flag too)
    return trace_id, span_id, flags


async def test_one_event_is_one_trace_through_plugins_and_the_function(
        gateway_process, function_server, otlp, tmp_path: Path) -> None:
    guard = tmp_path / "guard.wasm"
    guard.write_bytes(kit_plugin([(RECEIVED, "sync"), (INVOKING, "sync")], {"error": "denied here", "status": 451},
                                 only_type="deny.me"))
    watcher = tmp_path / "watcher.wasm"
    watcher.write_bytes(kit_plugin([(RECEIVED, "async"), (INVOKED, "async")]))
    gw = gateway_process("--db", "memory", "--queue", "memory", "--otel-endpoint", otlp.url,
                         "--plugin", str(guard), "--plugin", str(watcher),
                         env={"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_SERVICE_NAME": ""})
    function_server.respond(200, {"statusCode": 200, "body": "done"})
    async with httpx.AsyncClient(base_url=gw.config_url, timeout=10) as config:
        base = "/v1/spaces/default"
        for path, body in ((f"{base}/functions", {"functionId": "fn", "type": "http",
                                                  "provider": {"url": function_server.url + "/fn"}}),
                           (f"{base}/functions", {"functionId": "later", "type": "http",
                                                  "provider": {"url": function_server.url + "/later"}}),
                           (f"{base}/eventtypes", {"name": "order.placed"}),
                           (f"{base}/eventtypes", {"name": "deny.me"}),
                           (f"{base}/eventtypes", {"name": "order.queued"}),
                           (f"{base}/subscriptions", {"type": "sync", "eventType": "order.placed",
                                                      "functionId": "fn", "path": "/orders"}),
                           (f"{base}/subscriptions", {"type": "sync", "eventType": "deny.me",
                                                      "functionId": "fn", "path": "/orders"}),
                           (f"{base}/subscriptions", {"type": "async", "eventType": "order.queued",
                                                      "functionId": "later", "path": "/queue"})):
            assert (await config.post(path, json=body)).status_code == 201, body

    async with httpx.AsyncClient(base_url=gw.events_url, timeout=10) as events:
        # 1. A sync event continuing the client's trace.
        event = {"specversion": "1.0", "type": "order.placed", "source": "/shop", "id": "o-1", "data": {"n": 1}}
        answer = await events.post("/orders", content=json.dumps(event), headers={
            **CE, "traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01", "tracestate": "vendor=abc"})
        assert answer.status_code == 200, answer.text
        # 2. One the guard rejects at event.received.
        denied = {"specversion": "1.0", "type": "deny.me", "source": "/shop", "id": "d-1"}
        answer = await events.post("/orders", content=json.dumps(denied), headers=CE)
        assert answer.status_code == 451
        # 3. An async CloudEvents 0.1 event, delivered later through the delivery queue.
        queued = {"cloudEventsVersion": "0.1", "eventType": "order.queued", "source": "/shop", "eventID": "q-1",
                  "data": {"n": 3}}
        answer = await events.post("/queue", content=json.dumps(queued), headers=CE)
        assert answer.status_code == 202

    calls = await function_server.wait_for_requests(2)
    sync_call = next(r for r in calls if r.path == "/fn")
    async_call = next(r for r in calls if r.path == "/later")

    # -- the sync event: one trace, the client's -------------------------------------------------------
    spans = await otlp.wait_for(lambda spans: any(s.name == INVOKED and s.trace_id == TRACE_ID for s in spans)
                                and len([s for s in spans if s.name == "plugin watcher" and s.trace_id == TRACE_ID]) == 2)
    trace = otlp.trace(TRACE_ID)
    root = _one(trace, "eventgateway.request")
    assert root.parent_span_id == CLIENT_SPAN  # the incoming traceparent is continued
    assert root.kind == "server" and root.service == "event-gateway"
    assert root.attributes["http.request.method"] == "POST" and root.attributes["url.path"] == "/orders"
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["cloudevents.event_id"] == "o-1"
    assert root.attributes["cloudevents.event_type"] == "order.placed"
    assert root.attributes["eventgateway.space"] == "default"

    received = _one(trace, RECEIVED)
    routing = _one(trace, "eventgateway.routing")
    invoking = _one(trace, INVOKING)
    invoked = _one(trace, INVOKED)
    call = _one(trace, "function fn")
    for child in (received, routing, invoking, call, invoked):
        assert child.parent_span_id == root.span_id, child.name
    assert routing.attributes["eventgateway.subscribers.sync"] == 1
    assert routing.attributes["eventgateway.subscribers.async"] == 0

    # The guard reacts on two stages: one span under each.
    guard_spans = [s for s in trace if s.name == "plugin guard"]
    assert sorted(s.parent_span_id for s in guard_spans) == sorted([received.span_id, invoking.span_id])
    guard_received = next(s for s in guard_spans if s.parent_span_id == received.span_id)
    assert guard_received.attributes["eventgateway.plugin.mode"] == "sync"
    assert guard_received.attributes["eventgateway.plugin.verdict"] == "continue"
    assert guard_received.attributes["eventgateway.plugin.fuel"] > 0
    assert guard_received.attributes["eventgateway.plugin.name"] == "guard"
    # The async reactions ran on a reactor thread, parented by the stage that offered them.
    reactions = [s for s in trace if s.name == "plugin watcher"]
    assert sorted(s.parent_span_id for s in reactions) == sorted([received.span_id, invoked.span_id])
    for reaction in reactions:
        assert reaction.attributes["eventgateway.plugin.mode"] == "async"
        assert reaction.attributes["eventgateway.plugin.verdict"] == "continue"
        assert reaction.attributes["eventgateway.plugin.fuel"] > 0

    assert call.kind == "client"
    assert call.attributes["eventgateway.function.id"] == "fn"
    assert call.attributes["eventgateway.function.provider"] == "http"
    assert call.attributes["http.response.status_code"] == 200
    # The function got the call span's context as traceparent ...
    header_trace, header_span, _ = _parts(_header(sync_call, "traceparent"))
    assert (header_trace, header_span) == (TRACE_ID, call.span_id)
    assert _header(sync_call, "tracestate") == "vendor=abc"
    # ... and the event carries the distributed-tracing extension: where its trace started (the request).
    body = sync_call.json
    assert _parts(body["traceparent"])[:2] == (TRACE_ID, root.span_id)
    assert body["tracestate"] == "vendor=abc"

    # -- the rejected event ----------------------------------------------------------------------------
    # (its spans may come in a later export batch than the sync event's: wait for the whole trace)
    def denied_trace_arrived(spans: list[Span]) -> bool:
        roots = [s for s in spans if s.name == "eventgateway.request"
                 and s.attributes.get("cloudevents.event_id") == "d-1"]
        return bool(roots) and {"plugin guard", RECEIVED} <= {s.name for s in spans if s.trace_id == roots[0].trace_id}

    await otlp.wait_for(denied_trace_arrived)
    denied_root = _one(otlp.spans, "eventgateway.request", **{"cloudevents.event_id": "d-1"})
    assert denied_root.attributes["http.response.status_code"] == 451
    denied_trace = otlp.trace(denied_root.trace_id)
    rejection = _one(denied_trace, "plugin guard")
    assert rejection.attributes["eventgateway.plugin.verdict"] == "reject"
    assert rejection.attributes["eventgateway.plugin.status"] == 451
    assert rejection.attributes["eventgateway.plugin.message"] == "denied here"
    assert _one(denied_trace, RECEIVED).attributes["eventgateway.rejected.plugin"] == "guard"
    assert not [s for s in denied_trace if s.name.startswith("function ")]

    # -- the async event: accepted in one trace, delivered in another, linked ---------------------------
    spans = await otlp.wait_for(lambda spans: any(s.name == "eventgateway.delivery" for s in spans)
                                and any(s.name == "function later" for s in spans))
    accepted = _one(spans, "eventgateway.request", **{"cloudevents.event_id": "q-1"})
    assert accepted.attributes["http.response.status_code"] == 202
    extension = async_call.json["extensions"]["distributedTracing"]  # the CloudEvents 0.1 place
    assert _parts(extension["traceparent"])[:2] == (accepted.trace_id, accepted.span_id)
    delivery = _one(spans, "eventgateway.delivery")
    assert delivery.kind == "consumer" and delivery.parent_span_id == ""
    assert delivery.trace_id != accepted.trace_id
    assert [(t, s) for t, s, _ in delivery.links] == [(accepted.trace_id, accepted.span_id)]
    assert delivery.attributes["eventgateway.delivery.attempt"] == 1
    assert delivery.attributes["eventgateway.function.id"] == "later"
    later = _one(spans, "function later")
    assert later.parent_span_id == delivery.span_id and later.trace_id == delivery.trace_id
    assert later.attributes["eventgateway.delivery.attempt"] == 1
    assert _parts(_header(async_call, "traceparent"))[:2] == (delivery.trace_id, later.span_id)
    assert _header(async_call, "Event-Gateway-Delivery-Attempt") == "1"

    # Spans left in the batch processor are flushed at shutdown.
    count = len(otlp.spans)
    async with httpx.AsyncClient(base_url=gw.events_url, timeout=10) as events:
        last = {"specversion": "1.0", "type": "order.placed", "source": "/shop", "id": "o-last"}
        assert (await events.post("/orders", content=json.dumps(last), headers=CE)).status_code == 200
    await asyncio.to_thread(gw.stop)
    assert gw.process.returncode == 0
    assert any(s.attributes.get("cloudevents.event_id") == "o-last" for s in otlp.spans[count:])


async def test_otel_variables_turn_tracing_on_with_their_sampler_and_service_name(
        gateway_process, otlp) -> None:
    gw = gateway_process("--db", "memory", "--queue", "memory", env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_SERVICE_NAME": "edge-gw", "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_TRACES_SAMPLER": "parentbased_always_off"})
    async with httpx.AsyncClient(base_url=gw.events_url, timeout=10) as events:
        event = {"specversion": "1.0", "type": "x.y", "source": "/s", "id": "1"}
        # A sampled parent: traced (parent-based); no parent: the sampler says off.
        assert (await events.post("/", content=json.dumps(event), headers={
            **CE, "traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"})).status_code == 202
        assert (await events.post("/", content=json.dumps({**event, "id": "2"}), headers=CE)).status_code == 202
    await asyncio.to_thread(gw.stop)
    roots = [s for s in otlp.spans if s.name == "eventgateway.request"]
    assert [(s.trace_id, s.service, s.attributes["cloudevents.event_id"]) for s in roots] == [
        (TRACE_ID, "edge-gw", "1")]
