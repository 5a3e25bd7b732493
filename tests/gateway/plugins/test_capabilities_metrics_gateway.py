"""The metrics capability on a real gateway's ``/v1/metrics``: plugin-defined series as
``eventgateway_plugin_custom_<name>{plugin=...}``, the series cap, a name used with two kinds by two plugins,
and the series' lifetime (kept across a reload, gone with the plugin). Parsed with prometheus_client's parser."""

from __future__ import annotations

import json
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.plugins.capability_plugins import COUNTER, GAUGE_SET, HISTOGRAM, metric_calls
from wasm_abi.plugin_metrics import BUCKETS

EVENT = {"specversion": "1.0", "type": "user.created", "source": "/t", "id": "1"}
CE = {"content-type": "application/cloudevents+json"}

METER = metric_calls([
    (COUNTER, "hits", {"route": "a"}, 1.0),
    (COUNTER, "bytes_total", {}, 10.0),
    (GAUGE_SET, "level", {}, 7.0),
    (HISTOGRAM, "latency", {"route": "a"}, 0.03),
])


async def _scrape(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get("/v1/metrics")
    assert response.status_code == 200
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def _samples(family: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


async def _upload(api: httpx.AsyncClient, name: str, wasm: bytes, settings: dict[str, Any]) -> None:
    created = await api.post("/v1/plugins", content=wasm, headers={"content-type": "application/wasm"},
                             params={"name": name, "settings": json.dumps(settings)})
    assert created.status_code == 201, created.text


async def test_custom_series_on_metrics(gateway_server, tmp_path) -> None:
    (tmp_path / "meter.wasm").write_bytes(METER)
    config = tmp_path / "plugins.toml"
    config.write_text('[plugins.meter]\npath = "meter.wasm"\n[plugins.meter.capabilities]\nmetrics = true\n')
    running = await gateway_server(plugins_config=str(config))
    async with httpx.AsyncClient(base_url=running.config_url) as api, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        for i in range(3):
            assert (await events.post("/", json={**EVENT, "id": str(i)}, headers=CE)).status_code == 202
        assert (await api.get("/v1/plugins/meter")).json()["importedCapabilities"] == ["metrics"]
        families = await _scrape(api)
        hits = families["eventgateway_plugin_custom_hits"]
        assert hits.type == "counter"
        assert _samples(hits) == {("eventgateway_plugin_custom_hits_total", (("plugin", "meter"), ("route", "a"))): 3.0}
        # A counter named ..._total keeps one _total.
        assert _samples(families["eventgateway_plugin_custom_bytes"]) == {
            ("eventgateway_plugin_custom_bytes_total", (("plugin", "meter"),)): 30.0}
        level = families["eventgateway_plugin_custom_level"]
        assert level.type == "gauge" and _samples(level) == {
            ("eventgateway_plugin_custom_level", (("plugin", "meter"),)): 7.0}
        latency = families["eventgateway_plugin_custom_latency"]
        assert latency.type == "histogram"
        samples = _samples(latency)
        labels = (("plugin", "meter"), ("route", "a"))
        assert samples[("eventgateway_plugin_custom_latency_count", labels)] == 3.0
        assert abs(samples[("eventgateway_plugin_custom_latency_sum", labels)] - 0.09) < 1e-9
        buckets = {dict(k[1])["le"]: v for k, v in samples.items() if k[0].endswith("_bucket")}
        assert len(buckets) == len(BUCKETS) + 1
        assert buckets["0.025"] == 0.0 and buckets["0.05"] == 3.0 and buckets["+Inf"] == 3.0
        dropped = families["eventgateway_plugin_metric_series_dropped"]
        assert _samples(dropped) == {("eventgateway_plugin_metric_series_dropped_total", (("plugin", "meter"),)): 0.0}


async def test_series_cap_counts_the_dropped(gateway_server) -> None:
    running = await gateway_server()
    flood = metric_calls([(COUNTER, "calls", {"k": str(i)}, 1.0) for i in range(5)])
    async with httpx.AsyncClient(base_url=running.config_url) as api, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        await _upload(api, "flood", flood, {"capabilities": {"metrics": True}, "limits": {"max_metric_series": 2}})
        for i in range(4):
            assert (await events.post("/", json={**EVENT, "id": str(i)}, headers=CE)).status_code == 202
        families = await _scrape(api)
        assert len(families["eventgateway_plugin_custom_calls"].samples) == 2
        assert _samples(families["eventgateway_plugin_metric_series_dropped"]) == {
            ("eventgateway_plugin_metric_series_dropped_total", (("plugin", "flood"),)): 12.0}


async def test_one_name_two_kinds_keeps_the_exposition_valid(gateway_server, caplog) -> None:
    """Plugin a's counter 'hits' and plugin b's gauge 'hits' (and b's gauge 'latency_count', a sample name
    of a's histogram): the first family keeps the name, b's are left out and counted, the scrape parses."""
    running = await gateway_server()
    first = metric_calls([(COUNTER, "hits", {}, 1.0), (HISTOGRAM, "latency", {}, 0.2)])
    second = metric_calls([(GAUGE_SET, "hits", {}, 5.0), (GAUGE_SET, "latency_count", {}, 1.0),
                           (GAUGE_SET, "own", {}, 2.0)])
    async with httpx.AsyncClient(base_url=running.config_url) as api, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        await _upload(api, "b", second, {"capabilities": {"metrics": True}})
        await _upload(api, "a", first, {"capabilities": {"metrics": True}, "order": -1})
        assert (await events.post("/", json=EVENT, headers=CE)).status_code == 202
        families = await _scrape(api)
        hits = families["eventgateway_plugin_custom_hits"]
        # a's counter was recorded first (a runs first) but at the first scrape both are new: plugin-name
        # order decides, and the owner keeps the name at later scrapes.
        assert hits.type == "counter" and {s.labels["plugin"] for s in hits.samples} == {"a"}
        assert "eventgateway_plugin_custom_latency_count" not in families
        assert families["eventgateway_plugin_custom_latency"].type == "histogram"
        assert _samples(families["eventgateway_plugin_custom_own"]) == {
            ("eventgateway_plugin_custom_own", (("plugin", "b"),)): 2.0}
        conflicts = _samples(families["eventgateway_plugin_metric_conflicts"])
        assert conflicts == {("eventgateway_plugin_metric_conflicts", (("plugin", "a"),)): 0.0,
                             ("eventgateway_plugin_metric_conflicts", (("plugin", "b"),)): 2.0}
        assert "plugin 'b': its gauge eventgateway_plugin_custom_hits is not exported" in caplog.text
        # The owner stays the owner; when a goes, b's gauge takes the name at the next scrape.
        assert (await _scrape(api))["eventgateway_plugin_custom_hits"].type == "counter"
        assert (await api.delete("/v1/plugins/a")).status_code == 204
        families = await _scrape(api)
        assert families["eventgateway_plugin_custom_hits"].type == "gauge"
        assert _samples(families["eventgateway_plugin_custom_latency_count"]) == {
            ("eventgateway_plugin_custom_latency_count", (("plugin", "b"),)): 1.0}
        assert _samples(families["eventgateway_plugin_metric_conflicts"]) == {
            ("eventgateway_plugin_metric_conflicts", (("plugin", "b"),)): 0.0}


async def test_series_survive_a_reload_and_go_with_the_plugin(gateway_server) -> None:
    running = await gateway_server()
    counter = metric_calls([(COUNTER, "seen", {}, 1.0)])
    async with httpx.AsyncClient(base_url=running.config_url) as api, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        await _upload(api, "m", counter, {"capabilities": {"metrics": True}})
        assert (await events.post("/", json=EVENT, headers=CE)).status_code == 202
        # New settings and then a new module: the plugin is loaded again, its series carry over.
        assert (await api.put("/v1/plugins/m", json={"order": 3, "capabilities": {"metrics": True}})).status_code == 200
        other = metric_calls([(COUNTER, "seen", {}, 2.0)])
        replaced = await api.put("/v1/plugins/m", content=other, headers={"content-type": "application/wasm"})
        assert replaced.status_code == 200, replaced.text
        assert (await events.post("/", json=EVENT, headers=CE)).status_code == 202
        assert _samples((await _scrape(api))["eventgateway_plugin_custom_seen"]) == {
            ("eventgateway_plugin_custom_seen_total", (("plugin", "m"),)): 3.0}
        # The plugin deleted: its series go with it.
        assert (await api.delete("/v1/plugins/m")).status_code == 204
        families = await _scrape(api)
        assert "eventgateway_plugin_custom_seen" not in families
        assert families["eventgateway_plugin_metric_series_dropped"].samples == []
        # Added again: a fresh start.
        await _upload(api, "m", counter, {"capabilities": {"metrics": True}})
        assert (await events.post("/", json=EVENT, headers=CE)).status_code == 202
        assert _samples((await _scrape(api))["eventgateway_plugin_custom_seen"]) == {
            ("eventgateway_plugin_custom_seen_total", (("plugin", "m"),)): 1.0}
