"""Parsing and validation as the upstream gateway 0.9.1 did it (``event/event.go`` ``FromRequest`` and
``event/event_test.go``), through a real gateway (Hypercorn) and a real function server:

- legacy mode: an ``Event`` header request whose JSON body is not a valid CloudEvent is wrapped;
- an ``application/json`` body that looks like a CloudEvent but does not validate is an ``http.request``;
- a CloudEvent's ``source`` must be a URI (0.1: upstream's ``uri`` validator; 1.0: a URI-reference);
- ``http.request`` events carry ``Host`` in ``data.host`` only, not in ``data.headers``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gateway.events.parse import TRANSFORMATION_SOURCE

_BASE = "/v1/spaces/default"
_STRUCTURED = {"content-type": "application/cloudevents+json"}


async def _configure(config: httpx.AsyncClient, function_url: str) -> None:
    assert (await config.post(f"{_BASE}/functions", json={
        "functionId": "fn", "type": "http", "provider": {"url": function_url}})).status_code == 201
    for name in ("user.created", "http.request"):
        assert (await config.post(f"{_BASE}/eventtypes", json={"name": name})).status_code == 201
    for event_type, path in (("user.created", "/"), ("http.request", "/"), ("http.request", "/hook")):
        assert (await config.post(f"{_BASE}/subscriptions", json={
            "type": "async", "eventType": event_type, "functionId": "fn", "path": path})).status_code == 201


@pytest.fixture
async def gateway(gateway_server, function_server):
    running = await gateway_server()
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        await _configure(config, function_server.url + "/fn")
        yield events


async def _received(function_server, count: int) -> list[dict[str, Any]]:
    return [request.json for request in await function_server.wait_for_requests(count)]


# -- legacy mode (event_test.go "invalid CloudEvent in legacy mode") --------------------------------------


@pytest.mark.parametrize("body", [
    {"eventType": "user.created", "foo": 1},
    {"eventType": "user.created"},  # upstream's own test case
    {"eventType": "user.created", "cloudEventsVersion": "0.1", "source": "NOT URI", "eventID": "1"},
    {"eventType": "user.created", "cloudEventsVersion": "0.1", "eventID": "1"},  # no source
])
async def test_legacy_mode_json_that_is_not_a_valid_cloudevent_is_wrapped(gateway, function_server, body) -> None:
    response = await gateway.post("/", content=json.dumps(body),
                                  headers={"content-type": "application/json", "Event": "user.created"})
    assert response.status_code == 202, response.text
    [event] = await _received(function_server, 1)
    assert event["eventType"] == "user.created" and event["cloudEventsVersion"] == "0.1"
    assert event["source"] == TRANSFORMATION_SOURCE
    assert event["contentType"] == "application/json"
    assert event["data"] == body
    assert event["extensions"]["eventgateway"] == {"transformed": "true", "transformation-version": "0.1"}


async def test_legacy_mode_valid_cloudevent_stays_that_event(gateway, function_server) -> None:
    body = {"eventType": "user.created", "cloudEventsVersion": "0.1", "source": "http://example.com",
            "eventID": "6f6ada3b-0aa2-4b3c-989a-91ffc6405f11", "contentType": "text/plain", "data": "test"}
    response = await gateway.post("/", content=json.dumps(body),
                                  headers={"content-type": "application/json", "Event": "user.created"})
    assert response.status_code == 202, response.text
    [event] = await _received(function_server, 1)
    assert event == body


# -- application/json bodies that look like CloudEvents --------------------------------------------------


@pytest.mark.parametrize("body", [
    {"eventType": "user.created", "cloudEventsVersion": "0.1", "source": "/s", "data": {"a": 1}},  # no eventID
    {"specversion": "1.0", "type": "user.created", "source": "/s"},  # no id
    {"cloudEventsVersion": "0.1", "eventType": "user.created", "source": "NOT URI", "eventID": "1"},
])
async def test_invalid_cloudevent_in_application_json_is_an_http_request(gateway, function_server, body) -> None:
    response = await gateway.post("/hook?x=1", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 202, response.text
    [event] = await _received(function_server, 1)
    assert event["eventType"] == "http.request"
    assert event["data"]["body"] == body
    assert event["data"]["path"] == "/hook" and event["data"]["query"] == {"x": ["1"]}


async def test_valid_cloudevent_in_application_json_stays_a_cloudevent(gateway, function_server) -> None:
    body = {"specversion": "1.0", "type": "user.created", "source": "/s", "id": "1", "data": {"a": 1}}
    assert (await gateway.post("/", content=json.dumps(body),
                               headers={"content-type": "application/json"})).status_code == 202
    [event] = await _received(function_server, 1)
    assert event["type"] == "user.created" and event["data"] == {"a": 1}


# -- source must be a URI ---------------------------------------------------------------------------------


def _v01(source: str) -> dict[str, str]:
    return {"eventType": "user.created", "cloudEventsVersion": "0.1", "source": source, "eventID": "1"}


def _v10(source: str) -> dict[str, str]:
    return {"specversion": "1.0", "type": "user.created", "source": source, "id": "1"}


@pytest.mark.parametrize(("headers", "body"), [
    (_STRUCTURED, _v01("NOT URI")),
    (_STRUCTURED, _v01("relative/path")),  # upstream's validator wanted an absolute URI or path
    (_STRUCTURED, _v01("http://bad host/")),
    (_STRUCTURED, _v10("NOT URI")),
    (_STRUCTURED, _v10("1nvalid-scheme:x")),
    (_STRUCTURED, _v10("/bad%zzescape")),
    ({"CE-EventType": "user.created", "CE-CloudEventsVersion": "0.1", "CE-Source": "NOT URI", "CE-EventID": "1",
      "content-type": "text/plain"}, "hey there"),  # event_test.go "error if invalid CloudEvent in binary mode"
    ({"ce-specversion": "1.0", "ce-type": "user.created", "ce-source": "NOT%20URI", "ce-id": "1",
      "content-type": "text/plain"}, "hey there"),
    ({"ce-specversion": "1.0", "ce-type": "user.created", "ce-source": "NOT URI", "ce-id": "1"}, ""),
])
async def test_source_that_is_not_a_uri_is_refused(gateway, function_server, headers, body) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    response = await gateway.post("/", content=content, headers=headers)
    assert response.status_code == 400, response.text
    assert "'source'" in response.json()["errors"][0]["message"]
    assert function_server.requests == []


@pytest.mark.parametrize(("headers", "body"), [
    (_STRUCTURED, _v01("http://example.com")),
    (_STRUCTURED, _v01("/absolute/path")),
    (_STRUCTURED, _v01("urn:event:1")),
    (_STRUCTURED, _v10("relative/ref")),  # a URI-reference may be relative in 1.0
    (_STRUCTURED, _v10("https://example.com/a?b=c#d")),
    ({"CE-EventType": "user.created", "CE-CloudEventsVersion": "0.1", "CE-Source": "https://example.com",
      "CE-EventID": "1", "content-type": "text/plain"}, "hey there"),
    ({"ce-specversion": "1.0", "ce-type": "user.created", "ce-source": "/caf%C3%A9", "ce-id": "1",
      "content-type": "text/plain"}, "hey there"),
])
async def test_uri_sources_are_accepted(gateway, function_server, headers, body) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    response = await gateway.post("/", content=content, headers=headers)
    assert response.status_code == 202, response.text
    await _received(function_server, 1)


# -- http.request: Host in data.host only ------------------------------------------------------------------


async def test_http_request_headers_leave_host_to_data_host(gateway, function_server) -> None:
    response = await gateway.post("/hook", content=b'{"k": "v"}',
                                  headers={"content-type": "application/json", "X-Thing": "1", "Host": "example.org"})
    assert response.status_code == 202
    [event] = await _received(function_server, 1)
    assert event["eventType"] == "http.request"
    assert event["data"]["host"] == "example.org"
    assert "Host" not in event["data"]["headers"] and "host" not in event["data"]["headers"]
    assert event["data"]["headers"]["X-Thing"] == "1"
    assert event["data"]["headers"]["Content-Type"] == "application/json"


# -- 0.1 keys in any case, as Go's encoding/json read them ---------------------------------------------------


async def test_structured_v01_keys_match_in_any_case(gateway, function_server) -> None:
    # router_test.go "include authorizer result in custom event extensions" sends "eventId"
    body = {"eventId": "test", "EventType": "user.created", "eventTypeVersion": "0.1", "CLOUDEVENTSVERSION": "0.1",
            "Source": "/", "Data": {"a": 1}, "other": "kept"}
    response = await gateway.post("/", content=json.dumps(body), headers=_STRUCTURED)
    assert response.status_code == 202, response.text
    [event] = await _received(function_server, 1)
    assert event == {"eventID": "test", "eventType": "user.created", "eventTypeVersion": "0.1",
                     "cloudEventsVersion": "0.1", "source": "/", "data": {"a": 1}, "other": "kept"}


async def test_structured_v01_later_spelling_of_a_key_wins(gateway, function_server) -> None:
    content = ('{"eventType": "user.created", "cloudEventsVersion": "0.1", "source": "/", '
               '"eventID": "first", "eventId": "second"}')
    assert (await gateway.post("/", content=content, headers=_STRUCTURED)).status_code == 202
    [event] = await _received(function_server, 1)
    assert event["eventID"] == "second" and "eventId" not in event


async def test_legacy_mode_cloudevent_keys_match_in_any_case(gateway, function_server) -> None:
    body = {"eventtype": "user.created", "cloudeventsversion": "0.1", "source": "http://example.com", "eventId": "1",
            "data": "test"}
    response = await gateway.post("/", content=json.dumps(body),
                                  headers={"content-type": "application/json", "Event": "user.created"})
    assert response.status_code == 202, response.text
    [event] = await _received(function_server, 1)
    assert event == {"eventType": "user.created", "cloudEventsVersion": "0.1", "source": "http://example.com",
                     "eventID": "1", "data": "test"}


async def test_v10_attribute_names_stay_case_sensitive(gateway, function_server) -> None:
    body = {"specversion": "1.0", "Type": "user.created", "source": "/s", "id": "1"}
    response = await gateway.post("/", content=json.dumps(body), headers=_STRUCTURED)
    assert response.status_code == 400, response.text
    assert function_server.requests == []
