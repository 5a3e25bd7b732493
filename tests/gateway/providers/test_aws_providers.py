"""AWS providers against moto in server mode (a real AWS API emulator over HTTP, started by the test).

Lambda: invoking a function that does not exist gives a readable error naming the AWS error code;
a successful invoke, end to end through a gateway, is in test_aws_lambda.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest

from tests.moto_server import moto_server
from gateway.providers import ProviderError, ProviderPool

REGION = "us-east-1"
KEYS = {"awsAccessKeyId": "testing", "awsSecretAccessKey": "testing"}


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def _boto(service: str, endpoint: str):
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


async def test_sqs_send_message(moto_endpoint: str) -> None:
    sqs = _boto("sqs", moto_endpoint)
    queue_url = sqs.create_queue(QueueName="events")["QueueUrl"]
    pool = ProviderPool()
    try:
        provider = pool.get("awssqs", {"queueUrl": queue_url, "region": REGION, "endpointUrl": moto_endpoint, **KEYS})
        receipt = json.loads(await provider.call(b'{"eventType":"a"}'))
        assert receipt["MessageId"]
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1)["Messages"]
        assert messages[0]["Body"] == '{"eventType":"a"}'
        missing = pool.get("awssqs", {"queueUrl": queue_url + "-missing", "region": REGION,
                                      "endpointUrl": moto_endpoint, **KEYS})
        with pytest.raises(ProviderError, match="SQS SendMessage to .* failed with"):
            await missing.call(b"{}")
    finally:
        await pool.close()


async def test_kinesis_put_record(moto_endpoint: str) -> None:
    kinesis = _boto("kinesis", moto_endpoint)
    kinesis.create_stream(StreamName="stream", ShardCount=1)
    pool = ProviderPool()
    try:
        provider = pool.get("awskinesis", {"streamName": "stream", "region": REGION, "endpointUrl": moto_endpoint,
                                           **KEYS})
        receipt = json.loads(await provider.call(b'{"n":1}'))
        shard_iterator = kinesis.get_shard_iterator(StreamName="stream", ShardId=receipt["ShardId"],
                                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records = kinesis.get_records(ShardIterator=shard_iterator)["Records"]
        assert [r["Data"] for r in records] == [b'{"n":1}']
        with pytest.raises(ProviderError, match="ResourceNotFoundException"):
            await pool.get("awskinesis", {"streamName": "nope", "region": REGION, "endpointUrl": moto_endpoint,
                                          **KEYS}).call(b"{}")
    finally:
        await pool.close()


async def test_firehose_put_record(moto_endpoint: str) -> None:
    s3 = _boto("s3", moto_endpoint)
    s3.create_bucket(Bucket="sink")
    firehose = _boto("firehose", moto_endpoint)
    firehose.create_delivery_stream(
        DeliveryStreamName="hose",
        ExtendedS3DestinationConfiguration={"RoleARN": "arn:aws:iam::123456789012:role/firehose",
                                            "BucketARN": "arn:aws:s3:::sink"})
    pool = ProviderPool()
    try:
        provider = pool.get("awsfirehose", {"deliveryStreamName": "hose", "region": REGION,
                                            "endpointUrl": moto_endpoint, **KEYS})
        receipt = json.loads(await provider.call(b'{"n":2}'))
        assert receipt["RecordId"]
        objects = s3.list_objects_v2(Bucket="sink").get("Contents", [])
        bodies = [s3.get_object(Bucket="sink", Key=o["Key"])["Body"].read() for o in objects]
        assert any(b'{"n":2}' in body for body in bodies)
    finally:
        await pool.close()


async def test_lambda_error_is_readable(moto_endpoint: str) -> None:
    pool = ProviderPool()
    try:
        arn = "arn:aws:lambda:us-east-1:123456789012:function:missing"
        provider = pool.get("awslambda", {"arn": arn, "region": REGION, "endpointUrl": moto_endpoint, **KEYS})
        with pytest.raises(ProviderError, match=r"Lambda invoke of .*missing failed with ResourceNotFoundException"):
            await provider.call(b"{}")
    finally:
        await pool.close()


def test_missing_fields_and_unknown_types_are_named() -> None:
    pool = ProviderPool()
    with pytest.raises(ProviderError, match="awssqs provider: 'queueUrl' is required"):
        pool.get("awssqs", {"region": REGION})
    with pytest.raises(ProviderError, match="awskinesis provider: 'region' is required"):
        pool.get("awskinesis", {"streamName": "s"})
    with pytest.raises(ProviderError, match="unknown function type 'ftp'"):
        pool.get("ftp", {})
