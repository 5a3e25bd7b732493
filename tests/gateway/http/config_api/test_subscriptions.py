from __future__ import annotations

import base64

import httpx
import pytest

from tests.gateway.http.config_api.conftest import assert_error, http_function


@pytest.fixture
async def ready(api: httpx.AsyncClient) -> httpx.AsyncClient:
    assert (await api.post("/functions", json=http_function("f1"))).status_code == 201
    assert (await api.post("/functions", json=http_function("f2"))).status_code == 201
    assert (await api.post("/eventtypes", json={"name": "user.created"})).status_code == 201
    assert (await api.post("/eventtypes", json={"name": "http.request"})).status_code == 201
    return api


def decode(subscription_id: str) -> str:
    return base64.urlsafe_b64decode(subscription_id + "=" * (-len(subscription_id) % 4)).decode()


async def test_defaults_and_deterministic_ids(ready: httpx.AsyncClient) -> None:
    created = await ready.post("/subscriptions", json={"type": "async", "eventType": "user.created",
                                                        "functionId": "f1"})
    assert created.status_code == 201
    body = created.json()
    assert (body["path"], body["method"], "metadata" in body) == ("/", "POST", False)
    assert decode(body["subscriptionId"]) == "async,user.created,f1,%2F,POST"

    sync = await ready.post("/subscriptions", json={"type": "sync", "eventType": "http.request",
                                                     "functionId": "f1", "path": "users/:id", "method": "get"})
    assert sync.status_code == 201
    assert (sync.json()["path"], sync.json()["method"]) == ("/users/:id", "GET")
    assert decode(sync.json()["subscriptionId"]) == "sync,http.request,%2Fusers%2F:id,GET"

    listed = (await ready.get("/subscriptions")).json()["subscriptions"]
    assert sorted(s["subscriptionId"] for s in listed) == sorted([body["subscriptionId"], sync.json()["subscriptionId"]])
    assert (await ready.get(f"/subscriptions/{body['subscriptionId']}")).json() == body


async def test_same_subscription_twice_is_a_conflict(ready: httpx.AsyncClient) -> None:
    body = {"type": "async", "eventType": "user.created", "functionId": "f1"}
    assert (await ready.post("/subscriptions", json=body)).status_code == 201
    assert_error(await ready.post("/subscriptions", json=body), 409, "already exists")
    # One sync subscriber per method, path and event type, whichever function.
    sync = {"type": "sync", "eventType": "http.request", "functionId": "f1", "path": "/a"}
    assert (await ready.post("/subscriptions", json=sync)).status_code == 201
    assert_error(await ready.post("/subscriptions", json={**sync, "functionId": "f2"}), 409, "already exists")


@pytest.mark.parametrize(("existing", "new"), [
    ("/users/:id", "/users/:name"),
    ("/users/:id", "/users/static"),
    ("/users/static", "/users/:id"),
    ("/files/*rest", "/files/x"),
    ("/files/x", "/files/*rest"),
])
async def test_sync_path_conflicts_are_400(ready: httpx.AsyncClient, existing: str, new: str) -> None:
    base = {"type": "sync", "eventType": "http.request", "functionId": "f1", "method": "GET"}
    assert (await ready.post("/subscriptions", json={**base, "path": existing})).status_code == 201
    assert_error(await ready.post("/subscriptions", json={**base, "path": new, "functionId": "f2"}), 400,
                 "Subscription path conflict")
    # Another method, or an async subscription, does not conflict.
    assert (await ready.post("/subscriptions", json={**base, "path": new, "method": "POST"})).status_code == 201
    assert (await ready.post("/subscriptions", json={**base, "path": new, "type": "async"})).status_code == 201


async def test_non_conflicting_paths(ready: httpx.AsyncClient) -> None:
    base = {"type": "sync", "eventType": "http.request", "functionId": "f1", "method": "GET"}
    for path in ("/users/:id", "/users/:id/posts", "/users", "/", "/files/*rest", "/other/"):
        assert (await ready.post("/subscriptions", json={**base, "path": path})).status_code == 201, path


async def test_wildcard_must_be_last(ready: httpx.AsyncClient) -> None:
    assert_error(await ready.post("/subscriptions", json={"type": "sync", "eventType": "http.request",
                                                           "functionId": "f1", "path": "/a/*rest/b"}),
                 400, "must be the last")


@pytest.mark.parametrize(("body", "status", "fragments"), [
    ({"eventType": "user.created", "functionId": "f1"}, 400, ["type", "Field required"]),
    ({"type": "later", "eventType": "user.created", "functionId": "f1"}, 400, ["type", "'sync'"]),
    ({"type": "async", "functionId": "f1"}, 400, ["eventType"]),
    ({"type": "async", "eventType": "user.created"}, 400, ["functionId"]),
    ({"type": "async", "eventType": "user.created", "functionId": "f1", "method": "FETCH"}, 400, ["method"]),
    ({"type": "async", "eventType": "nope", "functionId": "f1"}, 400, ['Event Type "nope" not found.']),
    ({"type": "async", "eventType": "user.created", "functionId": "nope"}, 400, ['Function "nope" not found.']),
    ({"type": "async", "eventType": "user.created", "functionId": "f1", "path": "/x?y=1"}, 400,
     ["path", "must not contain '?'"]),
    ({"type": "async", "eventType": "user.created", "functionId": "f1", "path": "/x#top"}, 400,
     ["path", "must not contain '#'"]),
])
async def test_validation(ready: httpx.AsyncClient, body: dict, status: int, fragments: list[str]) -> None:
    assert_error(await ready.post("/subscriptions", json=body), status, *fragments)


