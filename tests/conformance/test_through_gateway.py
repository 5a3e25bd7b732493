"""Every language's three examples loaded together into a real running gateway (both APIs on Hypercorn,
configured over HTTP, events sent over HTTP to a real function server): the same answers as through
`wasm_abi.Plugin` alone, now on the event path."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import httpx
import pytest

from plugin_examples.build import LANGUAGES
from tests.conformance.conftest import built_example

CE = {"content-type": "application/cloudevents+json"}


def plugins_toml(lang: str, directory: Path) -> Path:
    """logger first, then guard, then enricher, each with the config the scenarios use."""
    paths = {example: built_example(lang, example) for example in ("logger", "guard", "enricher")}
    text = f"""
[plugins.logger]
path = "{paths['logger']}"
order = 1

[plugins.guard]
path = "{paths['guard']}"
order = 2

[plugins.guard.config]
denyTypes = ["user.deleted"]
denyData = {{ role = "root" }}
status = 451

[plugins.enricher]
path = "{paths['enricher']}"
order = 3

[plugins.enricher.config]
fields = {{ region = "eu-west-1" }}
"""
    file = directory / "plugins.toml"
    file.write_text(text)
    return file


def _event(event_type: str, event_id: str, data: object) -> str:
    return json.dumps({"specversion": "1.0", "type": event_type, "source": "/t", "id": event_id, "data": data})


async def _plugin_log(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 10.0) -> None:
    async def seen() -> None:
        while not any(text in record.getMessage() for record in caplog.records):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(seen(), timeout)


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_examples_on_a_running_gateway(
    lang: str, gateway_server, function_server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wasm_abi.plugin")
    running = await gateway_server(plugins_config=str(plugins_toml(lang, tmp_path)))
    function_server.respond(200, {"ok": True})
    base = "/v1/spaces/default"
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        assert (await config.post(f"{base}/functions", json={
            "functionId": "fn", "type": "http", "provider": {"url": function_server.url + "/fn"}})).status_code == 201
        for name in ("user.created", "user.deleted"):
            assert (await config.post(f"{base}/eventtypes", json={"name": name})).status_code == 201
            assert (await config.post(f"{base}/subscriptions", json={
                "type": "sync", "eventType": name, "functionId": "fn", "path": "/"})).status_code == 201

        # guard: a denied type and a denied data field get the configured status and message
        refused = await events.post("/", content=_event("user.deleted", "d-1", {"name": "ada"}), headers=CE)
        assert refused.status_code == 451
        assert refused.json() == {"errors": [{"message": "guard: event type user.deleted is denied"}]}
        refused = await events.post("/", content=_event("user.created", "c-0", {"role": "root"}), headers=CE)
        assert refused.status_code == 451
        assert refused.json() == {"errors": [{"message": "guard: data field role is denied"}]}

        # enricher: the function receives the event with its data enriched
        accepted = await events.post("/", content=_event("user.created", "c-1", {"name": "ada"}), headers=CE)
        assert accepted.status_code == 200, accepted.text
        (request,) = await function_server.wait_for_requests(1)
        assert request.json == {
            "specversion": "1.0", "type": "user.created", "source": "/t", "id": "c-1",
            "data": {"name": "ada", "traceId": "c-1", "functionId": "fn", "region": "eu-west-1"},
        }

    # logger saw all three events; enricher counted the invocation asynchronously
    for event_type in ("user.deleted", "user.created"):
        await _plugin_log(caplog, f"[plugin logger] received event {event_type}")
    await _plugin_log(caplog, "[plugin enricher] function fn invoked: 1 ok, 0 failed")


async def test_quick_start_loads_the_wat_logger_source(
    gateway_server, function_server, caplog: pytest.LogCaptureFixture
) -> None:
    """The README's quick start: `serve --dev --plugin plugin_examples/wat/logger.wat` (text, not binary)."""
    from plugin_examples.build import EXAMPLES_DIR

    caplog.set_level(logging.INFO, logger="wasm_abi.plugin")
    running = await gateway_server(plugins=[EXAMPLES_DIR / "wat" / "logger.wat"])
    async with httpx.AsyncClient(base_url=running.events_url) as events:
        response = await events.post("/", content=_event("user.created", "q-1", {}), headers=CE)
        assert response.status_code == 202
    await _plugin_log(caplog, "[plugin logger] received event user.created")
