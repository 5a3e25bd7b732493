"""A plugin granted http waits on the network in its sync reactions: they run on its own threads, never on
the event loop, which keeps answering other requests meanwhile. A real gateway process, a real (slow)
token server, a WAT plugin calling ``http_request``."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.gateway.plugins.capability_plugins import http_call, rate_limit

EVENT = {"specversion": "1.0", "type": "user.created", "source": "/t", "id": "1"}
CE = {"content-type": "application/cloudevents+json"}


async def test_slow_token_server_does_not_block_the_loop(gateway_process, function_server, tmp_path) -> None:
    function_server.respond(200, {"ok": True}, delay=0.3)
    (tmp_path / "auth.wasm").write_bytes(http_call(function_server.url + "/verify", timeout_ms=2000))
    config = tmp_path / "plugins.toml"
    config.write_text(f'[plugins.auth]\npath = "{tmp_path / "auth.wasm"}"\n'
                      f'[plugins.auth.limits]\nsync_timeout = 1.0\n'
                      f'[plugins.auth.capabilities]\nhttp = ["{function_server.url}/verify"]\n')
    gateway = await asyncio.to_thread(gateway_process, "--plugins-config", str(config))
    async with httpx.AsyncClient(base_url=gateway.config_url, timeout=10) as api, \
            httpx.AsyncClient(base_url=gateway.events_url, timeout=10) as events:
        shown = (await api.get("/v1/plugins/auth")).json()
        assert shown["capabilities"]["http"] == [function_server.url + "/verify"]
        assert shown["importedCapabilities"] == ["http"]
        started = time.monotonic()
        sent = asyncio.create_task(events.post("/", json=EVENT, headers=CE))
        await function_server.wait_for_requests(1)  # the plugin is waiting on the token server now
        answered = []  # seconds each request took, answered while the event's reaction waited
        while not sent.done():
            # Config API requests, served by the same event loop as the Events API (an event would go
            # through the plugin too: plugins see every event).
            before = time.monotonic()
            status = (await api.get("/v1/status")).status_code
            listed = (await api.get("/v1/plugins")).status_code
            assert (status, listed) == (200, 200)
            if not sent.done():
                answered.append(time.monotonic() - before)
        response = await sent
        elapsed = time.monotonic() - started
    assert response.status_code == 202, response.text
    assert elapsed >= 0.3
    # Several requests answered while the reaction waited (a loop blocked by the wait answers none before
    # the event's answer): the mechanism, not a latency claim.
    assert len(answered) >= 3, answered
    [request] = function_server.requests[:1]
    assert request.method == "POST" and request.path == "/verify"


async def test_http_grant_moves_sync_reactions_off_the_loop(gateway_server, function_server, tmp_path) -> None:
    """Even with the default sync_timeout (0.05 s, short enough to run inline) a plugin granted http runs
    its sync reactions on its threads; a kv plugin on the memory backend (no waiting) stays inline."""
    (tmp_path / "auth.wasm").write_bytes(http_call(function_server.url + "/verify"))
    (tmp_path / "rl.wasm").write_bytes(rate_limit(10))
    config = tmp_path / "plugins.toml"
    config.write_text(f'[plugins.auth]\npath = "auth.wasm"\n[plugins.auth.capabilities]\n'
                      f'http = ["{function_server.url}/"]\n'
                      '[plugins.rl]\npath = "rl.wasm"\n[plugins.rl.capabilities]\nkv = true\n')
    running = await gateway_server(plugins_config=str(config))
    plugins = {p.name: p for p in running.gateway.plugins.current().plugins}
    assert plugins["auth"].host.may_wait and not plugins["auth"].inline
    assert not plugins["rl"].host.may_wait and plugins["rl"].inline
    async with httpx.AsyncClient(base_url=running.events_url) as events:
        assert (await events.post("/", json=EVENT, headers=CE)).status_code == 202
    [request] = await function_server.wait_for_requests(1)
    assert request.path == "/verify"


async def test_request_outside_the_grant_is_denied(gateway_server, function_server, tmp_path) -> None:
    """The plugin asks for /verify but is granted only /other/: denied (502 from the plugin), nothing sent."""
    (tmp_path / "auth.wasm").write_bytes(http_call(function_server.url + "/verify"))
    config = tmp_path / "plugins.toml"
    config.write_text(f'[plugins.auth]\npath = "auth.wasm"\n[plugins.auth.capabilities]\n'
                      f'http = ["{function_server.url}/other/"]\n')
    running = await gateway_server(plugins_config=str(config))
    async with httpx.AsyncClient(base_url=running.events_url) as events:
        response = await events.post("/", json=EVENT, headers=CE)
    assert response.status_code == 502 and response.json()["errors"][0]["message"] == "http_request failed"
    assert function_server.requests == []
