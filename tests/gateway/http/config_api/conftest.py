"""A gateway on the memory store and an httpx client on its Config API, for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest


@pytest.fixture
async def gw(gateway_server: Callable[..., Any]) -> Any:
    return await gateway_server()


@pytest.fixture
async def api(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gw.config_url + "/v1/spaces/default", timeout=10) as client:
        yield client


@pytest.fixture
async def root(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gw.config_url, timeout=10) as client:
        yield client


def http_function(function_id: str = "f1", url: str = "http://127.0.0.1:9/fn", **extra: Any) -> dict[str, Any]:
    return {"functionId": function_id, "type": "http", "provider": {"url": url}, **extra}


def assert_error(response: httpx.Response, status: int, *fragments: str) -> str:
    """The upstream error shape, with a message naming what was wrong."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["errors"] and len(body["errors"]) == 1, body
    message = body["errors"][0]["message"]
    for fragment in fragments:
        assert fragment in message, message
    return message
