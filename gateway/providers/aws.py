"""The upstream AWS function types, through aiobotocore.

``awslambda`` invokes a function and returns its payload; ``awskinesis``, ``awsfirehose`` and ``awssqs``
put the event on a stream or queue and return the service's receipt as JSON. Credentials come from the
function's provider config when given (upstream fields ``awsAccessKeyId``, ``awsSecretAccessKey``,
``awsSessionToken``), else from the usual AWS chain. ``endpointUrl`` (or the standard
``AWS_ENDPOINT_URL`` environment variable) points a client at an emulator or a VPC endpoint.

Response sizes need no limit of their own here, unlike the http provider's
``--max-function-response-bytes``: AWS itself bounds a synchronous Lambda invocation's response payload
to 6 MB (a bigger one is the function's error, not a payload), and Kinesis, Firehose and SQS answer a
small receipt of which only the ids are kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from aiobotocore.session import AioSession
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from .base import ProviderError, require

__all__ = ["AWSClients", "FirehoseProvider", "KinesisProvider", "LambdaProvider", "SQSProvider"]

_EXPLAINED = {
    "AccessDeniedException": "the credentials lack the IAM permission to call this target",
    "UnrecognizedClientException": "the credentials are invalid",
    "ExpiredTokenException": "the security token has expired",
}


#: What upstream's router answered a sync subscription's client when a Lambda call failed with these codes
#: (router.determineErrorMessage, 0.9.1), word for word.
_LAMBDA_CLIENT_MESSAGES = {
    "AccessDeniedException": "Function call failed with AccessDeniedException. The provided credentials do not"
                             " have the required IAM permissions to invoke this function. Please attach the"
                             " lambda:invokeFunction permission to these credentials.",
    "UnrecognizedClientException": "Function call failed with UnrecognizedClientException. The provided credentials"
                                   " are invalid. Please provide valid credentials.",
    "ExpiredTokenException": "Function call failed with ExpiredTokenException. The provided security token for"
                             " the function has expired. Please provide an updated security token or provide"
                             " permanent credentials.",
}


def _client_error(what: str, exc: Exception, *, lambda_call: bool = False) -> ProviderError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        message = exc.response.get("Error", {}).get("Message", "")
        hint = _EXPLAINED.get(code)
        return ProviderError(f"{what} failed with {code}: {message}" + (f" ({hint})" if hint else ""),
                             _LAMBDA_CLIENT_MESSAGES.get(code) if lambda_call else None)
    return ProviderError(f"{what} failed: {type(exc).__name__}: {exc}")


class AWSClients:
    """aiobotocore clients shared by every function with the same service, region and credentials."""

    def __init__(self) -> None:
        self._session = AioSession()
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[tuple[str, ...], Any] = {}

    async def get(self, service: str, config: dict[str, Any], provider: str) -> Any:
        region = require(config, "region", provider)
        endpoint = config.get("endpointUrl") or None
        key = (service, region, config.get("awsAccessKeyId") or "", config.get("awsSecretAccessKey") or "",
               config.get("awsSessionToken") or "", endpoint or "")
        client = self._clients.get(key)
        if client is None:
            credentials: dict[str, str] = {}
            if config.get("awsAccessKeyId"):
                credentials["aws_access_key_id"] = config["awsAccessKeyId"]
                credentials["aws_secret_access_key"] = config.get("awsSecretAccessKey") or ""
                if config.get("awsSessionToken"):
                    credentials["aws_session_token"] = config["awsSessionToken"]
            if endpoint:
                credentials["endpoint_url"] = endpoint
            creator = self._session.create_client(
                service, region_name=region, config=BotoConfig(retries={"max_attempts": 1}), **credentials)
            client = await self._stack.enter_async_context(creator)
            self._clients[key] = client
        return client

    async def close(self) -> None:
        await self._stack.aclose()
        self._clients.clear()


class _AWSProvider:
    service = ""
    name = ""

    def __init__(self, config: dict[str, Any], clients: AWSClients) -> None:
        self._config = config
        self._clients = clients
        require(config, "region", self.name)

    async def close(self) -> None:
        """Clients are shared and closed by :class:`AWSClients`."""


class LambdaProvider(_AWSProvider):
    service, name = "lambda", "awslambda"

    def __init__(self, config: dict[str, Any], clients: AWSClients) -> None:
        super().__init__(config, clients)
        self.arn = require(config, "arn", self.name)

    async def call(self, payload: bytes, *, attempt: int | None = None,
                   headers: Mapping[str, str] | None = None) -> bytes:
        try:
            client = await self._clients.get(self.service, self._config, self.name)
            response = await client.invoke(FunctionName=self.arn, Payload=payload)
            body = await response["Payload"].read()
        except (ClientError, BotoCoreError) as exc:
            raise _client_error(f"Lambda invoke of {self.arn}", exc, lambda_call=True) from None
        if response.get("FunctionError"):
            raise ProviderError(
                f"Lambda {self.arn} returned a {response['FunctionError']} error: "
                + body[:200].decode("utf-8", errors="replace"))
        return body


class KinesisProvider(_AWSProvider):
    service, name = "kinesis", "awskinesis"

    def __init__(self, config: dict[str, Any], clients: AWSClients) -> None:
        super().__init__(config, clients)
        self.stream = require(config, "streamName", self.name)

    async def call(self, payload: bytes, *, attempt: int | None = None,
                   headers: Mapping[str, str] | None = None) -> bytes:
        try:
            client = await self._clients.get(self.service, self._config, self.name)
            response = await client.put_record(
                StreamName=self.stream, Data=payload, PartitionKey=hashlib.sha1(payload).hexdigest())
        except (ClientError, BotoCoreError) as exc:
            raise _client_error(f"Kinesis PutRecord to {self.stream}", exc) from None
        return json.dumps({"ShardId": response["ShardId"], "SequenceNumber": response["SequenceNumber"]}).encode()


class FirehoseProvider(_AWSProvider):
    service, name = "firehose", "awsfirehose"

    def __init__(self, config: dict[str, Any], clients: AWSClients) -> None:
        super().__init__(config, clients)
        self.stream = require(config, "deliveryStreamName", self.name)

    async def call(self, payload: bytes, *, attempt: int | None = None,
                   headers: Mapping[str, str] | None = None) -> bytes:
        try:
            client = await self._clients.get(self.service, self._config, self.name)
            response = await client.put_record(DeliveryStreamName=self.stream, Record={"Data": payload})
        except (ClientError, BotoCoreError) as exc:
            raise _client_error(f"Firehose PutRecord to {self.stream}", exc) from None
        return json.dumps({"RecordId": response["RecordId"]}).encode()


class SQSProvider(_AWSProvider):
    service, name = "sqs", "awssqs"

    def __init__(self, config: dict[str, Any], clients: AWSClients) -> None:
        super().__init__(config, clients)
        self.queue_url = require(config, "queueUrl", self.name)

    async def call(self, payload: bytes, *, attempt: int | None = None,
                   headers: Mapping[str, str] | None = None) -> bytes:
        try:
            client = await self._clients.get(self.service, self._config, self.name)
            response = await client.send_message(QueueUrl=self.queue_url, MessageBody=payload.decode("utf-8"))
        except (ClientError, BotoCoreError) as exc:
            raise _client_error(f"SQS SendMessage to {self.queue_url}", exc) from None
        return json.dumps({"MessageId": response["MessageId"]}).encode()
