"""Issue 12: a sync subscription whose Lambda call fails on credentials answers upstream's own words
(router.determineErrorMessage, 0.9.1); other failures keep "Function call failed. Please check logs.".
A real gateway, and a fake Lambda endpoint (``endpointUrl``) answering the AWS error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

ACCESS_DENIED = ("Function call failed with AccessDeniedException. The provided credentials do not have the required "
                 "IAM permissions to invoke this function. Please attach the lambda:invokeFunction permission to "
                 "these credentials.")
UNRECOGNIZED = ("Function call failed with UnrecognizedClientException. The provided credentials are invalid. "
                "Please provide valid credentials.")
EXPIRED = ("Function call failed with ExpiredTokenException. The provided security token for the function has "
           "expired. Please provide an updated security token or provide permanent credentials.")


@pytest.mark.parametrize(("code", "status", "message"), [
    ("AccessDeniedException", 403, ACCESS_DENIED),
    ("UnrecognizedClientException", 403, UNRECOGNIZED),
    ("ExpiredTokenException", 403, EXPIRED),
    ("ResourceNotFoundException", 404, "Function call failed. Please check logs."),
])
async def test_lambda_credential_errors_answer_upstreams_message(
        gateway_server: Callable[..., Any], function_server: Any, code: str, status: int, message: str) -> None:
    function_server.respond(status, {"Type": "User", "Message": "nope"}, headers={"x-amzn-ErrorType": code})
    gw = await gateway_server()
    async with httpx.AsyncClient(base_url=gw.config_url + "/v1/spaces/default", timeout=10) as api:
        created = await api.post("/functions", json={
            "functionId": "lam", "type": "awslambda",
            "provider": {"arn": "arn:aws:lambda:us-east-1:123456789012:function:lam", "region": "us-east-1",
                         "awsAccessKeyId": "AKIAEXAMPLE", "awsSecretAccessKey": "secret",
                         "endpointUrl": function_server.url}})
        assert created.status_code == 201, created.text
        assert (await api.post("/eventtypes", json={"name": "http.request"})).status_code == 201
        sub = await api.post("/subscriptions", json={"type": "sync", "eventType": "http.request",
                                                     "functionId": "lam", "path": "/lam", "method": "GET"})
        assert sub.status_code == 201, sub.text
    async with httpx.AsyncClient(base_url=gw.events_url, timeout=30) as events:
        answer = await events.get("/lam")
    assert answer.status_code == 500
    assert answer.json() == {"errors": [{"message": message}]}
