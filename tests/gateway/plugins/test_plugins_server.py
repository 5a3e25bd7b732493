"""Plugins in production, through the real server: ``python -m gateway serve`` as a subprocess, real
HTTP clients, Wasm plugins built from WAT in the run."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway_fixtures import GatewayProcess, launch_gateway
from tests.wat import TRAP_ON_BOOM, example, kit_module, write

from .servers import function_server

# `python -m gateway serve` subprocesses
pytestmark = pytest.mark.slow

CE = "application/cloudevents+json"


def cloudevent(event_type: str, **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "type": event_type, "id": str(uuid.uuid4()), "source": "/tests",
            "datacontenttype": "application/json", "data": data}


def send(gateway: GatewayProcess, event_type: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{gateway.events_url}/", content=json.dumps(cloudevent(event_type)),
                      headers={"Content-Type": CE, **(headers or {})}, timeout=10)


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Any]:
    """Start gateways (``start(*args, env=...)``); every one is stopped at the end of the test."""
    started: list[GatewayProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, wait: bool = True, name: str = "gateway") -> GatewayProcess:
        gateway = launch_gateway(*args, log_path=tmp_path / f"{name}-{len(started)}.log", env=env, wait=wait)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


def upload(gateway: GatewayProcess, name: str, wasm: bytes, settings: dict[str, Any] | None = None,
           headers: dict[str, str] | None = None) -> httpx.Response:
    params = {"name": name}
    if settings is not None:
        params["settings"] = json.dumps(settings)
    return httpx.post(f"{gateway.config_url}/v1/plugins", params=params, content=wasm,
                      headers={"Content-Type": "application/wasm", **(headers or {})}, timeout=30)


def plugins(gateway: GatewayProcess) -> dict[str, dict[str, Any]]:
    response = httpx.get(f"{gateway.config_url}/v1/plugins", timeout=10)
    assert response.status_code == 200, response.text
    return {p["name"]: p for p in response.json()["plugins"]}


def test_plugin_lifecycle_through_the_api(gateways: Any) -> None:
    gateway = gateways("--db", "memory")
    assert send(gateway, "blocked").status_code == 202

    created = upload(gateway, "guard", example("guard"), {"config": {"denyTypes": ["blocked"]}, "order": 5})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "guard" and body["state"] == "active" and body["source"] == "api"
    assert body["sha256"] == hashlib.sha256(example("guard")).hexdigest()
    assert body["subscriptions"] == [{"eventType": "eventgateway.event.received", "type": "sync"}]
    # The change is live on this gateway as soon as the upload answered.
    refused = send(gateway, "blocked")
    assert refused.status_code == 403
    assert refused.json() == {"errors": [{"message": "guard: event type blocked is denied"}]}
    assert send(gateway, "fine").status_code == 202

    # multipart upload of a second plugin, with its settings in a part.
    multipart = httpx.post(f"{gateway.config_url}/v1/plugins",
                           files={"module": ("logger.wasm", example("logger"), "application/wasm")},
                           data={"settings": json.dumps({"name": "logger", "order": 1, "policy": "open"})},
                           timeout=30)
    assert multipart.status_code == 201, multipart.text
    listed = plugins(gateway)
    assert list(listed) == ["logger", "guard"]  # run order
    assert listed["logger"]["settings"]["policy"] == "open"
    assert listed["guard"]["counters"]["reactions"]["sync"] == 2

    shown = httpx.get(f"{gateway.config_url}/v1/plugins/guard", timeout=10)
    assert shown.status_code == 200 and shown.json()["settings"]["config"] == {"denyTypes": ["blocked"]}

    updated = httpx.put(f"{gateway.config_url}/v1/plugins/guard", json={"config": {"denyTypes": ["other"]}},
                        timeout=30)
    assert updated.status_code == 200, updated.text
    assert send(gateway, "blocked").status_code == 202
    assert send(gateway, "other").status_code == 403

    disabled = httpx.post(f"{gateway.config_url}/v1/plugins/guard/disable", timeout=30)
    assert disabled.status_code == 200 and disabled.json()["state"] == "disabled"
    assert send(gateway, "other").status_code == 202
    assert plugins(gateway)["guard"]["state"] == "disabled"
    enabled = httpx.post(f"{gateway.config_url}/v1/plugins/guard/enable", timeout=30)
    assert enabled.status_code == 200 and enabled.json()["state"] == "active"
    assert send(gateway, "other").status_code == 403

    # Replacing the module keeps the settings; the logger never rejects anything.
    replaced = httpx.put(f"{gateway.config_url}/v1/plugins/guard", content=example("logger"),
                         headers={"Content-Type": "application/wasm"}, timeout=30)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["sha256"] == hashlib.sha256(example("logger")).hexdigest()
    assert replaced.json()["settings"]["config"] == {"denyTypes": ["other"]}
    assert send(gateway, "other").status_code == 202

    deleted = httpx.delete(f"{gateway.config_url}/v1/plugins/guard", timeout=30)
    assert deleted.status_code == 204
    assert list(plugins(gateway)) == ["logger"]
    metrics = httpx.get(f"{gateway.config_url}/v1/metrics", timeout=10).text
    assert 'eventgateway_config_requests_total{operation="create",resource="plugin",space=""} 2.0' in metrics
    described = httpx.get(f"{gateway.config_url}/v1/openapi.json", timeout=10).json()["paths"]
    assert {"post", "get"} <= described["/v1/plugins"].keys() and "/v1/plugins/{name}/disable" in described
    missing = httpx.get(f"{gateway.config_url}/v1/plugins/guard", timeout=10)
    assert missing.status_code == 404 and missing.json() == {"errors": [{"message": "plugin 'guard' not found"}]}


def test_uploads_as_clients_send_them(gateways: Any) -> None:
    """`curl --data-binary @guard.wasm` (form-urlencoded by default) and a multipart form whose one file
    part is not called 'module' and carries no name: the module is recognized, named after its file."""
    gateway = gateways("--db", "memory")
    curl_like = httpx.post(f"{gateway.config_url}/v1/plugins", params={"name": "raw"}, content=example("guard"),
                           headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=30)
    assert curl_like.status_code == 201, curl_like.text
    form = httpx.post(f"{gateway.config_url}/v1/plugins", timeout=30,
                      files={"file": ("logger.wasm", example("logger"), "application/octet-stream")})
    assert form.status_code == 201, form.text
    assert form.json()["name"] == "logger"
    assert set(plugins(gateway)) == {"raw", "logger"}
    text = httpx.post(f"{gateway.config_url}/v1/plugins", params={"name": "x"}, content=b"hello",
                      headers={"Content-Type": "text/plain"}, timeout=30)
    assert text.status_code == 415 and "not a Wasm binary" in text.json()["errors"][0]["message"]
    # A settings PUT without a JSON content type is still read as settings.
    put = httpx.put(f"{gateway.config_url}/v1/plugins/raw", content=json.dumps({"order": 3}),
                    headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=30)
    assert put.status_code == 200 and put.json()["settings"]["order"] == 3


def test_bad_uploads_are_refused_with_the_reason(gateways: Any) -> None:
    gateway = gateways("--db", "memory")
    junk = upload(gateway, "junk", b"\x00asm\x01\x00\x00\x00\xff")
    assert junk.status_code == 400 and "not a valid WebAssembly module" in junk.json()["errors"][0]["message"]
    pinned = upload(gateway, "guard", example("guard"), {"sha256": "0" * 64})
    assert pinned.status_code == 400
    assert "not the pinned " + "0" * 64 in pinned.json()["errors"][0]["message"]
    rejected = upload(gateway, "guard", example("guard"), {"config": {"denyTypes": 7}})
    assert rejected.status_code == 400 and "init rejected the configuration" in rejected.text
    bad_settings = upload(gateway, "guard", example("guard"), {"policy": "maybe"})
    assert bad_settings.status_code == 400 and "policy" in bad_settings.text
    assert upload(gateway, "guard", example("guard")).status_code == 201
    assert upload(gateway, "guard", example("guard")).status_code == 409
    assert plugins(gateway).keys() == {"guard"}


def test_restart_keeps_plugins(gateways: Any, tmp_path: Path) -> None:
    db = f"sqlite:{tmp_path / 'gateway.db'}"
    first = gateways("--db", db)
    assert upload(first, "guard", example("guard"), {"config": {"denyTypes": ["blocked"]}}).status_code == 201
    first.stop()
    second = gateways("--db", db)
    listed = plugins(second)
    assert listed["guard"]["state"] == "active"
    assert listed["guard"]["settings"]["config"] == {"denyTypes": ["blocked"]}
    assert send(second, "blocked").status_code == 403


def test_sha256_pin_mismatch_refuses_start_up(gateways: Any, tmp_path: Path) -> None:
    write(tmp_path, "guard", example("guard"))
    config = tmp_path / "plugins.toml"
    config.write_text(f'[plugins.guard]\npath = "guard.wasm"\nsha256 = "{"a" * 64}"\n')
    gateway = gateways("--db", "memory", "--plugins-config", str(config), wait=False)
    assert gateway.wait_exit(30) != 0
    assert f"{config}:3: plugins.guard.sha256:" in gateway.log()


def test_quarantine_and_recovery_are_visible(gateways: Any, tmp_path: Path) -> None:
    gateway = gateways("--db", "memory")
    settings = {"limits": {"quarantine_after": 2, "quarantine_backoff": 1.0}}
    assert upload(gateway, "trap", kit_module(TRAP_ON_BOOM), settings).status_code == 201
    stuck = {"order": -1, "policy": "open", "limits": {"quarantine_after": 1, "quarantine_backoff": 60.0}}
    assert upload(gateway, "stuck", kit_module(TRAP_ON_BOOM), stuck).status_code == 201
    for _ in range(2):
        faulted = send(gateway, "boom")
        assert faulted.status_code == 503
        assert faulted.json()["errors"][0]["message"] == "plugin 'trap' failed (trap) and its failure policy is closed"
    shown = plugins(gateway)["trap"]
    assert shown["state"] == "quarantined"
    assert shown["lastFault"]["kind"] == "trap" and shown["retryInSeconds"] > 0
    assert send(gateway, "fine").json()["errors"][0]["message"].endswith("failed (quarantined) and its failure "
                                                                         "policy is closed")
    time.sleep(1.3)  # the plugin-state refresher runs every second
    metrics = httpx.get(f"{gateway.config_url}/v1/metrics", timeout=10).text
    assert 'eventgateway_plugin_faults_total{kind="trap",plugin="trap"} 2.0' in metrics
    # "stuck" (fail-open, 60 s backoff) is still quarantined: its retry time is in the metrics.
    retry_line = next(line for line in metrics.splitlines()
                      if line.startswith('eventgateway_plugin_quarantine_retry_timestamp_seconds{plugin="stuck"}'))
    assert time.time() + 50 < float(retry_line.split()[-1]) < time.time() + 61
    assert 'eventgateway_plugin_state{plugin="stuck"} 1.0' in metrics
    assert plugins(gateway)["stuck"]["retryInSeconds"] > 50
    assert 'eventgateway_plugin_last_fault_timestamp_seconds{kind="trap",plugin="trap"}' in metrics
    assert "quarantined after 2 consecutive faults" in gateway.log()
    assert send(gateway, "fine").status_code == 202  # the probe succeeds: recovered
    recovered = plugins(gateway)["trap"]
    assert recovered["state"] == "active" and recovered["retryAt"] is None
    metrics = httpx.get(f"{gateway.config_url}/v1/metrics", timeout=10).text
    assert 'eventgateway_plugin_state{plugin="trap"} 0.0' in metrics


def test_tokens_are_required_and_checked(gateways: Any) -> None:
    gateway = gateways("--db", "memory", "--config-token", "c0nfig",
                       env={"EVENT_GATEWAY_EVENTS_TOKEN": "ev3nts"})
    missing = upload(gateway, "guard", example("guard"))
    assert missing.status_code == 401
    assert missing.json() == {"errors": [{"message": "Config API: missing bearer token; send "
                                                     "'Authorization: Bearer <token>'"}]}
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = upload(gateway, "guard", example("guard"), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "invalid bearer token" in wrong.text
    config = {"denyTypes": ["blocked"], "apiKey": "s3cret"}
    assert upload(gateway, "guard", example("guard"), settings={"config": config},
                  headers={"Authorization": "Bearer c0nfig"}).status_code == 201
    # Reads stay open, but a plugin's init config (it may hold credentials) is masked without the token.
    assert plugins(gateway)["guard"]["settings"]["config"] == {"denyTypes": "*****", "apiKey": "*****"}
    shown = httpx.get(f"{gateway.config_url}/v1/plugins/guard", timeout=10).json()
    assert shown["settings"]["config"] == {"denyTypes": "*****", "apiKey": "*****"}
    authorized = httpx.get(f"{gateway.config_url}/v1/plugins/guard", timeout=10,
                           headers={"Authorization": "Bearer c0nfig"}).json()
    assert authorized["settings"]["config"] == config
    refused = httpx.delete(f"{gateway.config_url}/v1/plugins/guard", timeout=10)
    assert refused.status_code == 401 and "guard" in plugins(gateway)
    # Every mutating Config API call, not only the plugin API.
    event_types = f"{gateway.config_url}/v1/spaces/default/eventtypes"
    assert httpx.post(event_types, json={"name": "fine"}, timeout=10).status_code == 401
    assert httpx.get(event_types, timeout=10).json() == {"eventTypes": []}
    assert httpx.post(event_types, json={"name": "fine"}, headers={"Authorization": "Bearer c0nfig"},
                      timeout=10).status_code == 201
    assert httpx.delete(f"{event_types}/fine", timeout=10).status_code == 401

    unauthenticated = send(gateway, "fine")
    assert unauthenticated.status_code == 401 and unauthenticated.json()["errors"][0]["message"].startswith(
        "Events API: missing bearer token")
    assert send(gateway, "fine", {"Authorization": "Bearer c0nfig"}).status_code == 401
    assert send(gateway, "fine", {"Authorization": "Bearer ev3nts"}).status_code == 202
    # CORS preflights carry no credentials: they are not refused.
    preflight = httpx.options(f"{gateway.events_url}/", timeout=10, headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code != 401


def test_plugin_logs_reach_the_gateway_log(gateways: Any, tmp_path: Path) -> None:
    module = write(tmp_path, "logger", example("logger"))
    gateway = gateways("--db", "memory", "--plugin", str(module))
    assert plugins(gateway)["logger"]["source"] == "flag"
    assert send(gateway, "order.placed").status_code == 202
    deadline = time.monotonic() + 5
    while "[plugin logger] received event order.placed" not in gateway.log():
        assert time.monotonic() < deadline, gateway.log()
        time.sleep(0.05)
    # Flag plugins belong to the command line, not to the API.
    refused = httpx.delete(f"{gateway.config_url}/v1/plugins/logger", timeout=10)
    assert refused.status_code == 409 and "--plugin" in refused.text


async def test_reload_while_events_flow_loses_and_duplicates_nothing(gateways: Any) -> None:
    """A load generator sends events to a sync subscription while the enricher plugin (which stamps the
    event its function receives) is updated from v1 to v2: every event is answered 200 and reaches the
    function exactly once, stamped by one version; once the update has answered, no event gets v1."""
    gateway = gateways("--db", "memory")
    async with function_server() as function, httpx.AsyncClient(timeout=30) as client:
        config = f"{gateway.config_url}/v1/spaces/default"
        for path, body in [
            ("eventtypes", {"name": "order.placed"}),
            ("functions", {"functionId": "recorder", "type": "http", "provider": {"url": function.url}}),
            ("subscriptions", {"type": "sync", "eventType": "order.placed", "functionId": "recorder",
                               "path": "/", "method": "POST"}),
        ]:
            created = await client.post(f"{config}/{path}", json=body)
            assert created.status_code == 201, created.text
        uploaded = await client.post(f"{gateway.config_url}/v1/plugins", params={
            "name": "enricher", "settings": json.dumps({"config": {"fields": {"version": "v1"}}})},
            content=example("enricher"), headers={"Content-Type": "application/wasm"})
        assert uploaded.status_code == 201, uploaded.text

        total, concurrency = 300, 6
        sent: list[tuple[str, float]] = []
        answers: list[int] = []
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(total):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                event = cloudevent("order.placed")
                started = time.monotonic()
                response = await client.post(f"{gateway.events_url}/", content=json.dumps(event),
                                             headers={"Content-Type": CE})
                sent.append((event["id"], started))
                answers.append(response.status_code)

        async def update_midway() -> float:
            while len(sent) < total // 3:
                await asyncio.sleep(0.01)
            response = await client.put(f"{gateway.config_url}/v1/plugins/enricher",
                                        json={"config": {"fields": {"version": "v2"}}})
            assert response.status_code == 200, response.text
            return time.monotonic()

        results = await asyncio.gather(update_midway(), *(worker() for _ in range(concurrency)))
        updated_at = results[0]

    assert answers == [200] * total
    stamps = {event["id"]: event["data"]["version"] for event in function.received}
    assert len(function.received) == total and len(stamps) == total  # none lost, none twice
    assert stamps.keys() == {event_id for event_id, _ in sent}
    assert set(stamps.values()) == {"v1", "v2"}
    started_after = [event_id for event_id, started in sent if started > updated_at]
    assert started_after and all(stamps[event_id] == "v2" for event_id in started_after)


def _non_loopback_address() -> str:
    """An address of this machine other than loopback (the UDP connect sends nothing)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        address = probe.getsockname()[0]
    assert not address.startswith("127."), "this machine has no non-loopback IPv4 address to test binding with"
    return address


