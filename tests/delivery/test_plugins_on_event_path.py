"""Wasm plugins on the event path: rejection, rewrite and fault at each stage, with real compiled plugins."""

from __future__ import annotations

import json

from event_plane_harness import FunctionServer, GatewayFactory
from wat_plugins import plugin

RECEIVED = "eventgateway.event.received"
INVOKING = "eventgateway.function.invoking"
INVOKED = "eventgateway.function.invoked"
FAILED = "eventgateway.function.invocationFailed"
CE = {"content-type": "application/cloudevents+json"}


def _event(event_type: str = "order.placed", **data: object) -> bytes:
    return json.dumps({"specversion": "1.0", "type": event_type, "source": "/t", "id": "e1", "data": data}).encode()


async def _sync_gateway(event_gateway: GatewayFactory, recorder: FunctionServer, plugins: list[bytes]):
    gw = await event_gateway(plugins=plugins)
    await gw.function("fn", recorder.target("fn"))
    await gw.subscribe("sync", "order.placed", "fn", path="/orders")
    return gw


async def test_received_rejection_answers_its_status_and_message(event_gateway, recorder):
    guard = plugin([(RECEIVED, "sync")], {"error": "orders are closed", "status": 451}, only_type="order.placed")
    gw = await _sync_gateway(event_gateway, recorder, [guard])
    response = await gw.client.post("/orders", content=_event(), headers=CE)
    assert response.status_code == 451
    assert response.json() == {"errors": [{"message": "orders are closed"}]}
    assert recorder.received["fn"] == []
    other = await gw.client.post("/orders", content=_event("order.cancelled"), headers=CE)
    assert other.status_code == 202  # the plugin let it through; no subscriber for that type


async def test_rejection_without_status_is_403_never_an_empty_200(event_gateway, recorder):
    gw = await _sync_gateway(event_gateway, recorder, [plugin([(RECEIVED, "sync")], {"error": "no"})])
    response = await gw.client.post("/orders", content=_event(), headers=CE)
    assert response.status_code == 403 and response.json()["errors"][0]["message"] == "no"


async def test_received_rewrite_replaces_the_event(event_gateway, recorder):
    replacement = {"specversion": "1.0", "type": "order.placed", "source": "/rewritten", "id": "r1",
                   "data": {"redacted": True}}
    gw = await _sync_gateway(event_gateway, recorder, [plugin([(RECEIVED, "sync")], {"event": replacement})])
    assert (await gw.client.post("/orders", content=_event(card="4111"), headers=CE)).status_code == 200
    assert recorder.received["fn"][0]["body"] == replacement


async def test_sync_fault_fails_closed_with_503(event_gateway, recorder):
    gw = await _sync_gateway(event_gateway, recorder, [plugin([(RECEIVED, "sync")], trap=True)])
    response = await gw.client.post("/orders", content=_event(), headers=CE)
    assert response.status_code == 503
    assert response.json()["errors"][0]["message"]
    assert recorder.received["fn"] == []


async def test_invoking_rejection_blocks_sync_call_and_drops_async_delivery(event_gateway, recorder):
    blocker = plugin([(INVOKING, "sync")], {"error": "function frozen", "status": 409}, only_type="order.placed")
    gw = await _sync_gateway(event_gateway, recorder, [blocker])
    response = await gw.client.post("/orders", content=_event(), headers=CE)
    assert response.status_code == 409 and response.json()["errors"][0]["message"] == "function frozen"
    await gw.function("later", recorder.target("later"))
    await gw.subscribe("async", "order.placed", "later", path="/queue")
    assert (await gw.client.post("/queue", content=_event(), headers=CE)).status_code == 202
    await gw.plane.processor.queue.drain(5)
    assert recorder.received["fn"] == [] and recorder.received["later"] == []
    assert gw.metric("eventgateway_events_dropped_total", space="default", type="order.placed") == 1


async def test_invoking_fault_and_rewrite(event_gateway, recorder):
    gw = await _sync_gateway(event_gateway, recorder, [plugin([(INVOKING, "sync")], trap=True)])
    assert (await gw.client.post("/orders", content=_event(), headers=CE)).status_code == 503
    replacement = {"specversion": "1.0", "type": "order.placed", "source": "/plugin", "id": "r2", "data": {}}
    gw2 = await _sync_gateway(event_gateway, recorder, [plugin([(INVOKING, "sync")], {"event": replacement})])
    assert (await gw2.client.post("/orders", content=_event(), headers=CE)).status_code == 200
    assert recorder.received["fn"][-1]["body"] == replacement


async def test_invoked_reaches_sync_plugins_which_can_block_the_answer(event_gateway, recorder):
    gw = await _sync_gateway(event_gateway, recorder,
                             [plugin([(INVOKED, "sync")], {"error": "result withheld", "status": 502})])
    response = await gw.client.post("/orders", content=_event(), headers=CE)
    assert response.status_code == 502 and response.json()["errors"][0]["message"] == "result withheld"
    assert len(recorder.received["fn"]) == 1  # the function ran; the plugin saw function.invoked


async def test_invocation_failed_reaches_plugins_but_cannot_change_the_outcome(event_gateway, recorder):
    gw = await _sync_gateway(event_gateway, recorder,
                             [plugin([(FAILED, "sync")], {"error": "ignored", "status": 418})])
    recorder.answer("fn", {"x": 1}, status=500)
    response = await gw.client.post("/orders", content=_event(), headers=CE)
    assert response.status_code == 500
    samples = [sample for family in gw.metrics.registry.collect() if family.name == "eventgateway_plugin_reactions"
               for sample in family.samples
               if sample.name.endswith("_total") and sample.labels.get("event_type") == FAILED]
    assert sum(sample.value for sample in samples) == 1.0  # the plugin did see function.invocationFailed