async def test_only_metadata_can_be_updated(ready: httpx.AsyncClient) -> None:
    body = {"type": "async", "eventType": "user.created", "functionId": "f1", "path": "/p"}
    created = (await ready.post("/subscriptions", json=body)).json()
    sid = created["subscriptionId"]
    updated = await ready.put(f"/subscriptions/{sid}", json={**body, "metadata": {"k": "v"}})
    assert updated.status_code == 200 and updated.json()["metadata"] == {"k": "v"}
    assert (await ready.get(f"/subscriptions/{sid}")).json()["metadata"] == {"k": "v"}
    for field, value, label in (("functionId", "f2", "FunctionID"), ("path", "/q", "Path"),
                                ("method", "PUT", "Method"), ("type", "sync", "Type")):
        assert_error(await ready.put(f"/subscriptions/{sid}", json={**body, field: value}), 400,
                     f"Invalid update. '{label}' of existing subscription cannot be updated.")
    assert_error(await ready.put("/subscriptions/nope", json=body), 404, "nope")
    assert (await ready.delete(f"/subscriptions/{sid}")).status_code == 204
    assert_error(await ready.delete(f"/subscriptions/{sid}"), 404)


async def test_async_paths_may_repeat_but_not_mix_parameters(ready: httpx.AsyncClient) -> None:
    base = {"type": "async", "eventType": "user.created", "method": "POST"}
    assert (await ready.post("/subscriptions", json={**base, "functionId": "f1", "path": "/u/:id"})).status_code == 201
    assert (await ready.post("/subscriptions", json={**base, "functionId": "f2", "path": "/u/:id"})).status_code == 201
    assert_error(await ready.post("/subscriptions", json={**base, "functionId": "f2", "path": "/u/:name"}), 400,
                 "Subscription path conflict", ":name")
    assert_error(await ready.post("/subscriptions", json={**base, "functionId": "f1", "path": "/a/:"}), 400,
                 "without a name")


async def test_a_stored_document_that_no_longer_validates_does_not_break_lists(gw, ready: httpx.AsyncClient,
                                                                                caplog) -> None:
    from gateway.store.base import Kind

    old = {"space": "default", "subscriptionId": "legacy", "type": "async", "eventType": "user.created",
           "functionId": "f1", "path": "/x?y=1", "method": "POST", "metadata": {}}
    await gw.gateway.store.create(Kind.SUBSCRIPTIONS, "default", "legacy", old)
    good = await ready.post("/subscriptions", json={"type": "async", "eventType": "user.created", "functionId": "f2"})
    assert good.status_code == 201
    listed = await ready.get("/subscriptions")
    assert listed.status_code == 200
    assert [s["functionId"] for s in listed.json()["subscriptions"]] == ["f2"]
    assert "'legacy'" in caplog.text and "no longer validates" in caplog.text


async def test_getting_a_stored_document_that_no_longer_validates_says_which_and_why(
        gw, ready: httpx.AsyncClient, caplog) -> None:
    """The single GET answers 500 naming the document and its problem (the list skips it); PUT too, since
    it cannot be reconciled; DELETE removes it, which is how an operator gets rid of it."""
    from gateway.store.base import Kind

    old = {"space": "default", "subscriptionId": "legacy", "type": "async", "eventType": "user.created",
           "functionId": "f1", "path": "/x?y=1", "method": "POST", "metadata": {}}
    await gw.gateway.store.create(Kind.SUBSCRIPTIONS, "default", "legacy", old)
    old_function = {"space": "default", "functionId": "oldfn", "type": "http", "provider": {"url": "ftp://h/"}}
    await gw.gateway.store.create(Kind.FUNCTIONS, "default", "oldfn", old_function)

    response = await ready.get("/subscriptions/legacy")
    assert response.status_code == 500
    [error] = response.json()["errors"]
    assert error["message"].startswith("Stored Subscription 'legacy' in space 'default' no longer validates: path")
    assert "'?'" in error["message"] and error["message"].endswith("DELETE it and create it again.")
    assert "stored Subscription 'legacy' in space 'default' no longer validates" in caplog.text

    response = await ready.get("/functions/oldfn")
    assert response.status_code == 500
    assert response.json()["errors"][0]["message"].startswith(
        "Stored Function 'oldfn' in space 'default' no longer validates: provider.url")
    response = await ready.put("/functions/oldfn", json={"type": "http", "provider": {"url": "http://h/"}})
    assert response.status_code == 500 and "'oldfn'" in response.json()["errors"][0]["message"]

    assert (await ready.delete("/subscriptions/legacy")).status_code == 204
    assert (await ready.delete("/functions/oldfn")).status_code == 204
    assert (await ready.get("/subscriptions/legacy")).status_code == 404
    assert (await ready.get("/functions/oldfn")).status_code == 404
