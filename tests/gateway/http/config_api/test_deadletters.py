"""Dead letters and back-pressure through real gateways (issue 14): the dead-letter Config API on the
memory and SQLite queues, 503 on a full queue, 202 only once a delivery is stored, hostile input."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.http.config_api.conftest import assert_error, http_function

CE = {"Content-Type": "application/cloudevents+json"}
ATTEMPT = "event-gateway-delivery-attempt"
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _event(event_id: str, event_type: str = "job.failed") -> dict[str, Any]:
    return {"specversion": "1.0", "type": event_type, "source": "/test", "id": event_id, "data": {"id": event_id}}


def _attempt(request: Any) -> str:
    return {k.lower(): v for k, v in request.headers.items()}.get(ATTEMPT, "")


async def _start(gateway_server: Any, tmp_path: Path, queue: str, **settings: Any) -> Any:
    if queue == "sqlite":
        return await gateway_server(db=f"sqlite:{tmp_path / 'config.db'}", **settings)
    return await gateway_server(**settings)


async def _configure(config_url: str, function_url: str, *, retry: dict[str, Any], event_type: str = "job.failed",
                     function_id: str = "flaky") -> None:
    async with httpx.AsyncClient(base_url=config_url + "/v1/spaces/default") as api:
        for url, body in (("/functions", http_function(function_id, url=function_url, retry=retry)),
                          ("/eventtypes", {"name": event_type}),
                          ("/subscriptions", {"type": "async", "eventType": event_type, "functionId": function_id})):
            created = await api.post(url, json=body)
            assert created.status_code == 201, created.text


async def _dead_letters(api: httpx.AsyncClient, count: int, timeout: float = 10.0, **params: str) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        listed = await api.get("/deadletters", params=params)
        assert listed.status_code == 200, listed.text
        letters = listed.json()["deadLetters"]
        if len(letters) == count:
            return letters
        assert time.monotonic() < deadline, f"{len(letters)} dead letters, expected {count}: {letters}"
        await asyncio.sleep(0.05)


async def _metric(root: httpx.AsyncClient, line_start: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = (await root.get("/v1/metrics")).text
        found = [line for line in text.splitlines() if line.startswith(line_start)]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no {line_start!r} in /v1/metrics"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("queue", ["memory", "sqlite"])
async def test_dead_letters_listed_redelivered_and_deleted(gateway_server, function_server, tmp_path: Path,
                                                           queue: str) -> None:
    gw = await _start(gateway_server, tmp_path, queue)
    await _configure(gw.config_url, function_server.url, retry={"maxAttempts": 2, "initialBackoff": 0.01})
    function_server.respond(500, {"error": "broken"})
    async with httpx.AsyncClient(base_url=gw.events_url) as events, \
            httpx.AsyncClient(base_url=gw.config_url + "/v1/spaces/default", timeout=10) as api, \
            httpx.AsyncClient(base_url=gw.config_url, timeout=10) as root:
        assert (await events.post("/", json=_event("e1"), headers=CE)).status_code == 202
        (letter,) = await _dead_letters(api, 1)
        assert set(letter) == {"id", "functionId", "subscriptionId", "event", "attempts", "lastError",
                               "firstAttemptAt", "lastAttemptAt"}
        assert re.fullmatch(r"[0-9a-f]{32}", letter["id"])
        assert (letter["functionId"], letter["attempts"], letter["event"]["id"]) == ("flaky", 2, "e1")
        assert "answered 500" in letter["lastError"] and letter["subscriptionId"]
        assert _TIME.fullmatch(letter["firstAttemptAt"]) and _TIME.fullmatch(letter["lastAttemptAt"])
        assert letter["firstAttemptAt"] <= letter["lastAttemptAt"]
        # Two attempts, numbered, the same event each time.
        assert [_attempt(r) for r in function_server.requests] == ["1", "2"]
        assert {r.json["id"] for r in function_server.requests} == {"e1"}
        assert await _metric(root, 'eventgateway_deadletters{function="flaky",space="default"} 1.0')
        assert await _metric(root, 'eventgateway_deadletters_total{function="flaky",space="default"} 1.0')

        # Fixed: redelivered with a fresh attempt count, then gone from the list.
        function_server.respond(200, {"ok": True})
        redelivered = await api.post(f"/deadletters/{letter['id']}/redeliver")
        assert (redelivered.status_code, redelivered.json()) == (202, {"redelivered": 1})
        third = (await function_server.wait_for_requests(3))[2]
        assert (third.json["id"], _attempt(third)) == ("e1", "1")
        await _dead_letters(api, 0)
        # The gauge follows (a function with no dead letters has no series).
        deadline = time.monotonic() + 10
        while 'eventgateway_deadletters{function="flaky"' in (await root.get("/v1/metrics")).text:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        again = await api.post(f"/deadletters/{letter['id']}/redeliver")
        assert_error(again, 404, f'Dead letter "{letter["id"]}" not found.')

        # Every dead letter of a function at once.
        function_server.respond(500, {"error": "broken"})
        for event_id in ("e2", "e3"):
            assert (await events.post("/", json=_event(event_id), headers=CE)).status_code == 202
        await _dead_letters(api, 2, functionId="flaky")
        assert (await api.get("/deadletters", params={"functionId": "other"})).json() == {"deadLetters": []}
        function_server.respond(200, {"ok": True})
        none = await api.post("/deadletters/redeliver", params={"functionId": "other"})
        assert (none.status_code, none.json()) == (202, {"redelivered": 0})
        both = await api.post("/deadletters/redeliver", params={"functionId": "flaky"})
        assert (both.status_code, both.json()) == (202, {"redelivered": 2})
        await function_server.wait_for_requests(3 + 4 + 2)
        await _dead_letters(api, 0)
        assert sorted(r.json["id"] for r in function_server.requests[-2:]) == ["e2", "e3"]

        # Deleted: forgotten, never delivered again.
        function_server.respond(500, {"error": "broken"})
        assert (await events.post("/", json=_event("e4"), headers=CE)).status_code == 202
        (doomed,) = await _dead_letters(api, 1)
        assert (await api.delete(f"/deadletters/{doomed['id']}")).status_code == 204
        await _dead_letters(api, 0)
        assert_error(await api.delete(f"/deadletters/{doomed['id']}"), 404, f'Dead letter "{doomed["id"]}" not found.')
        # Another space sees none of this space's dead letters, and cannot touch them.
        async with httpx.AsyncClient(base_url=gw.config_url + "/v1/spaces/elsewhere") as other:
            assert (await other.get("/deadletters")).json() == {"deadLetters": []}
            assert_error(await other.post(f"/deadletters/{letter['id']}/redeliver"), 404, "not found")


async def test_a_deleted_function_makes_a_dead_letter_saying_so(gateway_server, function_server) -> None:
    gw = await gateway_server()
    await _configure(gw.config_url, function_server.url, retry={"maxAttempts": 3, "initialBackoff": 0.5})
    function_server.respond(503, {"error": "down"})
    async with httpx.AsyncClient(base_url=gw.events_url) as events, \
            httpx.AsyncClient(base_url=gw.config_url + "/v1/spaces/default") as api:
        assert (await events.post("/", json=_event("gone"), headers=CE)).status_code == 202
        await function_server.wait_for_requests(1)
        (subscription,) = (await api.get("/subscriptions")).json()["subscriptions"]
        assert (await api.delete(f"/subscriptions/{subscription['subscriptionId']}")).status_code == 204
        assert (await api.delete("/functions/flaky")).status_code == 204
        (letter,) = await _dead_letters(api, 1)
        assert letter["attempts"] == 2 and "deleted after the event was accepted" in letter["lastError"]
    assert len(function_server.requests) == 1


async def test_hostile_ids_and_filters(gateway_server) -> None:
    gw = await gateway_server(config_token="s3cret")
    async with httpx.AsyncClient(base_url=gw.config_url + "/v1/spaces/default", timeout=10,
                                 headers={"Authorization": "Bearer s3cret"}) as api:
        unknown = "0" * 32
        assert_error(await api.post(f"/deadletters/{unknown}/redeliver"), 404, f'Dead letter "{unknown}" not found.')
        assert_error(await api.delete(f"/deadletters/{unknown}"), 404, f'Dead letter "{unknown}" not found.')
        long = "a" * 5000
        message = assert_error(await api.delete(f"/deadletters/{long}"), 404, "not found")
        assert len(message) < 120
        for hostile in ("%00", "abc%00def", "..", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "X" * 32, "*", "%25"):
            for response in (await api.delete(f"/deadletters/{hostile}"),
                             await api.post(f"/deadletters/{hostile}/redeliver")):
                assert response.status_code in (404, 405), (hostile, response.status_code, response.text)
                assert list(response.json()) == ["errors"]
        for bad in ("x" * 2000, "a\x00b", "../x", "a b", ""):
            assert_error(await api.get("/deadletters", params={"functionId": bad}), 400, "functionId")
            assert_error(await api.post("/deadletters/redeliver", params={"functionId": bad}), 400, "functionId")
        assert_error(await api.post("/deadletters/redeliver"), 400, "functionId is required")
    async with httpx.AsyncClient(base_url=gw.config_url) as root:
        # A space that does not exist lists nothing; one that cannot exist is a 400.
        assert (await root.get("/v1/spaces/nowhere/deadletters")).json() == {"deadLetters": []}
        assert_error(await root.get("/v1/spaces/ab/deadletters"), 400, "in the URL is invalid")
        # Writes need the config token, reads do not.
        assert (await root.post("/v1/spaces/default/deadletters/redeliver?functionId=f")).status_code == 401
        assert (await root.delete(f"/v1/spaces/default/deadletters/{'0' * 32}")).status_code == 401


async def test_a_full_queue_answers_503_and_loses_nothing_accepted(gateway_server, function_server,
                                                                   tmp_path: Path) -> None:
    """--queue-max-events 2 on the SQLite queue with a function that is down: two events are accepted (and
    on disk when the 202 arrives), the rest get 503 with the reason; once the function is back both accepted
    events arrive, and nothing else does."""
    gw = await gateway_server(db=f"sqlite:{tmp_path / 'config.db'}", queue_max_events=2)
    await _configure(gw.config_url, function_server.url,
                     retry={"maxAttempts": 100, "initialBackoff": 0.2, "multiplier": 1})
    function_server.respond(503, {"error": "down"})
    queue_file = tmp_path / "queue.db"
    async with httpx.AsyncClient(base_url=gw.events_url) as events:
        answers = []
        for n in range(4):
            answers.append(await events.post("/", json=_event(f"e{n}"), headers=CE))
            if answers[-1].status_code == 202:
                with sqlite3.connect(queue_file) as db:  # stored before the 202 went out
                    ids = {row[0] for row in db.execute("SELECT json_extract(event, '$.id') FROM deliveries")}
                assert f"e{n}" in ids
        assert [a.status_code for a in answers] == [202, 202, 503, 503]
        assert_error(answers[2], 503, "the delivery queue is full", "--queue-max-events 2")
        batch = await events.post("/", content=b"[" + b",".join(
            httpx.Request("POST", "/", json=_event(f"b{n}")).content for n in range(2)) + b"]",
            headers={"Content-Type": "application/cloudevents-batch+json"})
        assert_error(batch, 503, "the delivery queue is full")
        # An event with no async subscriber does not need the queue.
        assert (await events.post("/", json=_event("free", "unrouted"), headers=CE)).status_code == 202
        function_server.respond(200, {"ok": True})
        deadline = time.monotonic() + 10
        while {"e0", "e1"} - {r.json["id"] for r in function_server.requests if r.json}:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert await gw.gateway.events.settle(10)
    delivered = {r.json["id"] for r in function_server.requests}
    assert delivered == {"e0", "e1"}


async def test_openapi_describes_the_dead_letter_routes(gw) -> None:
    async with httpx.AsyncClient(base_url=gw.config_url) as root:
        document = (await root.get("/v1/openapi.json")).json()
    rules = {re.sub(r"<(\w+)>", r"{\1}", rule.rule).rstrip("/") for rule in gw.gateway.config_app.url_map.iter_rules()
             if "deadletters" in rule.rule}
    assert rules == {"/v1/spaces/{space}/deadletters", "/v1/spaces/{space}/deadletters/redeliver",
                     "/v1/spaces/{space}/deadletters/{id}/redeliver", "/v1/spaces/{space}/deadletters/{id}"}
    assert rules <= document["paths"].keys()
    assert document["paths"]["/v1/spaces/{space}/deadletters/{id}"].keys() >= {"delete"}
    from openapi_spec_validator import validate

    validate(document)
