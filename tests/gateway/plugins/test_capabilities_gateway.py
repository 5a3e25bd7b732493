"""Capabilities granted per plugin (issue 13) through real gateways: ``[plugins.NAME.capabilities]`` in
plugins.toml and the ``capabilities`` object of the /v1/plugins settings; a module importing a capability
it was not granted is refused, naming the import, the grant and (plugins.toml) the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gateway.plugins.documents import write_plugin
from gateway.plugins.manager import PluginStartupError
from gateway.plugins.plugin_settings import PluginSettings
from tests.gateway.plugins.capability_plugins import rate_limit

NOT_GRANTED = ("module imports eventgateway.kv_incr, which needs the kv capability; grant kv = true to allow it")
EVENT = {"specversion": "1.0", "type": "user.created", "source": "/t", "id": "1"}
CE = {"content-type": "application/cloudevents+json"}


def _toml(directory: Path, text: str) -> Path:
    path = directory / "plugins.toml"
    path.write_text(text)
    return path


async def _send(events: httpx.AsyncClient, n: int) -> list[int]:
    return [(await events.post("/", json={**EVENT, "id": str(i)}, headers=CE)).status_code for i in range(n)]


async def test_kv_granted_in_plugins_toml_rate_limits(gateway_server, tmp_path) -> None:
    (tmp_path / "rl.wasm").write_bytes(rate_limit(2))
    config = _toml(tmp_path, '[plugins.rl]\npath = "rl.wasm"\n\n[plugins.rl.capabilities]\nkv = true\n')
    running = await gateway_server(plugins_config=str(config))
    async with httpx.AsyncClient(base_url=running.config_url) as api, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        assert await _send(events, 2) == [202, 202]
        third = await events.post("/", json=EVENT, headers=CE)
        assert third.status_code == 429 and third.json()["errors"][0]["message"] == "over the limit of 2"
        shown = (await api.get("/v1/plugins/rl")).json()
        assert shown["state"] == "active"
        assert shown["capabilities"] == {"kv": True, "http": [], "metrics": False, "sensitiveHeaders": []}
        assert shown["importedCapabilities"] == ["kv"]
        listed = (await api.get("/v1/plugins")).json()["plugins"]
        assert [p["capabilities"]["kv"] for p in listed] == [True]


async def test_ungranted_kv_stops_startup_naming_the_line(gateway_server, tmp_path) -> None:
    (tmp_path / "rl.wasm").write_bytes(rate_limit(2))
    config = _toml(tmp_path, '# limits\n[plugins.rl]\npath = "rl.wasm"\n\n[plugins.rl.capabilities]\nmetrics = true\n')
    with pytest.raises(PluginStartupError) as caught:
        await gateway_server(plugins_config=str(config))
    message = str(caught.value)
    assert message.startswith(f"{config}:5: plugins.rl.capabilities: "), message
    assert "(not_granted)" in message and NOT_GRANTED in message
    # Without a capabilities table the header's line is named.
    config = _toml(tmp_path, '[plugins.rl]\npath = "rl.wasm"\n')
    with pytest.raises(PluginStartupError) as caught:
        await gateway_server(plugins_config=str(config))
    assert str(caught.value).startswith(f"{config}:1: plugins.rl.capabilities: ") and NOT_GRANTED in str(caught.value)


async def test_flag_plugin_cannot_be_granted(gateway_server, tmp_path) -> None:
    path = tmp_path / "rl.wasm"
    path.write_bytes(rate_limit(2))
    with pytest.raises(PluginStartupError) as caught:
        await gateway_server(plugins=[path])
    assert NOT_GRANTED in str(caught.value) and "[plugins.NAME.capabilities]" in str(caught.value)


async def test_grants_through_the_plugins_api(gateway_server) -> None:
    running = await gateway_server()
    wasm = rate_limit(1)
    async with httpx.AsyncClient(base_url=running.config_url) as api, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        refused = await api.post("/v1/plugins?name=rl", content=wasm, headers={"content-type": "application/wasm"})
        assert refused.status_code == 400 and "(not_granted)" in refused.text and NOT_GRANTED in refused.text
        created = await api.post("/v1/plugins", content=wasm, headers={"content-type": "application/wasm"},
                                 params={"name": "rl", "settings": json.dumps({"capabilities": {"kv": True}})})
        assert created.status_code == 201, created.text
        assert created.json()["capabilities"]["kv"] is True and created.json()["importedCapabilities"] == ["kv"]
        assert await _send(events, 2) == [202, 429]
        # Taking the grant away is refused like the upload was, and the plugin keeps running.
        revoked = await api.put("/v1/plugins/rl", json={"capabilities": {"kv": False}})
        assert revoked.status_code == 400 and NOT_GRANTED in revoked.text
        # A settings change keeps the kv namespace (the counter is past the limit already).
        moved = await api.put("/v1/plugins/rl", json={"order": 5, "capabilities": {"kv": True, "metrics": True}})
        assert moved.status_code == 200, moved.text
        assert moved.json()["capabilities"]["metrics"] is True and moved.json()["importedCapabilities"] == ["kv"]
        assert await _send(events, 1) == [429]
        # Deleted and uploaded again, under the same name: the keys are still there (kv outlives the plugin).
        assert (await api.delete("/v1/plugins/rl")).status_code == 204
        assert await _send(events, 1) == [202]
        created = await api.post("/v1/plugins", content=wasm, headers={"content-type": "application/wasm"},
                                 params={"name": "rl", "settings": json.dumps({"capabilities": {"kv": True}})})
        assert created.status_code == 201
        assert await _send(events, 1) == [429]
        # Another name is another namespace: its own count starts at 1.
        other = await api.post("/v1/plugins", content=wasm, headers={"content-type": "application/wasm"},
                               params={"name": "rl2", "settings": json.dumps({"capabilities": {"kv": True}})})
        assert other.status_code == 201
        assert (await api.delete("/v1/plugins/rl")).status_code == 204
        assert await _send(events, 2) == [202, 429]


async def test_stored_plugin_without_its_grant_is_listed_failed(gateway_server) -> None:
    """A plugin document written without the grant (by another gateway, or an older one that did not
    check) does not load here: it is listed as failed with the not_granted reason, the gateway serves on."""
    running = await gateway_server()
    revision = await write_plugin(running.gateway.store, "rl", PluginSettings(), rate_limit(1), None)
    await running.gateway.plugins.wait_applied(revision)
    async with httpx.AsyncClient(base_url=running.config_url) as api, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        shown = (await api.get("/v1/plugins/rl")).json()
        assert shown["state"] == "failed" and shown["importedCapabilities"] is None
        assert shown["lastFault"]["kind"] == "not_granted" and NOT_GRANTED in shown["lastFault"]["message"]
        assert await _send(events, 2) == [202, 202]


@pytest.mark.parametrize(("capabilities", "line", "says"), [
    ('http = ["https://a.example/", "ftp://b.example/"]', 4,
     "plugins.rl.capabilities.http: http[1]: http grant 'ftp://b.example/': only http and https URLs are allowed"),
    ('http = ["https://user@a.example/"]', 4, "a URL must not contain user information"),
    ('http = ["https://a.example/../admin"]', 4, "dot segments"),
    ('http = [{prefix = "http://10.0.0.1/", private = true}]', 4,
     "http[0]: unknown key 'private'; allowed keys: prefix, privateAddresses"),
    ('http = [{privateAddresses = true}]', 4, "http[0]: 'prefix' (the URL prefix, a string) is required"),
    ('http = [{prefix = "http://a/", privateAddresses = "yes"}]', 4, "privateAddresses must be true or false"),
    ('http = [7]', 4, "http[0]: must be a URL prefix string or a table"),
    ('http = "https://a.example/"', 4, "must be a list of URL prefixes"),
    (f'http = [{", ".join(chr(34) + f"https://h{i}.example/" + chr(34) for i in range(101))}]', 4,
     "101 URL prefixes, over the most of 100 per plugin"),
    (f'http = ["https://{"a" * 5000}.example/"]', 4, "http[0]: a URL prefix is 5017 characters, over the most of 2048"),
    ('kv = "true"', 4, "plugins.rl.capabilities.kv: Input should be a valid boolean"),
    ('metrics = 1', 4, "plugins.rl.capabilities.metrics: Input should be a valid boolean"),
    ('files = true', 4, "unknown key 'files'; allowed keys: kv, http, metrics, sensitiveHeaders"),
], ids=lambda value: value[:40] if isinstance(value, str) else str(value))
async def test_hostile_grants_in_plugins_toml(gateway_server, tmp_path, capabilities, line, says) -> None:
    (tmp_path / "rl.wasm").write_bytes(rate_limit(2))
    config = _toml(tmp_path, f'[plugins.rl]\npath = "rl.wasm"\n[plugins.rl.capabilities]\n{capabilities}\n')
    with pytest.raises(PluginStartupError) as caught:
        await gateway_server(plugins_config=str(config))
    message = str(caught.value)
    assert message.startswith(f"{config}:{line}: "), message
    assert says in message, message
    assert len(message) < 1000  # a hostile value is not echoed back whole


async def test_hostile_grants_through_the_api(gateway_server) -> None:
    running = await gateway_server()
    wasm = rate_limit(1)
    async with httpx.AsyncClient(base_url=running.config_url) as api:
        for capabilities, says in (
            ({"http": [f"https://h{i}.example/" for i in range(101)]}, "101 URL prefixes, over the most of 100"),
            ({"http": ["http://a.example\\@evil/"]}, "backslashes"),
            ({"http": [{"prefix": "https://a.example/", "privateAddresses": 1}]}, "privateAddresses must be"),
            ({"http": ["x" * 100_000]}, "over the most of 2048"),
            ({"kv": 1}, "capabilities.kv"),
        ):
            refused = await api.post("/v1/plugins", files={"module": ("rl.wasm", wasm)},  # multipart: no URL limit
                                     data={"name": "rl", "settings": json.dumps({"capabilities": capabilities})})
            assert refused.status_code == 400, refused.text
            assert says in refused.text and len(refused.text) < 2000, refused.text
        created = await api.post("/v1/plugins", content=wasm, headers={"content-type": "application/wasm"},
                                 params={"name": "rl", "settings": json.dumps({"capabilities": {
                                     "kv": True, "http": ["https://auth.example.com/", "https://auth.example.com/",
                                                          {"prefix": "http://auth.internal:8080/",
                                                           "privateAddresses": True},
                                                          {"prefix": "https://b.example/"}]}})})
        assert created.status_code == 201, created.text
        # Duplicates dropped, a table without privateAddresses written as its prefix.
        assert created.json()["capabilities"]["http"] == [
            "https://auth.example.com/", {"prefix": "http://auth.internal:8080/", "privateAddresses": True},
            "https://b.example/"]
        openapi = (await api.get("/v1/openapi.json")).json()
        schema = openapi["paths"]["/v1/plugins/{name}"]["get"]["responses"]["200"]["content"]["application/json"]
        properties = schema["schema"]["properties"]
        assert properties["capabilities"]["properties"]["http"]["maxItems"] == 100
        assert "importedCapabilities" in properties
