from __future__ import annotations

import httpx
import pytest

from tests.gateway.http.config_api.conftest import assert_error, http_function

LAMBDA = {"functionId": "lambda", "type": "awslambda",
          "provider": {"arn": "arn:aws:lambda:us-east-1:123456789012:function:f", "region": "us-east-1",
                       "awsAccessKeyId": "AKIAEXAMPLE", "awsSecretAccessKey": "very-secret",
                       "awsSessionToken": "token-secret"}}


async def test_crud_with_defaults(api: httpx.AsyncClient) -> None:
    created = await api.post("/functions", json=http_function("f1", metadata={"owner": "me"}))
    assert created.status_code == 201
    assert created.json() == {"space": "default", "functionId": "f1", "type": "http",
                              "provider": {"url": "http://127.0.0.1:9/fn", "timeout": 5.0},
                              "metadata": {"owner": "me"}}
    assert (await api.get("/functions/f1")).json() == created.json()
    updated = await api.put("/functions/f1", json={"type": "http", "provider": {"url": "https://example.com/x",
                                                                               "timeout": 30},
                                                  "retry": {"maxAttempts": 5, "initialBackoff": 0.5}})
    assert updated.status_code == 200, updated.text
    assert updated.json()["provider"] == {"url": "https://example.com/x", "timeout": 30.0}
    assert updated.json()["retry"] == {"maxAttempts": 5, "initialBackoff": 0.5, "multiplier": 2.0, "maxBackoff": 5.0}
    assert (await api.get("/functions")).json() == {"functions": [updated.json()]}
    assert (await api.delete("/functions/f1")).status_code == 204
    assert_error(await api.get("/functions/f1"), 404, 'Function "f1" not found.')


async def test_pre_0_6_shape_with_type_inside_provider_is_accepted(api: httpx.AsyncClient) -> None:
    created = await api.post("/functions", json={"functionId": "old", "provider": {"type": "http",
                                                                                  "url": "http://h/"}})
    assert created.status_code == 201 and created.json()["type"] == "http"


@pytest.mark.parametrize(("body", "fragments"), [
    ({"type": "http", "provider": {"url": "http://h/"}}, ["functionId", "Field required"]),
    (http_function("bad id"), ["functionId", "pattern"]),
    ({"functionId": "f", "type": "gcp", "provider": {}}, ["provider gcp not supported"]),
    ({"functionId": "f", "type": "http"}, ["provider", "Field required"]),
    ({"functionId": "f", "type": "http", "provider": {"url": "ftp://h/"}}, ["provider.url", "http://"]),
    ({"functionId": "f", "type": "http", "provider": {"url": "http://h/", "timeout": 0}}, ["provider.timeout"]),
    ({"functionId": "f", "type": "awslambda", "provider": {"region": "us-east-1"}}, ["Validation error: missing required fields for AWS Lambda function"]),
    ({"functionId": "f", "type": "awskinesis", "provider": {"region": "r"}}, ["Validation error: missing required fields for AWS Kinesis function"]),
    ({"functionId": "f", "type": "awsfirehose", "provider": {"region": "r"}}, ["Validation error: missing required fields for AWS Firehose function"]),
    ({"functionId": "f", "type": "awssqs", "provider": {"queueUrl": "q"}}, ["Validation error: missing required fields for AWS SQS function"]),
    ({**http_function("f"), "metadata": {"n": 1}}, ["metadata.n", "string"]),
    ({**http_function("f"), "retry": {"maxAttempts": 0}}, ["retry.maxAttempts"]),
    ({"functionId": "f", "type": "awssqs", "provider": {"queueUrl": "q", "region": "r", "awsAccessKeyId": "AKIA"}},
     ["provider", "awsAccessKeyId is set but awsSecretAccessKey is not"]),
    ({"functionId": "f", "type": "awslambda", "provider": {"arn": "a", "region": "r", "awsSessionToken": "t"}},
     ["provider", "awsSessionToken needs awsAccessKeyId"]),
])
async def test_validation_names_the_field(api: httpx.AsyncClient, body: dict, fragments: list[str]) -> None:
    assert_error(await api.post("/functions", json=body), 400, "Function doesn't validate", *fragments)


async def test_conflict_and_missing(api: httpx.AsyncClient) -> None:
    assert (await api.post("/functions", json=http_function())).status_code == 201
    assert_error(await api.post("/functions", json=http_function()), 409, 'Function "f1" already registered.')
    assert_error(await api.put("/functions/nope", json=http_function()), 404, "nope")
    assert_error(await api.put("/functions/f1", json={"type": "http", "provider": {"url": "ftp://h/"}}), 400,
                 "Function doesn't validate", "provider.url")
    assert_error(await api.delete("/functions/nope"), 404, "nope")


async def test_all_aws_types_accepted(api: httpx.AsyncClient) -> None:
    for body in (LAMBDA,
                 {"functionId": "k", "type": "awskinesis", "provider": {"streamName": "s", "region": "r"}},
                 {"functionId": "h", "type": "awsfirehose", "provider": {"deliveryStreamName": "d", "region": "r"}},
                 {"functionId": "q", "type": "awssqs", "provider": {"queueUrl": "https://sqs/q", "region": "r",
                                                                    "endpointUrl": "http://127.0.0.1:5000"}}):
        assert (await api.post("/functions", json=body)).status_code == 201, body


