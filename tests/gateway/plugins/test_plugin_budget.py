"""The budget of all plugins together (issue 10): ``--plugins-max-memory`` (sum of pool_size x
max_memory_bytes), ``--plugins-max-instances`` (sum of pool_size) and ``--plugins-max-threads`` (sync
threads plus the shared async pool). A plugin that would go over is refused (API: 400) or listed as
failed naming the budget; the plugins already loaded keep working. Real gateways, real WAT plugins."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.wat import kit_plugin

from gateway.plugins.manager import PluginStartupError

MIB = 1024 * 1024
GUARD = kit_plugin(reaction={"error": "guarded", "status": 409})
PASS = kit_plugin(reaction=None)


async def _upload(config: httpx.AsyncClient, name: str, wasm: bytes, limits: dict[str, Any] | None = None,
                  order: int = 0) -> httpx.Response:
    settings = json.dumps({"limits": limits or {}, "order": order})
    return await config.post("/v1/plugins", content=wasm, headers={"content-type": "application/wasm"},
                             params={"name": name, "settings": settings})


async def _guarded(events: httpx.AsyncClient) -> None:
    began = time.monotonic()
    response = await events.post("/", json={"specversion": "1.0", "type": "a.b", "source": "/", "id": "1"},
                                 headers={"content-type": "application/cloudevents+json"})
    assert response.status_code == 409 and "guarded" in response.text, response.text
    assert time.monotonic() - began < 10.0  # a hang guard: the plugin answered


@pytest.mark.parametrize(("budget", "limits", "flag"), [
    ({"plugins_max_instances": 6}, {"pool_size": 4}, "--plugins-max-instances"),
    ({"plugins_max_memory": 300 * MIB}, {"pool_size": 1, "max_memory_bytes": 64 * MIB}, "--plugins-max-memory"),
    ({"plugins_max_threads": 10}, {"pool_size": 4}, "--plugins-max-threads"),
])
async def test_upload_over_the_budget_is_refused_and_the_others_keep_working(gateway_server, budget, limits,
                                                                             flag) -> None:
    running = await gateway_server(**budget)
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        assert (await _upload(config, "guard", GUARD)).status_code == 201  # 4 x 64 MiB, 4 instances, 4 threads
        refused = await _upload(config, "extra", PASS, limits)
        assert refused.status_code == 400, refused.text
        message = refused.json()["errors"][0]["message"]
        assert "plugin 'extra' cannot be loaded (budget)" in message and flag in message, message
        assert "over the budget of all plugins together" in message
        listed = {p["name"]: p["state"] for p in (await config.get("/v1/plugins")).json()["plugins"]}
        assert listed == {"guard": "active"}
        await _guarded(events)
        # Within the budget, the same upload is accepted.
        assert (await _upload(config, "small", PASS, {"pool_size": 1, "max_memory_bytes": 2 * MIB})).status_code == 201


async def test_hostile_ceiling_plugin_is_refused_fast(gateway_server) -> None:
    """pool_size 64 x 4 GiB is within every per-plugin ceiling but promises 256 GiB: refused by the
    default memory budget (this machine's memory) at once, before anything is compiled or stored."""
    running = await gateway_server()
    async with httpx.AsyncClient(base_url=running.config_url, timeout=30) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        assert (await _upload(config, "guard", GUARD)).status_code == 201
        began = time.monotonic()
        refused = await _upload(config, "huge", PASS, {"pool_size": 64, "max_memory_bytes": 4 * 1024 * MIB})
        assert time.monotonic() - began < 20.0  # a hang guard; nothing compiled or stored: the 404 below
        assert refused.status_code == 400 and "--plugins-max-memory" in refused.text, refused.text
        assert (await config.get("/v1/plugins/huge")).status_code == 404
        await _guarded(events)


async def test_gateway_with_a_smaller_budget_lists_the_stored_plugin_as_failed(gateway_server, tmp_path) -> None:
    db = f"sqlite:{tmp_path / 'shared.db'}"
    roomy = await gateway_server(db=db)
    tight = await gateway_server(db=db, plugins_max_instances=5)
    async with httpx.AsyncClient(base_url=roomy.config_url) as config:
        assert (await _upload(config, "guard", GUARD, order=1)).status_code == 201
        assert (await _upload(config, "second", PASS, {"pool_size": 2}, order=2)).status_code == 201
    manager = tight.gateway.plugins
    assert await manager.wait_until(lambda: manager.status("second") is not None
                                    and manager.status("guard") is not None, timeout=10)
    guard, second = manager.status("guard"), manager.status("second")
    assert guard.state == "active"
    assert second.state == "failed" and second.last_fault["kind"] == "budget"
    assert "--plugins-max-instances" in second.last_fault["message"]
    async with httpx.AsyncClient(base_url=tight.events_url) as events:
        await _guarded(events)


async def test_flag_plugins_over_the_budget_stop_start_up_naming_it(gateway_server, tmp_path: Path) -> None:
    paths = []
    for name in ("one", "two"):
        path = tmp_path / f"{name}.wasm"
        path.write_bytes(PASS)
        paths.append(path)
    with pytest.raises(PluginStartupError) as caught:
        await gateway_server(plugins=paths, plugins_max_instances=7)
    message = str(caught.value)
    assert message.startswith(f"--plugin {paths[1]}: cannot load the plugin (budget)"), message
    assert "--plugins-max-instances" in message
