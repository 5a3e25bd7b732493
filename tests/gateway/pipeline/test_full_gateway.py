"""The event plane inside the whole gateway: configuration written through the Config API (as clients
do), events sent to the Events API, both served by the runtime's own servers (tests/gateway_fixtures)."""

from __future__ import annotations

import json

import httpx
from tests.wat import kit_plugin


async def _configure(config: httpx.AsyncClient, function_url: str) -> None:
    base = "/v1/spaces/default"
    assert (await config.post(f"{base}/functions", json={
        "functionId": "fn", "type": "http", "provider": {"url": function_url, "timeout": 2}})).status_code == 201
    assert (await config.post(f"{base}/eventtypes", json={"name": "user.created"})).status_code == 201
    assert (await config.post(f"{base}/eventtypes", json={"name": "http.request"})).status_code == 201
    assert (await config.post(f"{base}/subscriptions", json={
        "type": "sync", "eventType": "http.request", "functionId": "fn", "path": "/users/:id",
        "method": "GET"})).status_code == 201
    assert (await config.post(f"{base}/subscriptions", json={
        "type": "async", "eventType": "user.created", "functionId": "fn", "path": "/"})).status_code == 201


async def test_config_api_writes_route_events_at_once(gateway_server, function_server) -> None:
    running = await gateway_server()
    function_server.respond(200, {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": "hello"})
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        await _configure(config, function_server.url + "/fn")
        response = await events.get("/users/7")
        assert response.status_code == 200 and response.text == "hello"
        event = {"specversion": "1.0", "type": "user.created", "source": "/t", "id": "u-1", "data": {"id": 7}}
        accepted = await events.post("/", content=json.dumps(event),
                                     headers={"content-type": "application/cloudevents+json"})
        assert accepted.status_code == 202
        requests = await function_server.wait_for_requests(2)
        assert requests[0].json["data"]["params"] == {"id": "7"}
        assert requests[1].json == event
        metrics = (await config.get("/v1/metrics")).text
        assert 'eventgateway_events_received_total{space="default",type="user.created"} 1.0' in metrics


async def test_plugin_loaded_by_flag_rejects_on_the_events_api(gateway_server, function_server, tmp_path) -> None:
    guard = tmp_path / "guard.wasm"
    guard.write_bytes(kit_plugin([("eventgateway.event.received", "sync")], {"error": "closed", "status": 423},
                             only_type="user.created"))
    running = await gateway_server(plugins=[guard])
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        await _configure(config, function_server.url + "/fn")
        event = {"specversion": "1.0", "type": "user.created", "source": "/t", "id": "u-2", "data": {}}
        refused = await events.post("/", content=json.dumps(event),
                                    headers={"content-type": "application/cloudevents+json"})
        assert refused.status_code == 423 and refused.json() == {"errors": [{"message": "closed"}]}
        assert (await events.get("/users/1")).status_code == 200  # other types pass
        assert len(function_server.requests) == 1


async def test_a_function_changed_through_the_config_api_is_called_at_its_new_url(
        gateway_server, function_server_factory) -> None:
    """Providers are cached per function document: the document a PUT stores must get its own provider."""
    old, new = await function_server_factory(), await function_server_factory()
    old.respond(200, {"statusCode": 200, "body": "old"})
    new.respond(200, {"statusCode": 200, "body": "new"})
    running = await gateway_server()
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        await _configure(config, old.url + "/fn")
        assert (await events.get("/users/1")).text == "old"
        changed = await config.put("/v1/spaces/default/functions/fn", json={
            "type": "http", "provider": {"url": new.url + "/fn", "timeout": 2}})
        assert changed.status_code == 200
        assert (await events.get("/users/2")).text == "new"
        assert (await events.get("/users/3")).text == "new"
        assert len(old.requests) == 1 and [r.path for r in new.requests] == ["/fn", "/fn"]
