"""A successful ``awslambda`` call, end to end: a gateway with a sync subscription to a Lambda function
served by moto in server mode.

moto runs Lambda code in Docker, which cannot fetch images here; its "simple" Lambda backend (switched
on through moto's own config API) answers invokes without running code: with a queued result, or by
echoing the payload. That is enough to prove what is ours: the event reaches Lambda as the payload, and
the sync response object Lambda answers is what the Events API client gets.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator

import boto3
import httpx
import pytest

from gateway.providers import ProviderPool
from tests.moto_server import moto_server

REGION = "us-east-1"
KEYS = {"awsAccessKeyId": "testing", "awsSecretAccessKey": "testing"}
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        httpx.post(f"{endpoint}/moto-api/config", json={"lambda": {"use_docker": False}}).raise_for_status()
        try:
            yield endpoint
        finally:
            # moto's config is process-wide: give the other AWS tests the default back.
            httpx.post(f"{endpoint}/moto-api/config", json={"lambda": {"use_docker": True}})


@pytest.fixture(scope="module")
def function_arn(moto_endpoint: str) -> str:
    options = {"region_name": REGION, "endpoint_url": moto_endpoint,
               "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    role = boto3.client("iam", **options).create_role(
        RoleName="gateway-test", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handle(event, context):\n    return event\n")
    created = boto3.client("lambda", **options).create_function(
        FunctionName="greeter", Runtime="python3.12", Role=role, Handler="handler.handle",
        Code={"ZipFile": code.getvalue()})
    return created["FunctionArn"]


def queue_result(endpoint: str, result: dict) -> None:
    httpx.post(f"{endpoint}/moto-api/static/lambda-simple/response",
               json={"results": [json.dumps(result)], "region": REGION}).raise_for_status()


async def test_the_event_is_the_lambda_payload(moto_endpoint: str, function_arn: str) -> None:
    pool = ProviderPool()
    try:
        provider = pool.get("awslambda", {"arn": function_arn, "region": REGION, "endpointUrl": moto_endpoint,
                                          **KEYS})
        payload = json.dumps({"specversion": "1.0", "type": "user.created", "id": "1", "source": "/t"}).encode()
        # Without a queued result the simple backend answers the payload it received.
        assert json.loads(await provider.call(payload)) == json.loads(payload)
    finally:
        await pool.close()


async def test_sync_subscription_answers_what_lambda_answers(gateway_server, moto_endpoint: str,
                                                             function_arn: str) -> None:
    running = await gateway_server()
    base = "/v1/spaces/default"
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        function = {"functionId": "greeter", "type": "awslambda",
                    "provider": {"arn": function_arn, "region": REGION, "endpointUrl": moto_endpoint, **KEYS}}
        assert (await config.post(f"{base}/functions", json=function)).status_code == 201
        assert (await config.post(f"{base}/eventtypes", json={"name": "user.created"})).status_code == 201
        assert (await config.post(f"{base}/subscriptions", json={
            "type": "sync", "eventType": "user.created", "functionId": "greeter", "path": "/greet"})).status_code == 201
        shown = (await config.get(f"{base}/functions/greeter")).json()
        assert shown["provider"]["awsSecretAccessKey"] != "testing"  # secrets are never echoed back

        queue_result(moto_endpoint, {"statusCode": 201, "headers": {"X-From": "lambda"}, "body": "hello, Ada"})
        event = {"specversion": "1.0", "type": "user.created", "source": "/shop", "id": "u-1", "data": {"name": "Ada"}}
        response = await events.post("/greet", content=json.dumps(event),
                                     headers={"content-type": "application/cloudevents+json"})
        assert response.status_code == 201, response.text
        assert response.text == "hello, Ada"
        assert response.headers["x-from"] == "lambda"
