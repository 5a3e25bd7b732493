from __future__ import annotations

import httpx

from tests.gateway.http.config_api.conftest import assert_error, http_function


async def test_crud(api: httpx.AsyncClient) -> None:
    created = await api.post("/eventtypes", json={"name": "user.created", "metadata": {"team": "a"}})
    assert created.status_code == 201
    assert created.json() == {"space": "default", "name": "user.created", "metadata": {"team": "a"}}
    assert (await api.get("/eventtypes/user.created")).json()["name"] == "user.created"
    assert (await api.get("/eventtypes")).json() == {"eventTypes": [created.json()]}

    updated = await api.put("/eventtypes/user.created", json={"metadata": {"team": "b"}})
    assert updated.status_code == 200 and updated.json()["metadata"] == {"team": "b"}

    assert (await api.delete("/eventtypes/user.created")).status_code == 204
    assert_error(await api.get("/eventtypes/user.created"), 404, "user.created", "not found")
    assert (await api.get("/eventtypes")).json() == {"eventTypes": []}


async def test_url_space_overrides_body_and_spaces_are_separate(root: httpx.AsyncClient) -> None:
    created = await root.post("/v1/spaces/team-a/eventtypes", json={"name": "x", "space": "elsewhere"})
    assert created.status_code == 201 and created.json()["space"] == "team-a"
    assert (await root.get("/v1/spaces/team-b/eventtypes")).json() == {"eventTypes": []}
    assert (await root.get("/v1/spaces/elsewhere/eventtypes")).json() == {"eventTypes": []}


async def test_validation_and_conflicts(api: httpx.AsyncClient, root: httpx.AsyncClient) -> None:
    assert_error(await api.post("/eventtypes", json={}), 400, "Event Type doesn't validate", "name")
    assert_error(await api.post("/eventtypes", json={"name": "has space"}), 400, "name")
    assert_error(await api.post("/eventtypes", content=b"{nope"), 400, "not valid JSON")
    assert_error(await api.post("/eventtypes", json=["name"]), 400, "must be a JSON object, got array")
    assert_error(await api.post("/eventtypes", content=b"null"), 400, "must be a JSON object, got null")
    assert_error(await api.post("/eventtypes", content=b"[" * 100_000), 400, "not valid JSON", "nested too deeply")
    assert_error(await api.post("/eventtypes", content=b'{"name": "x", "metadata": {"k": "\\udc00"}}'), 400,
                 "not valid JSON", "lone UTF-16 surrogate")
    assert_error(await root.post("/v1/spaces/ab/eventtypes", json={"name": "x"}), 400, "space")
    assert (await api.post("/eventtypes", json={"name": "dup"})).status_code == 201
    assert_error(await api.post("/eventtypes", json={"name": "dup"}), 409, "dup", "already exists")
    assert_error(await api.put("/eventtypes/missing", json={}), 404, "missing")
    assert_error(await api.delete("/eventtypes/missing"), 404, "missing")


async def test_authorizer_must_exist_and_cannot_be_deleted_while_used(api: httpx.AsyncClient) -> None:
    assert_error(await api.post("/eventtypes", json={"name": "e", "authorizerId": "auth"}), 400,
                 "Authorizer function doesn't exists.")
    assert (await api.post("/functions", json=http_function("auth"))).status_code == 201
    created = await api.post("/eventtypes", json={"name": "e", "authorizerId": "auth"})
    assert created.status_code == 201 and created.json()["authorizerId"] == "auth"
    assert_error(await api.put("/eventtypes/e", json={"authorizerId": "other"}), 400, "Authorizer function doesn't exists.")
    assert_error(await api.delete("/functions/auth"), 400,
                 "Function auth cannot be deleted because is used as an authorizer for e event type.")


async def test_event_type_used_by_a_subscription_cannot_be_deleted(api: httpx.AsyncClient) -> None:
    await api.post("/functions", json=http_function())
    await api.post("/eventtypes", json={"name": "e"})
    sub = await api.post("/subscriptions", json={"type": "async", "eventType": "e", "functionId": "f1"})
    assert sub.status_code == 201
    assert_error(await api.delete("/eventtypes/e"), 400,
                 "Event type cannot be deleted because there are subscriptions using it.")
    assert (await api.delete(f"/subscriptions/{sub.json()['subscriptionId']}")).status_code == 204
    assert (await api.delete("/eventtypes/e")).status_code == 204
