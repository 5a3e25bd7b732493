"""Upstream's ``router/router_test.go`` (0.9.1) sync-subscriber cases, through a real gateway (Hypercorn) and a
real function server: the HTTP response object's fields are optional as Go's ``json.Unmarshal`` into
``HTTPResponse{StatusCode: 200}`` made them, and a body that is not one is a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

_BASE = "/v1/spaces/default"


@pytest.fixture
async def events(gateway_server, function_server) -> Any:
    running = await gateway_server()
    async with httpx.AsyncClient(base_url=running.config_url) as config:
        assert (await config.post(f"{_BASE}/functions", json={
            "functionId": "test", "type": "http", "provider": {"url": function_server.url + "/fn"}})).status_code == 201
        assert (await config.post(f"{_BASE}/eventtypes", json={"name": "http.request"})).status_code == 201
        assert (await config.post(f"{_BASE}/subscriptions", json={
            "type": "sync", "eventType": "http.request", "functionId": "test", "path": "/"})).status_code == 201
    async with httpx.AsyncClient(base_url=running.events_url) as client:
        yield client


async def test_call_sync_subscriber_answering_an_empty_object_is_200(events, function_server) -> None:
    function_server.respond(200, {})  # "call sync subscriber"
    answer = await events.post("/")
    assert (answer.status_code, answer.content) == (200, b"")
    assert len(function_server.requests) == 1


async def test_status_code_and_headers_from_the_response_object_without_a_body(events, function_server) -> None:
    # "status code and headers based on HTTP response object"
    function_server.respond(200, {"statusCode": 206, "headers": {"x-custom": "custom value"}})
    answer = await events.post("/")
    assert answer.status_code == 206
    assert answer.headers["x-custom"] == "custom value"
    assert answer.content == b""


async def test_a_response_that_is_not_a_response_object_is_500(events, function_server) -> None:
    function_server.respond(200, "not JSON")  # "status Internal Server Error if HTTP response object malformed"
    answer = await events.post("/")
    assert answer.status_code == 500
    assert answer.content == b'{"errors":[{"message":"HTTP response object malformed"}]}\n'
