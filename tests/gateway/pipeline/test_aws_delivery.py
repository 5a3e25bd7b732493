"""An async subscription whose function is an SQS queue, through the event path, on moto's server mode."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest

from tests.moto_server import moto_server


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


async def test_events_reach_an_sqs_function(event_gateway, moto_url: str) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    queue_url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    gw = await event_gateway()
    await gw.typed_function("queue", "awssqs", {"queueUrl": queue_url, "region": "us-east-1", "endpointUrl": moto_url,
                                                "awsAccessKeyId": "testing", "awsSecretAccessKey": "testing"})
    await gw.subscribe("async", "order.placed", "queue")
    event = {"specversion": "1.0", "type": "order.placed", "source": "/shop", "id": "o-1", "data": {"total": 3}}
    response = await gw.client.post("/", content=json.dumps(event),
                                    headers={"content-type": "application/cloudevents+json"})
    assert response.status_code == 202
    assert await gw.plane.settle(10)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"]) for m in messages] == [event]
    assert gw.metric("eventgateway_function_invocations_total", space="default", function="queue", mode="async",
                     outcome="success") == 1
