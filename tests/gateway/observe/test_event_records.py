"""The per-event records the live tail publishes (issue 15), filled by the hooks in the event path: a real
gateway (both APIs on Hypercorn, in the test's loop), real WAT plugins, a real http function; the records are
read from the gateway's own tail hub, as ``GET /v1/events/tail`` reads them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.wat import kit_plugin

RECEIVED = "eventgateway.event.received"
INVOKING = "eventgateway.function.invoking"
CE = {"content-type": "application/cloudevents+json"}


async def _next(subscription: Any, timeout: float = 5.0) -> dict[str, Any]:
    line = await subscription.get(timeout)
    assert line is not None, "no record within the time"
    return json.loads(line)


def _stage(record: dict[str, Any], name: str) -> dict[str, Any]:
    found = [s for s in record["stages"] if s["name"] == name]
    assert len(found) == 1, (name, record["stages"])
    return found[0]


async def test_each_event_is_one_record_with_its_stages_verdicts_and_calls(
        gateway_server, function_server, tmp_path: Path) -> None:
    guard = tmp_path / "guard.wasm"
    guard.write_bytes(kit_plugin([(RECEIVED, "sync"), (INVOKING, "sync")], {"error": "denied here", "status": 451},
                                 only_type="deny.me"))
    trapper = tmp_path / "trapper.wasm"
    trapper.write_bytes(kit_plugin([(RECEIVED, "sync")], trap=True, only_type="boom"))
    gw = await gateway_server(plugins=[guard, trapper], queue="memory")
    function_server.respond(200, {"statusCode": 200, "body": "done"})
    async with httpx.AsyncClient(base_url=gw.config_url, timeout=10) as config:
        base = "/v1/spaces/default"
        for path, body in ((f"{base}/functions", {"functionId": "fn", "type": "http",
                                                  "provider": {"url": function_server.url + "/fn"}}),
                           (f"{base}/functions", {"functionId": "later", "type": "http",
                                                  "provider": {"url": function_server.url + "/later"}}),
                           *((f"{base}/eventtypes", {"name": name}) for name in ("order.placed", "deny.me", "boom",
                                                                                 "order.queued")),
                           (f"{base}/subscriptions", {"type": "sync", "eventType": "order.placed",
                                                      "functionId": "fn", "path": "/orders"}),
                           (f"{base}/subscriptions", {"type": "async", "eventType": "order.queued",
                                                      "functionId": "later", "path": "/queue"}),
                           (f"{base}/subscriptions", {"type": "async", "eventType": "order.queued",
                                                      "functionId": "fn", "path": "/queue"})):
            assert (await config.post(path, json=body)).status_code == 201, body

    hub = gw.gateway.tail
    async with httpx.AsyncClient(base_url=gw.events_url, timeout=10) as events:
        # Nobody listens: nothing is built or published.
        ok = {"specversion": "1.0", "type": "order.placed", "source": "/shop", "id": "o-0"}
        assert (await events.post("/orders", content=json.dumps(ok), headers=CE)).status_code == 200
        assert hub.published == 0

        async with hub.subscribe() as tail:
            assert (await events.post("/orders", content=json.dumps({**ok, "id": "o-1"}), headers=CE)).status_code == 200
            record = await _next(tail)
            assert (record["id"], record["type"], record["space"], record["source"]) == (
                "o-1", "order.placed", "default", "/shop")
            assert record["kind"] == "request" and record["status"] == 200 and record["error"] is False
            assert record["traceId"] is None  # tracing is off
            assert [s["name"] for s in record["stages"]] == [RECEIVED, "eventgateway.routing", INVOKING]
            received = _stage(record, RECEIVED)
            assert [(p["plugin"], p["mode"], p["verdict"]) for p in received["plugins"]] == [
                ("guard", "sync", "continue"), ("trapper", "sync", "continue")]
            assert all(p["fuel"] > 0 and p["durationMs"] >= 0 for p in received["plugins"])
            assert _stage(record, "eventgateway.routing")["note"] == "1 sync, 0 async subscribers"
            [call] = record["calls"]
            assert (call["functionId"], call["provider"], call["mode"], call["ok"], call["status"], call["attempt"]) \
                == ("fn", "http", "sync", True, 200, 1)
            assert call["durationMs"] > 0 and record["durationMs"] >= call["durationMs"]

            # A rejection: the plugin, its status and message; no call.
            denied = {**ok, "type": "deny.me", "id": "d-1"}
            assert (await events.post("/orders", content=json.dumps(denied), headers=CE)).status_code == 451
            record = await _next(tail)
            assert record["status"] == 451 and record["error"] is True and record["calls"] == []
            [stage] = record["stages"]
            assert stage["plugins"][0] == {**stage["plugins"][0], "plugin": "guard", "verdict": "reject",
                                           "status": 451, "message": "denied here"}
            assert stage["note"] == "rejected by guard: 451 denied here"

            # A fault: its kind; the plugin's closed failure policy answered 503.
            boom = {**ok, "type": "boom", "id": "b-1"}
            assert (await events.post("/orders", content=json.dumps(boom), headers=CE)).status_code == 503
            record = await _next(tail)
            verdicts = record["stages"][0]["plugins"]
            assert [p["verdict"] for p in verdicts] == ["continue", "fault"]
            assert verdicts[1]["faultKind"] == "trap" and verdicts[1]["status"] == 503 and verdicts[1]["message"]

            # Not an event: 400, with the reason in a "parse" stage.
            assert (await events.post("/orders", content=b'{"specversion":"1.0"}', headers=CE)).status_code == 400
            record = await _next(tail)
            assert record["status"] == 400 and record["stages"][0]["name"] == "parse"
            assert record["stages"][0]["note"]

            # An async event: its request (202, two async subscribers), then one delivery record per function.
            queued = {**ok, "type": "order.queued", "id": "q-1"}
            assert (await events.post("/queue", content=json.dumps(queued), headers=CE)).status_code == 202
            records = [await _next(tail) for _ in range(3)]
            request = next(r for r in records if r["kind"] == "request")
            assert request["status"] == 202 and request["calls"] == []
            assert _stage(request, "eventgateway.routing")["note"] == "0 sync, 2 async subscribers"
            deliveries = sorted((r for r in records if r["kind"] == "delivery"), key=lambda r: r["calls"][0]["functionId"])
            assert [(r["id"], r["status"], r["calls"][0]["functionId"], r["calls"][0]["mode"], r["calls"][0]["status"])
                    for r in deliveries] == [("q-1", 200, "fn", "async", 200), ("q-1", 200, "later", "async", 200)]

            # A batch: one record per event, each with the batch's answer.
            batch = [{**queued, "id": "b1"}, {**queued, "id": "b2"}]
            answer = await events.post("/queue", content=json.dumps(batch),
                                       headers={"content-type": "application/cloudevents-batch+json"})
            assert answer.status_code == 202
            records = [await _next(tail) for _ in range(6)]  # 2 requests, 4 deliveries
            assert sorted(r["id"] for r in records if r["kind"] == "request") == ["b1", "b2"]
            assert all(r["status"] == 202 for r in records if r["kind"] == "request")
            assert sorted(r["id"] for r in records if r["kind"] == "delivery") == ["b1", "b1", "b2", "b2"]

        # The listener left: back to building nothing.
        published = hub.published
        assert (await events.post("/orders", content=json.dumps(ok), headers=CE)).status_code == 200
        assert hub.published == published


async def test_a_quarantined_plugin_shows_as_skipped_in_the_record(gateway_server, tmp_path: Path) -> None:
    """A plugin that traps is quarantined after its first fault (fail-open, a long backoff); the next event's
    record shows its reaction as ``skipped`` with the fault kind ``quarantined``, and the event passes."""
    trapper = tmp_path / "trapper.wasm"
    trapper.write_bytes(kit_plugin([(RECEIVED, "sync")], trap=True, only_type="boom"))
    gw = await gateway_server()
    settings = {"policy": "open", "limits": {"quarantine_after": 1, "quarantine_backoff": 600}}
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(f"{gw.config_url}/v1/plugins",
                                   params={"name": "trapper", "settings": json.dumps(settings)},
                                   content=trapper.read_bytes(), headers={"Content-Type": "application/wasm"})
        assert answer.status_code == 201, answer.text
        for name in ("boom", "fine"):
            answer = await client.post(f"{gw.config_url}/v1/spaces/default/eventtypes", json={"name": name})
            assert answer.status_code == 201, answer.text

    hub = gw.gateway.tail
    async with hub.subscribe() as tail, httpx.AsyncClient(base_url=gw.events_url, timeout=10) as events:
        boom = {"specversion": "1.0", "type": "boom", "source": "/s", "id": "b-1"}
        assert (await events.post("/", content=json.dumps(boom), headers=CE)).status_code == 202  # fail-open
        record = await _next(tail)
        [verdict] = _stage(record, RECEIVED)["plugins"]
        assert (verdict["plugin"], verdict["verdict"], verdict["faultKind"]) == ("trapper", "fault", "trap")
        async with httpx.AsyncClient(timeout=10) as client:
            listed = (await client.get(f"{gw.config_url}/v1/plugins")).json()["plugins"]
        assert [(p["name"], p["state"]) for p in listed] == [("trapper", "quarantined")]

        fine = {**boom, "type": "fine", "id": "f-1"}
        assert (await events.post("/", content=json.dumps(fine), headers=CE)).status_code == 202
        record = await _next(tail)
        assert record["id"] == "f-1" and record["status"] == 202
        [verdict] = _stage(record, RECEIVED)["plugins"]
        assert (verdict["plugin"], verdict["mode"], verdict["verdict"], verdict["faultKind"]) == (
            "trapper", "sync", "skipped", "quarantined")
        assert "fuel" not in verdict  # it did not run
