"""Plugins do not see credentials in request headers unless granted (issue 10): ``Authorization`` (where
the Events API's own ``--events-token`` travels), ``Proxy-Authorization`` and ``Cookie`` are withheld from
system events by default; ``capabilities.sensitiveHeaders`` grants them by name (plugins.toml and
/v1/plugins). Functions keep receiving them as before. Real gateways, real WAT plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from tests.wat import kit_module

from gateway.plugins.plugin_settings import PluginSettingsError, parse_settings

TOKEN = "events-s3cret"


def echo_plugin(header: str, stage: str = "eventgateway.event.received") -> bytes:
    """Rejects (418) with the value of request header ``header`` when it sees it, in ``data.headers`` or
    in the headers of the http.request event in ``data.event``; continues when it does not."""
    return kit_module(f"""
  (data (i32.const 2048) "{stage}")
  (data (i32.const 2304) "headers")
  (data (i32.const 2368) "{header}")
  (func $on_subscriptions (result i64)
    (call $w_begin)
    (call $w_array (i32.const 1))
    (call $w_subscription (i32.const 2048) (i32.const {len(stage)}) (i32.const 0))
    (call $w_end))
  (func $on_init (param $config i32) (result i64) (global.get $CONTINUE))
  (func $reject_with (param $s i64) (result i64)
    (call $w_begin)
    (call $w_map (i32.const 2))
    (call $w_str (i32.const 1536) (i32.const 5))
    (call $w_packed_str (local.get $s))
    (call $w_str (i32.const 1600) (i32.const 6))
    (call $w_int (i64.const 418))
    (call $w_end))
  (func $on_react (param $event i32) (result i64)
    (local $s i64)
    (local.set $s (call $get_str (call $get (call $event_data (local.get $event)) (i32.const 2304) (i32.const 7))
                                 (i32.const 2368) (i32.const {len(header)})))
    (if (i64.ne (local.get $s) (i64.const -1)) (then (return (call $reject_with (local.get $s)))))
    (local.set $s (call $get_str
      (call $get (call $get (call $incoming (local.get $event)) (i32.const 1280) (i32.const 4))
                 (i32.const 2304) (i32.const 7))
      (i32.const 2368) (i32.const {len(header)})))
    (if (i64.ne (local.get $s) (i64.const -1)) (then (return (call $reject_with (local.get $s)))))
    (global.get $CONTINUE))
