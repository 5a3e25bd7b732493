"""Wasm plugins on the event path: rejection, rewrite and fault at each stage, with real compiled plugins."""

from __future__ import annotations

import json

import httpx
from tests.wat import kit_plugin

from .event_plane_harness import FunctionServer, GatewayFactory

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
    guard = kit_plugin([(RECEIVED, "sync")], {"error": "orders are closed", "status": 451}, only_type="order.placed")
    gw = await _sync_gateway(event_gateway, recorder, [guard])
    response = await gw.client.post("/orders", content=_event(), headers=CE)
    assert response.status_code == 451
    assert response.json() == {"errors": [{"message": "orders are closed"}]}
    assert recorder.received["fn"] == []
    other = await gw.client.post("/orders", content=_event("order.cancelled"), headers=CE)
    assert other.status_code == 202  # the plugin let it through; no subscriber for that type


async def test_rejection_without_status_is_403_never_an_empty_200(event_gateway, recorder):
    gw = await _sync_gateway(event_gateway, recorder, [kit_plugin([(RECEIVED, "sync")], {"error": "no"})])
    response = await gw.client.post("/orders", content=_event(), headers=CE)
    assert response.status_code == 403 and response.json()["errors"][0]["message"] == "no"


async def test_received_rewrite_replaces_the_event(event_gateway, recorder):
    replacement = {"specversion": "1.0", "type": "order.placed", "source": "/rewritten", "id": "r1",
                   "data": {"redacted": True}}
    gw = await _sync_gateway(event_gateway, recorder, [kit_plugin([(RECEIVED, "sync")], {"event": replacement})])
    assert (await gw.client.post("/orders", content=_event(card="4111"), headers=CE)).status_code == 200
    assert recorder.received["fn"][0]["body"] == replacement


async def test_sync_fault_fails_closed_with_503(event_gateway, recorder):
    gw = await _sync_gateway(event_gateway, recorder, [kit_plugin([(RECEIVED, "sync")], trap=True)])
    response = await gw.client.post("/orders", content=_event(), headers=CE)
    assert response.status_code == 503
    assert response.json()["errors"][0]["message"]
    assert recorder.received["fn"] == []


async def test_invoking_rejection_blocks_sync_call_and_drops_async_delivery(event_gateway, recorder):
    blocker = kit_plugin([(INVOKING, "sync")], {"error": "function frozen", "status": 409}, only_type="order.placed")
    gw = await _sync_gateway(event_gateway, recorder, [blocker])
    response = await gw.client.post("/orders", content=_event(), headers=CE)
    assert response.status_code == 409 and response.json()["errors"][0]["message"] == "function frozen"
    await gw.function("later", recorder.target("later"))
    await gw.subscribe("async", "order.placed", "later", path="/queue")
    assert (await gw.client.post("/queue", content=_event(), headers=CE)).status_code == 202
    await gw.plane.settle(5)
    assert recorder.received["fn"] == [] and recorder.received["later"] == []
    assert gw.metric("eventgateway_events_dropped_total", space="default", type="order.placed") == 1


async def test_invoking_fault_and_rewrite(event_gateway, recorder):
    gw = await _sync_gateway(event_gateway, recorder, [kit_plugin([(INVOKING, "sync")], trap=True)])
    assert (await gw.client.post("/orders", content=_event(), headers=CE)).status_code == 503
    replacement = {"specversion": "1.0", "type": "order.placed", "source": "/plugin", "id": "r2", "data": {}}
    gw2 = await _sync_gateway(event_gateway, recorder, [kit_plugin([(INVOKING, "sync")], {"event": replacement})])
    assert (await gw2.client.post("/orders", content=_event(), headers=CE)).status_code == 200
    assert recorder.received["fn"][-1]["body"] == replacement


async def test_invoked_reaches_sync_plugins_which_can_block_the_answer(event_gateway, recorder):
    gw = await _sync_gateway(event_gateway, recorder,
                             [kit_plugin([(INVOKED, "sync")], {"error": "result withheld", "status": 502})])
    response = await gw.client.post("/orders", content=_event(), headers=CE)
    assert response.status_code == 502 and response.json()["errors"][0]["message"] == "result withheld"
    assert len(recorder.received["fn"]) == 1  # the function ran; the plugin saw function.invoked


