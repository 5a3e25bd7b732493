"""The gateway as an operator runs it: restarts on SQLite, several processes, signals, drain."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from tests.gateway.http.config_api.conftest import http_function
from tests.gateway_fixtures import ScriptedResponse


async def configure_sync_route(config_url: str, function_url: str, path: str = "/hello") -> dict:
    async with httpx.AsyncClient(base_url=config_url + "/v1/spaces/default", timeout=10) as api:
        for url, body in (("/functions", http_function("f", url=function_url, metadata={"m": "1"})),
                          ("/eventtypes", {"name": "http.request"}),
                          ("/cors", {"method": "GET", "path": path, "allowedOrigins": ["https://a.example"]}),
                          ("/subscriptions", {"type": "sync", "eventType": "http.request", "functionId": "f",
                                              "path": path, "method": "GET"})):
            response = await api.post(url, json=body)
            assert response.status_code == 201, response.text
        return {key: (await api.get(f"/{key}")).json() for key in ("functions", "eventtypes", "subscriptions", "cors")}


async def test_restart_on_sqlite_keeps_all_configuration(gateway_server, function_server, tmp_path: Path) -> None:
    db = f"sqlite:{tmp_path / 'config.db'}"
    first = await gateway_server(db=db)
    before = await configure_sync_route(first.config_url, function_server.url)
    await first.stop()

    second = await gateway_server(db=db)
    async with httpx.AsyncClient(base_url=second.config_url + "/v1/spaces/default") as api:
        after = {key: (await api.get(f"/{key}")).json() for key in before}
    assert after == before
    function_server.respond(200, {"statusCode": 200, "body": "still routed"})
    async with httpx.AsyncClient(base_url=second.events_url) as events:
        answer = await events.get("/hello")
    assert (answer.status_code, answer.text) == (200, "still routed")


async def test_several_processes_share_one_store_and_stop_on_sigint(gateway_process, function_server,
                                                                      tmp_path: Path) -> None:
    gw = await asyncio.to_thread(gateway_process, "--processes", "2", "--db", f"sqlite:{tmp_path / 'c.db'}")
    function_server.respond(200, {"statusCode": 200, "body": "ok"})
    await configure_sync_route(gw.config_url, function_server.url)
    await asyncio.sleep(1.0)  # the promise: every process sees a change within a second
    # New connection per request, so the kernel spreads them over both worker processes.
    for _ in range(20):
        async with httpx.AsyncClient(base_url=gw.events_url) as events:
            answer = await events.get("/hello")
        assert (answer.status_code, answer.text) == (200, "ok")
    # Writes through any process are checked against the shared store: the duplicate is refused.
    for _ in range(4):
        async with httpx.AsyncClient(base_url=gw.config_url) as config:
            duplicate = await config.post("/v1/spaces/default/eventtypes", json={"name": "http.request"})
        assert duplicate.status_code == 409
    assert gw.log().count("gateway started") == 2
    # Ctrl-C reaches the supervisor, which stops both workers gracefully.
    gw.signal(signal.SIGINT)
    assert await asyncio.to_thread(gw.wait, 30) == 0
    assert gw.log().count("stopped") == 2


async def test_sigterm_lets_in_flight_requests_finish(gateway_process, function_server, tmp_path: Path) -> None:
    gw = await asyncio.to_thread(gateway_process, "--db", f"sqlite:{tmp_path / 'c.db'}", "--drain-timeout", "10")
    await configure_sync_route(gw.config_url, function_server.url, path="/slow")
    function_server.script([ScriptedResponse(200, {"statusCode": 200, "body": "finished"}, delay=1.5)])
    async with httpx.AsyncClient(base_url=gw.events_url, timeout=20) as events:
        in_flight = asyncio.create_task(events.get("/slow"))
        await function_server.wait_for_requests(1)
        gw.signal(signal.SIGTERM)
        answer = await in_flight
    assert (answer.status_code, answer.text) == (200, "finished")
    assert await asyncio.to_thread(gw.wait, 20) == 0
    log = gw.log()
    assert "shutting down" in log and "stopped" in log


async def test_draining_gateway_refuses_new_events(gateway_server, function_server) -> None:
    gw = await gateway_server()
    await configure_sync_route(gw.config_url, function_server.url)
    gw.gateway.events.draining = True
    async with httpx.AsyncClient(base_url=gw.events_url) as events:
        assert (await events.get("/hello")).status_code == 503
    async with httpx.AsyncClient(base_url=gw.config_url) as config:
        assert (await config.get("/v1/status")).status_code == 503


@pytest.mark.parametrize("queue", ["memory", "sqlite"])
async def test_sigterm_with_queued_async_events(gateway_process, function_server, tmp_path: Path,
                                                queue: str) -> None:
    """SIGTERM with deliveries queued: ``--queue memory`` delivers them all before exiting (they would be lost
    otherwise); the durable default (SQLite) finishes the one in flight and keeps the others, which the next
    start delivers -- each exactly once."""
    args = ["--db", f"sqlite:{tmp_path / 'c.db'}", "--drain-timeout", "15", "--workers", "1"]
    if queue == "memory":
        args += ["--queue", "memory"]
    gw = await asyncio.to_thread(gateway_process, *args)
    async with httpx.AsyncClient(base_url=gw.config_url + "/v1/spaces/default") as api:
        for url, body in (("/functions", http_function("slow", url=function_server.url)),
                          ("/eventtypes", {"name": "job.queued"}),
                          ("/subscriptions", {"type": "async", "eventType": "job.queued", "functionId": "slow"})):
            assert (await api.post(url, json=body)).status_code == 201
    function_server.respond(200, {"ok": True}, delay=0.5)
    async with httpx.AsyncClient(base_url=gw.events_url) as events:
        for n in range(3):
            accepted = await events.post("/", json={"specversion": "1.0", "type": "job.queued", "source": "/t",
                                                    "id": str(n), "data": {"n": n}},
                                         headers={"Content-Type": "application/cloudevents+json"})
            assert accepted.status_code == 202
    await function_server.wait_for_requests(1)
    gw.signal(signal.SIGTERM)  # one worker, 0.5 s each: two deliveries are still queued
    assert await asyncio.to_thread(gw.wait, 30) == 0

    def delivered() -> list[int]:
        return sorted(r.json["data"]["n"] for r in function_server.requests if r.json.get("type") == "job.queued")

    if queue == "memory":
        assert delivered() == [0, 1, 2]
        return
    assert delivered() == [0], gw.log()  # the one in flight finished; the others wait in queue.db
    assert (tmp_path / "c-queue.db").exists()
    again = await asyncio.to_thread(gateway_process, *args)
    await function_server.wait_for_requests(3)
    await asyncio.sleep(0.3)
    assert delivered() == [0, 1, 2]
    again.stop()