""")


def _write(directory: Path, name: str, wasm: bytes) -> Path:
    path = directory / f"{name}.wasm"
    path.write_bytes(wasm)
    return path


def _plugins_toml(directory: Path, tables: dict[str, tuple[Path, list[str] | None]]) -> Path:
    lines = []
    for name, (path, grants) in tables.items():
        lines += [f"[plugins.{name}]", f'path = "{path}"']
        if grants is not None:
            lines += [f"[plugins.{name}.capabilities]", f"sensitiveHeaders = {grants!r}".replace("'", '"')]
    config = directory / "plugins.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


async def _route_to(config: httpx.AsyncClient, function_url: str) -> None:
    base = "/v1/spaces/default"
    assert (await config.post(f"{base}/functions", json={
        "functionId": "fn", "type": "http", "provider": {"url": function_url, "timeout": 2}})).status_code == 201
    assert (await config.post(f"{base}/eventtypes", json={"name": "http.request"})).status_code == 201
    assert (await config.post(f"{base}/subscriptions", json={
        "type": "sync", "eventType": "http.request", "functionId": "fn", "path": "/hello",
        "method": "GET"})).status_code == 201


_SECRETS = {"Authorization": f"Bearer {TOKEN}", "Cookie": "session=c00kie", "Proxy-Authorization": "Basic cHJveHk="}


async def test_withheld_by_default_functions_still_get_them(gateway_server, function_server, tmp_path) -> None:
    """No grant: plugins reading Authorization, Cookie or Proxy-Authorization (in data.headers of
    event.received, and in the http.request event of function.invoking) find nothing, while the events
    token is checked and the function still receives every header."""
    plugins = {f"{header.lower()}-{stage.rsplit('.', 1)[-1]}": (_write(tmp_path, f"{header}-{stage}",
                                                                        echo_plugin(header, stage)), None)
               for header in _SECRETS for stage in ("eventgateway.event.received", "eventgateway.function.invoking")}
    running = await gateway_server(plugins_config=str(_plugins_toml(tmp_path, plugins)), events_token=TOKEN)
    function_server.respond(200, {"statusCode": 200, "body": "hi"})
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        await _route_to(config, function_server.url + "/fn")
        listed = (await config.get("/v1/plugins")).json()["plugins"]
        assert len(listed) == 6 and all(p["state"] == "active" for p in listed)
        assert all(p["settings"]["capabilities"] == {"kv": False, "http": [], "metrics": False, "sensitiveHeaders": []}
                   for p in listed)
        response = await events.get("/hello", headers={**_SECRETS, "X-Plain": "visible"})
        assert response.status_code == 200, response.text
        assert response.text == "hi"
        [received] = await function_server.wait_for_requests(1)
        headers = received.json["data"]["headers"]
        assert headers["Authorization"] == f"Bearer {TOKEN}" and headers["Cookie"] == "session=c00kie"
        assert headers["Proxy-Authorization"] == "Basic cHJveHk=" and headers["X-Plain"] == "visible"


async def test_granted_header_is_seen_by_that_plugin_only(gateway_server, function_server, tmp_path) -> None:
    granted = _write(tmp_path, "granted", echo_plugin("Authorization", "eventgateway.function.invoking"))
    cookie = _write(tmp_path, "cookie", echo_plugin("Cookie"))
    running = await gateway_server(plugins_config=str(_plugins_toml(tmp_path, {
        "cookie": (cookie, None), "granted": (granted, ["authorization"])})), events_token=TOKEN)
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        await _route_to(config, function_server.url + "/fn")
        shown = (await config.get("/v1/plugins/granted")).json()
        assert shown["settings"]["capabilities"] == {"kv": False, "http": [], "metrics": False,
                                                     "sensitiveHeaders": ["Authorization"]}
        response = await events.get("/hello", headers=_SECRETS)
        # 'cookie' (event.received, no grant) let it through; 'granted' saw Authorization in the
        # http.request event of function.invoking, where only a grant shows it.
        assert response.status_code == 418, response.text
        assert response.json()["errors"][0]["message"] == f"Bearer {TOKEN}"
        assert function_server.requests == []


async def test_rewrite_by_an_ungranted_plugin_keeps_the_functions_headers(gateway_server, function_server,
                                                                          tmp_path) -> None:
    """A plugin that never saw Authorization and replaces the http.request event cannot have meant to
    drop it: the function receives the replacement with the withheld headers put back."""
    from tests.wat import kit_plugin

    replacement = {"eventType": "http.request", "cloudEventsVersion": "0.1", "source": "/rewritten",
                   "eventID": "r-1", "contentType": "application/json",
                   "data": {"headers": {"X-Rewritten": "yes"}, "query": {}, "body": "", "host": "h",
                            "path": "/hello", "method": "GET", "params": {}}}
    rewriter = _write(tmp_path, "rewriter", kit_plugin([("eventgateway.function.invoking", "sync")],
                                                   {"event": replacement}))
    running = await gateway_server(plugins=[rewriter], events_token=TOKEN)
    function_server.respond(200, {"statusCode": 200, "body": "ok"})
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        await _route_to(config, function_server.url + "/fn")
        assert (await events.get("/hello", headers=_SECRETS)).status_code == 200
        [received] = await function_server.wait_for_requests(1)
        assert received.json["source"] == "/rewritten"
        assert received.json["data"]["headers"] == {"X-Rewritten": "yes", **_SECRETS}


async def test_grants_through_the_plugins_api(gateway_server, tmp_path) -> None:
    running = await gateway_server()
    wasm = echo_plugin("Authorization")
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        bad = await config.post("/v1/plugins", content=wasm, headers={"content-type": "application/wasm"},
                                params={"name": "echo", "settings": '{"capabilities": {"files": true}}'})
        assert bad.status_code == 400
        message = bad.json()["errors"][0]["message"]
        assert "capabilities.files" in message and "unknown key 'files'" in message and "sensitiveHeaders" in message
        bad = await config.post("/v1/plugins", content=wasm, headers={"content-type": "application/wasm"},
                                params={"name": "echo", "settings": '{"capabilities": {"sensitiveHeaders": ["X-Api-Key"]}}'})
        assert bad.status_code == 400 and "grantable headers: Authorization, Cookie, Proxy-Authorization" in bad.text
        created = await config.post("/v1/plugins?name=echo", content=wasm, headers={"content-type": "application/wasm"})
        assert created.status_code == 201, created.text
        assert (await events.get("/x", headers={"Authorization": "Bearer abc"})).status_code == 202
        updated = await config.put("/v1/plugins/echo", json={"capabilities": {"sensitiveHeaders": ["AUTHORIZATION"]}})
        assert updated.status_code == 200, updated.text
        assert (await config.get("/v1/plugins/echo")).json()["settings"]["capabilities"] == {
            "kv": False, "http": [], "metrics": False, "sensitiveHeaders": ["Authorization"]}
        seen = await events.get("/x", headers={"Authorization": "Bearer abc"})
        assert seen.status_code == 418 and seen.json()["errors"][0]["message"] == "Bearer abc"


def test_capabilities_validation_names_the_key() -> None:
    for data, expected in (
        ({"capabilities": {"http": True}}, "capabilities.http: must be a list of URL prefixes"),
        ({"capabilities": {"files": True}},
         "capabilities.files: unknown key 'files'; allowed keys: kv, http, metrics, sensitiveHeaders"),
        ({"capabilities": {"sensitiveHeaders": ["bad header"]}}, "'bad header' is not a header name"),
        ({"capabilities": {"sensitiveHeaders": "Authorization"}}, "capabilities.sensitiveHeaders"),
    ):
        try:
            parse_settings(data)
        except PluginSettingsError as exc:
            assert expected in str(exc), str(exc)
        else:
            raise AssertionError(f"accepted {data}")
    settings: Any = parse_settings({"capabilities": {"sensitiveHeaders": ["cookie", "Cookie", "proxy-AUTHORIZATION"]}})
    assert settings.capabilities.sensitive_headers == ["Cookie", "Proxy-Authorization"]