def _reachable(address: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def test_config_api_binds_loopback_unless_a_host_is_named(gateways: Any) -> None:
    address = _non_loopback_address()
    open_gateway = gateways("--db", "memory")
    assert "config API listening on http://127.0.0.1:" in open_gateway.log()
    assert not _reachable(address, open_gateway.config_port)
    assert _reachable("127.0.0.1", open_gateway.config_port)
    # A token protects writes only (reads stay open): it does not move the API off loopback by itself.
    protected = gateways("--db", "memory", "--config-token", "t0ken")
    assert not _reachable(address, protected.config_port)
    exposed = gateways("--db", "memory", "--config-token", "t0ken", "--config-host", "0.0.0.0")
    assert _reachable(address, exposed.config_port)


def test_every_gateway_sharing_the_store_reloads(gateways: Any, tmp_path: Path) -> None:
    db = f"sqlite:{tmp_path / 'shared.db'}"
    first, second = gateways("--db", db), gateways("--db", db)
    assert upload(first, "guard", example("guard"), {"config": {"denyTypes": ["blocked"]}}).status_code == 201
    deadline = time.monotonic() + 10
    while send(second, "blocked").status_code != 403:
        assert time.monotonic() < deadline, "the second gateway never loaded the plugin"
        time.sleep(0.1)
    assert plugins(second)["guard"]["state"] == "active"
    assert httpx.delete(f"{second.config_url}/v1/plugins/guard", timeout=30).status_code == 204
    deadline = time.monotonic() + 10
    while send(first, "blocked").status_code != 202:
        assert time.monotonic() < deadline, "the first gateway never dropped the deleted plugin"
        time.sleep(0.1)
    assert plugins(first) == {}


@pytest.mark.toolchains
def test_gateway_with_a_wasi_plugin_stops_cleanly(gateways: Any, tmp_path: Path) -> None:
    """A Go plugin is a WASI reactor; wasmtime's WASI runtime threads used to abort the process during
    interpreter shutdown (exit 134) unless the plugins are freed when the gateway closes."""
    import signal

    from plugin_examples.build import build

    module = build("go", "logger")  # cached by content hash; a missing Go toolchain fails loudly
    gateway = gateways("--db", "memory", "--plugin", str(module))
    assert send(gateway, "order.placed").status_code == 202
    assert gateway.process is not None
    gateway.process.send_signal(signal.SIGTERM)
    assert gateway.wait_exit(60) == 0, gateway.log()
    assert "panicked" not in gateway.log()


@pytest.mark.toolchains
def test_swapped_plugins_are_closed_and_the_gateway_stops_cleanly(gateways: Any) -> None:
    """The plugin manager owns every loaded plugin's lifetime: a plugin swapped out through /v1/plugins is
    closed once no plugin set uses it, and SIGTERM closes the rest. With WAT and Go (WASI) plugins
    swapped while loaded, the process exits 0: no abort (exit 134) from wasmtime's teardown, without the
    ``gc.collect()`` the manager used to run at close."""
    import signal

    from plugin_examples.build import build

    go_logger, go_enricher = build("go", "logger"), build("go", "enricher")
    gateway = gateways("--db", "memory", "--log-level", "debug")
    assert upload(gateway, "guard", example("guard"), {"config": {"denyTypes": ["blocked"]}}).status_code == 201
    assert upload(gateway, "go", go_logger.read_bytes()).status_code == 201
    assert send(gateway, "order.placed").status_code == 202
    assert send(gateway, "blocked").status_code == 403

    # Swap both: a new module for the Go plugin, new settings for the WAT one (each a new load).
    replaced = httpx.put(f"{gateway.config_url}/v1/plugins/go", content=go_enricher.read_bytes(),
                         headers={"Content-Type": "application/wasm"}, timeout=60)
    assert replaced.status_code == 200, replaced.text
    updated = httpx.put(f"{gateway.config_url}/v1/plugins/guard", json={"config": {"denyTypes": ["other"]}},
                        timeout=30)
    assert updated.status_code == 200, updated.text
    assert send(gateway, "blocked").status_code == 202
    assert send(gateway, "other").status_code == 403

    deadline = time.monotonic() + 10
    while gateway.log().count("closed: no plugin set uses it any more") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    log = gateway.log()
    assert "plugin 'go' (sha256" in log and "plugin 'guard' (sha256" in log, log

    assert gateway.process is not None
    gateway.process.send_signal(signal.SIGTERM)
    assert gateway.wait_exit(60) == 0, gateway.log()
    assert "panicked" not in gateway.log() and "Fatal Python error" not in gateway.log()