async def test_secrets_are_stored_but_never_returned(gw, api: httpx.AsyncClient) -> None:
    created = await api.post("/functions", json=LAMBDA)
    assert created.status_code == 201
    for response in (created, await api.get("/functions/lambda")):
        provider = response.json()["provider"]
        assert provider["awsAccessKeyId"] == provider["awsSecretAccessKey"] == provider["awsSessionToken"] == "*****"
        assert "very-secret" not in response.text and "token-secret" not in response.text
    assert "very-secret" not in (await api.get("/functions")).text
    # The event path still has them.
    stored = gw.gateway.view.function("default", "lambda")
    assert stored.provider.aws_secret_access_key == "very-secret"

    # GET, edit, PUT back with the markers: the secrets are kept.
    edited = created.json()
    edited["provider"]["region"] = "eu-west-1"
    assert (await api.put("/functions/lambda", json=edited)).status_code == 200
    stored = gw.gateway.view.function("default", "lambda")
    assert (stored.provider.region, stored.provider.aws_secret_access_key,
            stored.provider.aws_session_token) == ("eu-west-1", "very-secret", "token-secret")

    # A new secret replaces the old one; the marker is refused where there is nothing to keep.
    rotated = {**LAMBDA, "provider": {**LAMBDA["provider"], "awsSecretAccessKey": "rotated"}}
    assert (await api.put("/functions/lambda", json=rotated)).status_code == 200
    assert gw.gateway.view.function("default", "lambda").provider.aws_secret_access_key == "rotated"
    marker_only = {**LAMBDA, "functionId": "new", "provider": {**LAMBDA["provider"], "awsSecretAccessKey": "*****"}}
    assert_error(await api.post("/functions", json=marker_only), 400, "awsSecretAccessKey", "redaction marker")


async def test_function_with_subscription_cannot_be_deleted(api: httpx.AsyncClient) -> None:
    await api.post("/functions", json=http_function())
    await api.post("/eventtypes", json={"name": "e"})
    await api.post("/subscriptions", json={"type": "async", "eventType": "e", "functionId": "f1"})
    assert_error(await api.delete("/functions/f1"), 400,
                 "Function cannot be deleted because it's subscribed to a least one event.")


async def test_password_in_an_http_url_is_a_secret(gw, api: httpx.AsyncClient, function_server) -> None:
    import base64

    url = function_server.url.replace("http://", "http://hook:s3cret@") + "/fn"
    created = await api.post("/functions", json=http_function("basic", url=url))
    assert created.status_code == 201
    shown = url.replace("s3cret", "*****")
    for response in (created, await api.get("/functions/basic"), await api.get("/functions")):
        assert "s3cret" not in response.text and shown in response.text
    # GET, edit, PUT back: the stored password is kept and used.
    edited = created.json()
    edited["provider"]["timeout"] = 3
    assert (await api.put("/functions/basic", json=edited)).status_code == 200
    assert gw.gateway.view.function("default", "basic").provider.url == url
    assert (await api.post("/eventtypes", json={"name": "ping"})).status_code == 201
    assert (await api.post("/subscriptions", json={"type": "sync", "eventType": "ping", "functionId": "basic",
                                                    "path": "/ping"})).status_code == 201
    function_server.respond(200, {"statusCode": 200, "body": "pong"})
    async with httpx.AsyncClient(base_url=gw.events_url) as events:
        answer = await events.post("/ping", json={"x": 1}, headers={"Event": "ping"})
    assert answer.text == "pong"
    (received,) = function_server.requests
    assert received.headers["Authorization"] == "Basic " + base64.b64encode(b"hook:s3cret").decode()
    # The marker is refused where there is nothing to keep.
    assert_error(await api.post("/functions", json=http_function("new", url=shown)), 400,
                 "provider.url", "redaction marker")
    assert_error(await api.put("/functions/f-none", json=http_function("f-none", url=shown)), 404)
    assert (await api.post("/functions", json=http_function("plain"))).status_code == 201
    assert_error(await api.put("/functions/plain", json=http_function("plain", url=shown)), 400,
                 "no stored password")


async def test_keys_match_case_insensitively_as_upstreams_go_decoder_did(api: httpx.AsyncClient) -> None:
    created = await api.post("/functions", json={"FunctionID": "go", "Type": "awssqs",
                                                 "Provider": {"QueueURL": "https://sqs/q", "Region": "r"},
                                                 "retry": {"MaxAttempts": 2}})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["functionId"], body["provider"]["queueUrl"], body["retry"]["maxAttempts"]) == ("go", "https://sqs/q", 2)
    # An authorizer spelled authorizerID is kept, not silently dropped.
    assert (await api.post("/eventtypes", json={"name": "guarded", "authorizerID": "go"})).json()["authorizerId"] == "go"
    sub = await api.post("/subscriptions", json={"Type": "async", "EventType": "guarded", "FunctionID": "go"})
    assert sub.status_code == 201 and sub.json()["functionId"] == "go"
    # The exact spelling wins over another case of the same key.
    both = await api.post("/functions", json={**http_function("exact"), "FUNCTIONID": "other"})
    assert both.json()["functionId"] == "exact"
