"""Issue 12, "Config API documents as upstream wrote them": through a real gateway (Hypercorn, real HTTP).

- ``metadata`` is left out of a document when empty (Go ``omitempty``), on all four resources;
- subscription and CORS ids escape the path as Go's ``url.PathEscape`` (``,`` and ``;`` too), and ids
  stored under the old rule are re-keyed when the gateway starts, old-form ids still answering;
- every error message upstream had is worded as upstream's (``libkv``, ``function/errors.go``,
  ``event/errors.go``, ``subscription/errors.go``, ``subscription/cors/errors.go``, ``pathtree``);
- error bodies of both APIs are what Go's ``json.Encoder`` wrote: compact JSON and a newline;
- a body is read as Go's ``json.Decoder.Decode`` read it: the first JSON value (what follows is ignored),
  ``EOF`` for an empty body and ``unexpected EOF`` for a truncated one (``httpapi_test.go`` "malformed JSON").
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config.ids import cors_id, subscription_id
from gateway.store import open_store
from gateway.store.base import Kind

from .conftest import assert_error, http_function

ASYNC = {"type": "async", "eventType": "user.created", "functionId": "f1"}


@pytest.fixture
async def ready(api: httpx.AsyncClient) -> httpx.AsyncClient:
    assert (await api.post("/functions", json=http_function())).status_code == 201
    assert (await api.post("/functions", json=http_function("f2"))).status_code == 201
    assert (await api.post("/eventtypes", json={"name": "user.created"})).status_code == 201
    return api


# -- metadata omitempty ------------------------------------------------------------------------


async def test_empty_metadata_is_left_out_of_all_four_resources(ready: httpx.AsyncClient) -> None:
    subscription = await ready.post("/subscriptions", json=ASYNC)
    cors = await ready.post("/cors", json={"method": "GET", "path": "/u", "metadata": {}})
    assert subscription.status_code == 201 and cors.status_code == 201
    documents = [(await ready.get("/functions/f1")).json(), (await ready.get("/eventtypes/user.created")).json(),
                 subscription.json(), cors.json(),
                 (await ready.get(f"/subscriptions/{subscription.json()['subscriptionId']}")).json(),
                 (await ready.get("/cors/GET%2Fu")).json()]
    for key in ("functions", "eventTypes", "subscriptions", "cors"):
        documents += (await ready.get("/" + key.lower())).json()[key]
    for document in documents:
        assert "metadata" not in document, document
    # Set metadata is shown, as upstream.
    tagged = await ready.put("/eventtypes/user.created", json={"metadata": {"team": "a"}})
    assert tagged.json()["metadata"] == {"team": "a"}


# -- ids as Go's url.PathEscape ------------------------------------------------------------------


async def test_subscription_and_cors_ids_escape_comma_and_semicolon(ready: httpx.AsyncClient) -> None:
    created = await ready.post("/subscriptions", json={**ASYNC, "path": "/a,b;c"})
    assert created.status_code == 201, created.text
    sid = created.json()["subscriptionId"]
    raw = base64.urlsafe_b64decode(sid + "=" * (-len(sid) % 4)).decode()
    assert raw == "async,user.created,f1,%2Fa%2Cb%3Bc,POST"
    assert (await ready.get(f"/subscriptions/{sid}")).status_code == 200

    cors = await ready.post("/cors", json={"method": "GET", "path": "/a,b;c"})
    assert cors.status_code == 201 and cors.json()["corsId"] == "GET%2Fa%2Cb%3Bc"
    assert (await ready.get("/cors/GET%2Fa%2Cb%3Bc")).json()["corsId"] == "GET%2Fa%2Cb%3Bc"
    # Creating either again is a 409 with upstream's wording and the new id.
    again = await ready.post("/cors", json={"method": "GET", "path": "/a,b;c"})
    assert_error(again, 409, 'CORS configuration "GET%2Fa%2Cb%3Bc" already exists.')
    again = await ready.post("/subscriptions", json={**ASYNC, "path": "/a,b;c"})
    assert_error(again, 409, f'Subscription "{sid}" already exists.')


async def test_ids_stored_under_the_old_rule_are_rekeyed_and_old_ids_keep_working(
        gateway_server: Callable[..., Any], tmp_path: Path) -> None:
    db = f"sqlite:{tmp_path / 'old.db'}"
    old_sid = subscription_id("async", "user.created", "f1", "/a,b;c", "POST", legacy=True)
    new_sid = subscription_id("async", "user.created", "f1", "/a,b;c", "POST")
    old_cid, new_cid = cors_id("GET", "/x;y", legacy=True), cors_id("GET", "/x;y")
    assert old_sid != new_sid and old_cid == "GET%2Fx;y" and new_cid == "GET%2Fx%3By"
    store = open_store(db)
    await store.open()
    await store.create(Kind.FUNCTIONS, "default", "f1",
                       {"space": "default", "functionId": "f1", "type": "http",
                        "provider": {"url": "http://127.0.0.1:9/fn"}})
    await store.create(Kind.EVENT_TYPES, "default", "user.created", {"space": "default", "name": "user.created"})
    await store.create(Kind.SUBSCRIPTIONS, "default", old_sid,
                       {"space": "default", "subscriptionId": old_sid, "type": "async", "eventType": "user.created",
                        "functionId": "f1", "path": "/a,b;c", "method": "POST", "metadata": {"k": "v"}})
    await store.create(Kind.CORS, "default", old_cid,
                       {"space": "default", "corsId": old_cid, "method": "GET", "path": "/x;y",
                        "allowedOrigins": ["*"], "allowedMethods": ["GET"], "allowedHeaders": ["Origin"],
                        "allowCredentials": False})
    await store.close()

    gw = await gateway_server(db=db)
    async with httpx.AsyncClient(base_url=gw.config_url + "/v1/spaces/default", timeout=10) as api:
        listed = (await api.get("/subscriptions")).json()["subscriptions"]
        assert [s["subscriptionId"] for s in listed] == [new_sid]
        assert listed[0]["metadata"] == {"k": "v"}
        assert [c["corsId"] for c in (await api.get("/cors")).json()["cors"]] == [new_cid]
        # Both forms of the id reach the document.
        for sid in (old_sid, new_sid):
            got = await api.get(f"/subscriptions/{sid}")
            assert got.status_code == 200 and got.json()["subscriptionId"] == new_sid
        for cid in ("GET%2Fx;y", "GET%2Fx%3By"):
            got = await api.get(f"/cors/{cid}")
            assert got.status_code == 200 and got.json()["corsId"] == new_cid
        updated = await api.put(f"/subscriptions/{old_sid}",
                                json={**ASYNC, "path": "/a,b;c", "metadata": {"k": "w"}})
        assert updated.status_code == 200 and updated.json()["metadata"] == {"k": "w"}
        assert (await api.delete(f"/cors/{old_cid}")).status_code == 204
        assert (await api.get("/cors")).json() == {"cors": []}
    await gw.stop()
    # The store holds the new keys only.
    store = open_store(db)
    await store.open()
    assert [e.id for e in await store.list(Kind.SUBSCRIPTIONS)] == [new_sid]
    await store.close()


# -- upstream's error messages ----------------------------------------------------------------


async def test_not_found_and_already_exists_messages(ready: httpx.AsyncClient) -> None:
    assert_error(await ready.get("/functions/my.fn"), 404, 'Function "my.fn" not found.')
    assert_error(await ready.put("/functions/my.fn", json=http_function("my.fn")), 404,
                 'Function "my.fn" not found.')
    assert_error(await ready.delete("/functions/my.fn"), 404, 'Function "my.fn" not found.')
    assert_error(await ready.post("/functions", json=http_function()), 409, 'Function "f1" already registered.')
    assert_error(await ready.get("/eventtypes/nope"), 404, 'Event Type "nope" not found.')
    assert_error(await ready.post("/eventtypes", json={"name": "user.created"}), 409,
                 'Event Type "user.created" already exists.')
    assert_error(await ready.get("/subscriptions/nope"), 404, 'Subscription "nope" not found.')
    assert_error(await ready.get("/cors/GET%2Fnope"), 404, 'CORS configuration "GET%2Fnope" not found.')


async def test_reference_messages(ready: httpx.AsyncClient) -> None:
    message = assert_error(await ready.post("/subscriptions", json={**ASYNC, "eventType": "nope"}), 400)
    assert message == 'Event Type "nope" not found.'
    message = assert_error(await ready.post("/subscriptions", json={**ASYNC, "functionId": "nope"}), 400)
    assert message == 'Function "nope" not found.'
    message = assert_error(await ready.post("/eventtypes", json={"name": "e2", "authorizerId": "nope"}), 400)
    assert message == "Authorizer function doesn't exists."


async def test_in_use_messages(ready: httpx.AsyncClient) -> None:
    assert (await ready.post("/eventtypes", json={"name": "guarded", "authorizerId": "f2"})).status_code == 201
    message = assert_error(await ready.delete("/functions/f2"), 400)
    assert message == "Function f2 cannot be deleted because is used as an authorizer for guarded event type."
    sid = (await ready.post("/subscriptions", json=ASYNC)).json()["subscriptionId"]
    message = assert_error(await ready.delete("/functions/f1"), 400)
    assert message == "Function cannot be deleted because it's subscribed to a least one event."
    message = assert_error(await ready.delete("/eventtypes/user.created"), 400)
    assert message == "Event type cannot be deleted because there are subscriptions using it."
    for field, value, label in (("type", "sync", "Type"), ("eventType", "guarded", "EventType"),
                                ("functionId", "f2", "FunctionID"), ("path", "/q", "Path"),
                                ("method", "PUT", "Method")):
        message = assert_error(await ready.put(f"/subscriptions/{sid}", json={**ASYNC, field: value}), 400)
        assert message == f"Invalid update. '{label}' of existing subscription cannot be updated."
    assert (await ready.post("/cors", json={"method": "GET", "path": "/u"})).status_code == 201
    message = assert_error(await ready.put("/cors/GET%2Fu", json={"method": "GET", "path": "/v"}), 400)
    assert message == "Invalid update. 'Path' of existing CORS configuration cannot be updated."


@pytest.mark.parametrize(("existing", "new", "reason"), [
    ("/users/:id", "/users/:name", 'parameter with different name ("id") already defined: for route: /users/:name'),
    ("/users/:id", "/users/me", 'parameter with different name ("id") already defined: for route: /users/me'),
    ("/users/me", "/users/:id", "static route already defined for route: /users/:id"),
    ("/files/*rest", "/files/x", 'wildcard with different name ("rest") already defined: for route: /files/x'),
    ("/a", "/a/", None),
    ("/", "/", "route / conflicts with existing route"),
])
async def test_sync_path_conflicts_worded_as_upstream(ready: httpx.AsyncClient, existing: str, new: str,
                                                      reason: str | None) -> None:
    sync = {"type": "sync", "eventType": "user.created", "functionId": "f1"}
    assert (await ready.post("/subscriptions", json={**sync, "path": existing})).status_code == 201
    answer = await ready.post("/subscriptions", json={**sync, "functionId": "f2", "path": new})
    if reason is None:
        assert answer.status_code == 201, answer.text
    elif existing == new:  # the same sync subscription id: upstream's 409 comes first
        assert answer.status_code == 409
    else:
        assert assert_error(answer, 400) == f"Subscription path conflict: {reason}"


# -- error bodies as Go's json.Encoder wrote them ------------------------------------------------


async def test_error_bodies_are_compact_json_and_a_newline(gw: Any, ready: httpx.AsyncClient) -> None:
    answer = await ready.get("/functions/<a&b>")
    assert answer.status_code == 404
    assert answer.content == b'{"errors":[{"message":"Function \\"\\u003ca\\u0026b\\u003e\\" not found."}]}\n'
    assert answer.headers["content-type"] == "application/json"
    answer = await ready.post("/eventtypes", content=b"{")
    assert answer.status_code == 400 and answer.content.startswith(b'{"errors":[{"message":"Event Type doesn')
    assert answer.content.endswith(b'"}]}\n') and b": " not in answer.content[:30]
    async with httpx.AsyncClient(base_url=gw.events_url, timeout=10) as events:
        refused = await events.post("/", headers={"Space": "x"})  # too short a space name: 400
        assert refused.status_code == 400
        assert refused.content.startswith(b'{"errors":[{"message":"') and refused.content.endswith(b'"}]}\n')
        assert b'", "' not in refused.content and b'": "' not in refused.content
        refused = await events.post("/", content=b"{}", headers={"Content-Type": "application/cloudevents+json"})
        assert refused.status_code == 400
        assert refused.content.startswith(b'{"errors":[{"message":"') and refused.content.endswith(b'"}]}\n')


@pytest.mark.parametrize(("body", "message"), [
    ({"functionId": "f", "provider": {"url": "http://h/"}}, "provider configuration not set"),
    ({"functionId": "f", "type": "gcp", "provider": {}}, "provider gcp not supported"),
    ({"functionId": "f", "type": "http", "provider": {}}, "missing required fields for HTTP endpoint"),
    ({"functionId": "f", "type": "awslambda", "provider": {"region": "r"}}, "missing required fields for AWS Lambda function"),
    ({"functionId": "f", "type": "awssqs", "provider": {"queueUrl": "q"}}, "missing required fields for AWS SQS function"),
])
async def test_function_provider_messages(api: httpx.AsyncClient, body: dict[str, Any], message: str) -> None:
    assert assert_error(await api.post("/functions", json=body), 400) == \
        f"Function doesn't validate. Validation error: {message}"


async def test_invalid_cloudevent_message_has_upstreams_prefix(gw: Any) -> None:
    async with httpx.AsyncClient(base_url=gw.events_url, timeout=10) as events:
        for body in (b'{"cloudEventsVersion":"0.1","eventType":"a.b","source":"/s"}',  # no eventID
                     b'{"specversion":"1.0","type":"a.b","source":"/s"}'):  # no id
            refused = await events.post("/", content=body, headers={"Content-Type": "application/cloudevents+json"})
            assert refused.status_code == 400
            assert refused.json()["errors"][0]["message"].startswith("CloudEvent doesn't validate: ")
        refused = await events.post("/", headers={"CE-EventType": "a.b", "CE-CloudEventsVersion": "0.1",
                                                  "CE-Source": "NOT URI", "CE-EventID": "1"})
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["message"].startswith("CloudEvent doesn't validate: ")


# -- bodies read as Go's json.Decoder.Decode (httpapi_test.go "malformed JSON", "invalid JSON") ------------


@pytest.mark.parametrize(("method", "path", "label"), [
    ("POST", "/eventtypes", "Event Type"),
    ("PUT", "/eventtypes/user.created", "Event Type"),
    ("POST", "/functions", "Function"),
    ("PUT", "/functions/f1", "Function"),
    ("POST", "/subscriptions", "Subscription"),
    ("POST", "/cors", "CORS configuration"),
])
@pytest.mark.parametrize(("body", "reason"), [
    (b"{", "unexpected EOF"),
    (b'{"name":"te', "unexpected EOF"),
    (b'{"a": [1, ', "unexpected EOF"),
    (b"", "EOF"),
    (b"  \n", "EOF"),
])
async def test_empty_and_truncated_bodies_answer_gos_words(ready: httpx.AsyncClient, method: str, path: str,
                                                          label: str, body: bytes, reason: str) -> None:
    response = await ready.request(method, path, content=body)
    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": f"{label} doesn't validate. Validation error: {reason}"}]}


async def test_what_follows_the_first_json_value_is_ignored(ready: httpx.AsyncClient) -> None:
    # httpapi_test.go "validation error" posts {"functionID":...}} (one '}' too many): upstream decoded it.
    created = await ready.post("/functions", content=b'{"functionID":"fn3","type":"http",'
                                                     b'"provider":{"url":"http://test.com"}}}')
    assert created.status_code == 201, created.text
    assert created.json()["functionId"] == "fn3"
    assert (await ready.post("/eventtypes", content=b'{"name":"a.b"} trailing words')).status_code == 201
    # Other syntax errors are still named.
    assert_error(await ready.post("/eventtypes", content=b"{nope"), 400, "Event Type doesn't validate",
                 "not valid JSON")
