"""Traces the sampler does not sample (issue 16): nothing is recorded or exported, yet the trace context
travels exactly as OpenTelemetry's SDK propagates a non-recording span's: functions receive a ``traceparent``
with flags ``00`` (the caller's trace, or a new one) and the caller's ``tracestate``, events carry the
distributed-tracing extension. A caller's sampled ``traceparent`` is followed by ``parentbased_always_off``
and ignored by ``always_off``. A real gateway process, real WAT plugins, a real http function and a real
OTLP/HTTP receiver."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest

from tests.gateway_fixtures import RecordedRequest
from tests.wat import kit_plugin

pytestmark = pytest.mark.slow  # a gateway process

RECEIVED = "eventgateway.event.received"
INVOKED = "eventgateway.function.invoked"
CE = {"content-type": "application/cloudevents+json"}
UNSAMPLED_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SAMPLED_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def _context(recorded: RecordedRequest) -> tuple[str, str, int, str | None]:
    """The (trace id, parent span id, flags, tracestate) the function received in its headers."""
    headers = {k.lower(): v for k, v in recorded.headers.items()}
    match = TRACEPARENT.match(headers.get("traceparent", ""))
    assert match is not None, headers
    trace_id, span_id, flags = match.groups()
    assert trace_id != "0" * 32 and span_id != "0" * 16
    return trace_id, span_id, int(flags, 16), headers.get("tracestate")


def _extension(body: dict) -> tuple[str, int]:
    holder = body if "specversion" in body else body["extensions"]["distributedTracing"]
    match = TRACEPARENT.match(holder["traceparent"])
    assert match is not None, holder
    return match.group(1), int(match.group(3), 16)


@pytest.mark.parametrize("sampler", ["always_off", "parentbased_always_off"])
async def test_an_unsampled_trace_is_propagated_and_not_exported(
        gateway_process, function_server, otlp, tmp_path: Path, sampler: str) -> None:
    guard = tmp_path / "guard.wasm"
    guard.write_bytes(kit_plugin([(RECEIVED, "sync")], {"error": "denied", "status": 451}, only_type="deny.me"))
    watcher = tmp_path / "watcher.wasm"
    watcher.write_bytes(kit_plugin([(RECEIVED, "async"), (INVOKED, "async")]))
    gw = gateway_process("--db", "memory", "--queue", "memory", "--otel-endpoint", otlp.url,
                         "--plugin", str(guard), "--plugin", str(watcher),
                         env={"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_TRACES_SAMPLER": sampler})
    function_server.respond(200, {"statusCode": 200, "body": "done"})
    async with httpx.AsyncClient(base_url=gw.config_url, timeout=10) as config:
        base = "/v1/spaces/default"
        for path, body in ((f"{base}/functions", {"functionId": "fn", "type": "http",
                                                  "provider": {"url": function_server.url + "/fn"}}),
                           (f"{base}/functions", {"functionId": "later", "type": "http",
                                                  "provider": {"url": function_server.url + "/later"}}),
                           (f"{base}/eventtypes", {"name": "order.placed"}),
                           (f"{base}/eventtypes", {"name": "order.queued"}),
                           (f"{base}/subscriptions", {"type": "sync", "eventType": "order.placed",
                                                      "functionId": "fn", "path": "/orders"}),
                           (f"{base}/subscriptions", {"type": "async", "eventType": "order.queued",
                                                      "functionId": "later", "path": "/queue"})):
            assert (await config.post(path, json=body)).status_code == 201, body

    def placed(n: int) -> str:
        return json.dumps({"specversion": "1.0", "type": "order.placed", "source": "/shop", "id": f"o-{n}"})

    async with httpx.AsyncClient(base_url=gw.events_url, timeout=10) as events:
        # 1. No caller's context: a new trace, not sampled.
        assert (await events.post("/orders", content=placed(1), headers=CE)).status_code == 200
        [call] = await function_server.wait_for_requests(1)
        trace_id, span_id, flags, state = _context(call)
        assert flags == 0 and state is None
        assert _extension(call.json) == (trace_id, 0)  # the event carries the same (unsampled) trace
        # 2. A caller's unsampled context: its trace and trace state continue, unsampled.
        assert (await events.post("/orders", content=placed(2), headers={
            **CE, "traceparent": f"00-{UNSAMPLED_TRACE}-{CLIENT_SPAN}-00", "tracestate": "vendor=abc"})).status_code == 200
        call = (await function_server.wait_for_requests(2))[1]
        trace_id, span_id, flags, state = _context(call)
        assert (trace_id, flags, state) == (UNSAMPLED_TRACE, 0, "vendor=abc") and span_id != CLIENT_SPAN
        assert _extension(call.json) == (UNSAMPLED_TRACE, 0) and call.json["tracestate"] == "vendor=abc"
        # 3. A caller's sampled context: parentbased_always_off follows it (a recorded trace), always_off not.
        assert (await events.post("/orders", content=placed(3), headers={
            **CE, "traceparent": f"00-{SAMPLED_TRACE}-{CLIENT_SPAN}-01"})).status_code == 200
        call = (await function_server.wait_for_requests(3))[2]
        trace_id, span_id, flags, state = _context(call)
        followed = sampler == "parentbased_always_off"
        assert (trace_id, flags & 1) == (SAMPLED_TRACE, 1 if followed else 0) and span_id != CLIENT_SPAN
        # 4. An async CloudEvents 0.1 event: accepted in an unsampled trace, delivered in another.
        queued = {"cloudEventsVersion": "0.1", "eventType": "order.queued", "source": "/shop", "eventID": "q-1"}
        assert (await events.post("/queue", content=json.dumps(queued), headers=CE)).status_code == 202
        delivered = next(r for r in await function_server.wait_for_requests(4) if r.path == "/later")
        trace_id, span_id, flags, state = _context(delivered)
        accepted_trace, accepted_flags = _extension(delivered.json)
        assert flags == 0 and accepted_flags == 0 and trace_id != accepted_trace
        # 5. A batch, and an event a sync plugin rejects: answered as ever.
        batch = [{"specversion": "1.0", "type": "order.queued", "source": "/shop", "id": f"b-{i}"} for i in range(2)]
        assert (await events.post("/queue", content=json.dumps(batch), headers={
            "content-type": "application/cloudevents-batch+json"})).status_code == 202
        denied = {"specversion": "1.0", "type": "deny.me", "source": "/shop", "id": "d-1"}
        assert (await events.post("/orders", content=json.dumps(denied), headers=CE)).status_code == 451
        await function_server.wait_for_requests(6)
    await asyncio.to_thread(gw.stop)
    assert gw.process.returncode == 0
    # Only the caller's sampled trace was recorded (under parentbased_always_off): nothing else reached
    # the collector.
    assert {s.trace_id for s in otlp.spans} == ({SAMPLED_TRACE} if followed else set())
    if followed:
        assert {"eventgateway.request", RECEIVED, "plugin guard", "function fn"} <= {s.name for s in otlp.spans}
