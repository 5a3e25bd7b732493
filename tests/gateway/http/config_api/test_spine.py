"""The spine end to end: a real gateway started by the shared fixture, a real function server, httpx."""

from __future__ import annotations

import httpx


async def test_function_created_through_config_api_receives_sync_events(gateway_server, function_server) -> None:
    gw = await gateway_server()
    function_server.respond(200, {"statusCode": 201, "headers": {"content-type": "application/json"},
                                  "body": '{"hello": "world"}'})
    async with httpx.AsyncClient(base_url=gw.config_url) as config:
        assert (await config.get("/v1/status")).status_code == 200
        created = await config.post("/v1/spaces/default/functions", json={
            "functionId": "echo", "type": "http", "provider": {"url": function_server.url + "/fn"}})
        assert created.status_code == 201, created.text
        assert (await config.post("/v1/spaces/default/eventtypes", json={"name": "http.request"})).status_code == 201
        sub = await config.post("/v1/spaces/default/subscriptions", json={
            "type": "sync", "eventType": "http.request", "functionId": "echo", "path": "/hello", "method": "GET"})
        assert sub.status_code == 201, sub.text
    async with httpx.AsyncClient(base_url=gw.events_url) as events:
        answer = await events.get("/hello")
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"hello": "world"}
    (received,) = await function_server.wait_for_requests(1)
    assert received.path == "/fn"
    assert received.json["eventType"] == "http.request"  # wrapped requests are CloudEvents 0.1, as upstream