async def test_invocation_failed_reaches_plugins_but_cannot_change_the_outcome(event_gateway, recorder):
    gw = await _sync_gateway(event_gateway, recorder,
                             [kit_plugin([(FAILED, "sync")], {"error": "ignored", "status": 418})])
    recorder.answer("fn", {"x": 1}, status=500)
    response = await gw.client.post("/orders", content=_event(), headers=CE)
    assert response.status_code == 500
    samples = [sample for family in gw.metrics.registry.collect() if family.name == "eventgateway_plugin_reactions"
               for sample in family.samples
               if sample.name.endswith("_total") and sample.labels.get("event_type") == FAILED]
    assert sum(sample.value for sample in samples) == 1.0  # the plugin did see function.invocationFailed


async def test_invoked_fault_fails_closed_after_the_function_ran(event_gateway, recorder):
    gw = await _sync_gateway(event_gateway, recorder, [kit_plugin([(INVOKED, "sync")], trap=True)])
    response = await gw.client.post("/orders", content=_event(), headers=CE)
    assert response.status_code == 503
    assert "failure policy is closed" in response.json()["errors"][0]["message"]
    assert len(recorder.received["fn"]) == 1


async def test_invocation_failed_fault_cannot_change_the_outcome(event_gateway, recorder):
    gw = await _sync_gateway(event_gateway, recorder, [kit_plugin([(FAILED, "sync")], trap=True)])
    recorder.answer("fn", {"x": 1}, status=502)
    response = await gw.client.post("/orders", content=_event(), headers=CE)
    assert response.status_code == 500
    assert response.json() == {"errors": [{"message": "Function call failed. Please check logs."}]}


async def test_fail_open_faults_let_the_event_through_at_every_stage(gateway_server, function_server, tmp_path):
    """The same trapping plugin on every sync stage, under ``policy = "open"``: the event is delivered and
    answered as if the plugin were not there; under the default policy it is refused with 503."""
    trap = tmp_path / "trap.wasm"
    trap.write_bytes(kit_plugin([(RECEIVED, "sync"), (INVOKING, "sync"), (INVOKED, "sync")], trap=True))
    config = tmp_path / "plugins.toml"
    config.write_text(f'[plugins.trap]\npath = "{trap}"\npolicy = "open"\n')
    function_server.respond(200, {"statusCode": 201, "body": "delivered"})
    for plugins_config, expected in ((str(config), (201, "delivered")), (None, (503, None))):
        gw = await gateway_server(plugins_config=plugins_config, plugins=[] if plugins_config else [trap])
        async with httpx.AsyncClient(base_url=gw.config_url + "/v1/spaces/default") as api:
            for url, body in (("/functions", {"functionId": "fn", "type": "http",
                                              "provider": {"url": function_server.url}}),
                              ("/eventtypes", {"name": "order.placed"}),
                              ("/subscriptions", {"type": "sync", "eventType": "order.placed", "functionId": "fn",
                                                  "path": "/orders"})):
                assert (await api.post(url, json=body)).status_code == 201
        async with httpx.AsyncClient(base_url=gw.events_url) as events:
            answer = await events.post("/orders", content=_event(), headers=CE)
        assert answer.status_code == expected[0], answer.text
        if expected[1] is not None:
            assert answer.text == expected[1]
        await gw.stop()
    assert len(function_server.requests) == 1


async def test_an_event_refused_by_a_full_queue_is_not_a_failed_invocation(event_gateway, recorder):
    """A full delivery queue answers 503 (issue 14): the event was never accepted, so nothing is
    given up and no plugin sees function.invocationFailed for it (before issue 14 a full backlog dropped
    accepted events and emitted it)."""
    gw = await event_gateway(plugins=[kit_plugin([(FAILED, "sync")])], workers=1, max_events=1)
    await gw.function("slow", recorder.target("slow"))
    await gw.subscribe("async", "order.placed", "slow", path="/q")
    recorder.delays["slow"] = 0.5
    statuses = [(await gw.client.post("/q", content=_event(n=n), headers=CE)).status_code for n in range(3)]
    assert statuses == [202, 503, 503]
    assert await gw.plane.settle(10)
    assert len(recorder.received["slow"]) == 1
    seen = sum(sample.value for family in gw.metrics.registry.collect()
               if family.name == "eventgateway_plugin_reactions" for sample in family.samples
               if sample.name.endswith("_total") and sample.labels.get("event_type") == FAILED)
    assert seen == 0
    assert gw.metric("eventgateway_events_dropped_total", space="default", type="order.placed") == 0
