"""An async subscription whose function is an SQS queue, through the event path, on moto's server mode."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


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
    assert await gw.plane.processor.queue.drain(10)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"]) for m in messages] == [event]
    assert gw.metric("eventgateway_function_invocations_total", space="default", function="queue", mode="async",
                     outcome="success") == 1
