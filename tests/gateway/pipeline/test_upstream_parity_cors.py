"""CORS preflight through a real gateway: ``Access-Control-Allow-Headers`` lists the requested headers
canonicalised as rs/cors v1.2 (upstream's CORS library) did: ``x-api-key`` -> ``X-Api-Key``."""

from __future__ import annotations

import httpx
import pytest

from gateway.routing.cors import canonical_header_list


@pytest.mark.parametrize(("value", "expected"), [
    ("x-api-key", ["X-Api-Key"]),
    ("x-api-key, content-type", ["X-Api-Key", "Content-Type"]),
    ("CONTENT-TYPE,x-requested-with", ["Content-Type", "X-Requested-With"]),
    ("x_custom_thing", ["X_Custom_Thing"]),
    ("  x-a ,, x-b  ", ["X-A", "X-B"]),
    ("", []),
])
def test_canonical_header_list_is_rs_cors_parse_header_list(value: str, expected: list[str]) -> None:
    assert canonical_header_list(value) == expected


async def test_preflight_allow_headers_are_canonicalised(gateway_server) -> None:
    running = await gateway_server()
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        assert (await config.post("/v1/spaces/default/cors", json={
            "method": "POST", "path": "/api", "allowedOrigins": ["https://app.example"],
            "allowedMethods": ["POST"], "allowedHeaders": ["Content-Type", "X-Api-Key"]})).status_code == 201
        response = await events.options("/api", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type"})
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-headers"] == "X-Api-Key, Content-Type"
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        refused = await events.options("/api", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-other"})
        assert refused.status_code == 403
