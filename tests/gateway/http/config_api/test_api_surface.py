"""Status, metrics, OpenAPI, metadata filters, error shape of unknown routes, and write-through."""

from __future__ import annotations

import httpx

from tests.gateway.http.config_api.conftest import assert_error, http_function


async def test_status_and_unknown_routes(root: httpx.AsyncClient) -> None:
    status = await root.get("/v1/status")
    assert (status.status_code, status.content) == (200, b"")
    assert_error(await root.get("/v1/nope"), 404, "no such endpoint: GET /v1/nope")
    assert_error(await root.patch("/v1/spaces/default/functions/x", json={}), 405,
                 "method PATCH is not allowed on /v1/spaces/default/functions/x", "PUT")


async def test_metadata_filters_are_exact_and_combined(api: httpx.AsyncClient) -> None:
    for function_id, metadata in (("a", {"team": "x", "env": "prod"}), ("b", {"team": "x", "env": "dev"}),
                                  ("c", {"team": "y"})):
        assert (await api.post("/functions", json=http_function(function_id, metadata=metadata))).status_code == 201
        assert (await api.post("/eventtypes", json={"name": f"e{function_id}", "metadata": metadata})).status_code == 201
    await api.post("/cors", json={"method": "GET", "path": "/p", "metadata": {"team": "x"}})

    def ids(response: httpx.Response, key: str, field: str) -> list[str]:
        return sorted(item[field] for item in response.json()[key])

    assert ids(await api.get("/functions", params={"metadata.team": "x"}), "functions", "functionId") == ["a", "b"]
    assert ids(await api.get("/functions", params={"metadata.team": "x", "metadata.env": "prod"}),
               "functions", "functionId") == ["a"]
    assert ids(await api.get("/functions", params={"metadata.team": "X"}), "functions", "functionId") == []
    assert ids(await api.get("/eventtypes", params={"metadata.team": "y"}), "eventTypes", "name") == ["ec"]
    assert ids(await api.get("/cors", params={"metadata.team": "x"}), "cors", "corsId") == ["GET%2Fp"]
    assert ids(await api.get("/cors", params={"metadata.team": "y"}), "cors", "corsId") == []
    await api.post("/subscriptions", json={"type": "async", "eventType": "ea", "functionId": "a",
                                           "metadata": {"k": "1"}})
    await api.post("/subscriptions", json={"type": "async", "eventType": "eb", "functionId": "b"})
    assert ids(await api.get("/subscriptions", params={"metadata.k": "1"}), "subscriptions", "eventType") == ["ea"]


async def test_metrics_count_config_requests_and_documents(api: httpx.AsyncClient, root: httpx.AsyncClient) -> None:
    await api.post("/functions", json=http_function("a"))
    await api.post("/functions", json=http_function("b"))
    await api.get("/functions/a")
    await api.get("/functions/missing")
    await api.post("/eventtypes", json={"name": "e"})
    await api.delete("/functions/b")
    metrics = await root.get("/v1/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    lines = metrics.text.splitlines()
    for expected in (
        'eventgateway_config_requests_total{operation="create",resource="function",space="default"} 2.0',
        'eventgateway_config_requests_total{operation="get",resource="function",space="default"} 2.0',
        'eventgateway_config_requests_total{operation="delete",resource="function",space="default"} 1.0',
        'eventgateway_config_requests_total{operation="create",resource="eventtype",space="default"} 1.0',
        'eventgateway_functions_total{space="default"} 1.0',
        'eventgateway_eventtypes_total{space="default"} 1.0',
    ):
        assert expected in lines, expected
    assert any(line.startswith("eventgateway_config_request_duration_seconds_count") for line in lines)


async def test_openapi_document_describes_every_resource(root: httpx.AsyncClient) -> None:
    response = await root.get("/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    for resource, key in (("eventtypes", "name"), ("functions", "id"), ("subscriptions", "id"), ("cors", "id")):
        collection = document["paths"][f"/v1/spaces/{{space}}/{resource}"]
        item = document["paths"][f"/v1/spaces/{{space}}/{resource}/{{{key}}}"]
        assert {"get", "post"} <= collection.keys() and {"get", "put", "delete"} <= item.keys()
    schemas = document["components"]["schemas"]
    assert {"EventType", "Function", "Subscription", "CORS", "Errors"} <= schemas.keys()
    assert "functionId" in schemas["Function"]["properties"]
    # Every $ref resolves.
    refs = [part.split('"')[0] for part in response.text.split('"$ref":"#/components/schemas/')[1:]]
    assert refs and all(ref in schemas for ref in refs)
    # And it is a valid OpenAPI 3.1 document, as generators and validators will read it.
    from openapi_spec_validator import validate

    validate(document)


async def test_write_is_visible_on_this_gateways_events_api_at_once(gw, api: httpx.AsyncClient,
                                                                    function_server) -> None:
    await api.post("/functions", json=http_function("f", url=function_server.url))
    await api.post("/eventtypes", json={"name": "http.request"})
    created = await api.post("/subscriptions", json={"type": "sync", "eventType": "http.request",
                                                      "functionId": "f", "path": "/now", "method": "GET"})
    assert created.status_code == 201
    function_server.respond(200, {"statusCode": 200, "body": "routed"})
    async with httpx.AsyncClient(base_url=gw.events_url) as events:
        # No sleep: the Config API answered only after this gateway's view applied the write.
        answer = await events.get("/now")
        assert (answer.status_code, answer.text) == (200, "routed")
        await api.delete(f"/subscriptions/{created.json()['subscriptionId']}")
        assert (await events.get("/now")).status_code == 202  # no sync subscriber any more


async def test_an_impossible_space_in_the_url_is_a_400_on_every_method(root: httpx.AsyncClient) -> None:
    for method, path in (("GET", "/v1/spaces/ab/functions"), ("GET", "/v1/spaces/a%20b/eventtypes/x"),
                         ("DELETE", "/v1/spaces/ab/subscriptions/x"), ("PUT", "/v1/spaces/ab/cors/GET%2Fx"),
                         ("POST", "/v1/spaces/no!/eventtypes")):
        assert_error(await root.request(method, path, json={"name": "x"}), 400, "space", "in the URL is invalid")
    assert (await root.get("/v1/spaces/abc/functions")).json() == {"functions": []}


async def test_a_trailing_slash_reaches_the_same_endpoint(api: httpx.AsyncClient) -> None:
    assert (await api.post("/functions/", json=http_function("slash"))).status_code == 201
    assert [f["functionId"] for f in (await api.get("/functions/")).json()["functions"]] == ["slash"]
    assert (await api.get("/functions/slash/")).json()["functionId"] == "slash"
    created = await api.post("/cors", json={"method": "GET", "path": "/users/"})
    assert created.json()["corsId"] == "GET%2Fusers%2F"
    # A CORS id keeps its own trailing slash: /users/ and /users are two settings.
    assert (await api.get("/cors/GET%2Fusers%2F")).json()["path"] == "/users/"
    assert_error(await api.get("/cors/GET%2Fusers"), 404)
