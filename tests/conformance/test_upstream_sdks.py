"""The upstream SDKs against a real gateway process (issue 12: "the JS SDK and Python SDK suites still pass").

- JS: ``@serverless/event-gateway-sdk`` 0.11.0 from npm, installed with ``npm install --prefix`` into a
  temporary folder once per session; each test runs ``node js_sdk_client.js`` (beside this file), which
  makes the SDK calls the test lists and prints every outcome (value, or the Error's message) as JSON.
- Python: ``event-gateway-sdk`` 1.2.0 from PyPI, installed with ``pip install --target`` into a temporary
  folder (never into the environment: its wheel ships a stray top-level ``tests`` package); the folder is
  at the END of ``sys.path`` only while a test runs, as in ``test_python_sdk_readme.py``.

The gateway is ``python -m gateway serve --db memory`` in a subprocess (``gateway_process``); functions
are the recording ``function_server``. A failing install fails the tests (npm and PyPI are part of the
test environment): nothing here is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.toolchains]

JS_SDK = "@serverless/event-gateway-sdk@0.11.0"
JS_CLIENT = Path(__file__).with_name("js_sdk_client.js")


def cloud_event(event_type: str, data: Any, event_id: str = "1") -> dict[str, Any]:
    """A CloudEvent 0.1 as the SDKs' READMEs build them."""
    return {"eventType": event_type, "eventTypeVersion": "1.0", "cloudEventsVersion": "0.1",
            "source": "/services/users", "eventID": event_id, "contentType": "application/json",
            "data": data}


# -- the JS SDK ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def js_sdk_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed for the JS SDK suite (node 20+)", pytrace=False)
    prefix = tmp_path_factory.mktemp("js-sdk")
    result = subprocess.run(
        [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save", "--loglevel=error",
         JS_SDK],
        capture_output=True, text=True, timeout=300, check=False)
    package = prefix / "node_modules" / "@serverless" / "event-gateway-sdk" / "package.json"
    if result.returncode != 0 or not package.exists():
        pytest.fail(f"npm install --prefix {prefix} {JS_SDK} failed (exit {result.returncode}):\n"
                    f"{result.stdout}\n{result.stderr}", pytrace=False)
    assert json.loads(package.read_text())["version"] == "0.11.0"
    return prefix


class JsSdk:
    """Runs a list of SDK calls in one ``node`` process against one gateway."""

    def __init__(self, sdk_dir: Path, events_url: str, config_url: str, space: str = "default") -> None:
        self.sdk_dir = sdk_dir
        self.options = {"url": events_url, "configurationUrl": config_url, "space": space}

    async def run(self, *calls: tuple[Any, ...]) -> list[dict[str, Any]]:
        """``await sdk.run(("createFunction", {...}), ("listFunctions",), ("emit", event, options))``: one
        result per call."""
        payload = json.dumps({"sdk": str(self.sdk_dir), "options": self.options,
                              "calls": [{"method": m, "args": list(a)} for m, *a in calls]})
        # Asynchronously: the function server answering the gateway runs in this event loop.
        process = await asyncio.create_subprocess_exec(
            "node", str(JS_CLIENT), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(payload.encode()), 60)
        assert process.returncode == 0, f"node exited with {process.returncode}:\n{stderr.decode()}"
        results = json.loads(stdout)
        assert len(results) == len(calls)
        return results

    async def value(self, method: str, *args: Any) -> Any:
        [result] = await self.run((method, *args))
        assert result["ok"], f"{method} failed: {result['error']}"
        return result["value"]

    async def error(self, method: str, *args: Any) -> str:
        [result] = await self.run((method, *args))
        assert not result["ok"], f"{method} succeeded: {result['value']}"
        return result["error"]


@pytest.fixture
def js_sdk(js_sdk_dir: Path, gateway_process) -> JsSdk:
    gw = gateway_process("--db", "memory")
    return JsSdk(js_sdk_dir, gw.events_url, gw.config_url)


async def test_js_sdk_functions(js_sdk: JsSdk, function_server) -> None:
    url = function_server.url + "/hello"
    fn = {"functionId": "hello", "type": "http", "provider": {"url": url}}
    created = await js_sdk.value("createFunction", fn)
    assert created["functionId"] == "hello"
    assert created["space"] == "default"
    assert created["type"] == "http"
    assert created["provider"]["url"] == url

    assert await js_sdk.error("createFunction", fn) == (
        'Failed to create the function hello due the error: Function "hello" already registered.')
    invalid = await js_sdk.error("createFunction", {"functionId": "broken", "type": "http"})
    assert invalid.startswith("Failed to create the function broken due the error: Function doesn't validate.")

    [listed] = await js_sdk.value("listFunctions")
    assert listed["functionId"] == "hello"

    new_url = function_server.url + "/hello-v2"
    updated = await js_sdk.value("updateFunction", {"functionId": "hello", "type": "http",
                                                    "provider": {"url": new_url}})
    assert updated["provider"]["url"] == new_url
    [listed] = await js_sdk.value("listFunctions")
    assert listed["provider"]["url"] == new_url
    assert await js_sdk.error("updateFunction", {"functionId": "nope", "type": "http",
                                                 "provider": {"url": url}}) == (
        'Failed to update the function nope due the error: Function "nope" not found.')

    assert await js_sdk.value("deleteFunction", {"functionId": "hello"}) is None
    assert await js_sdk.error("deleteFunction", {"functionId": "hello"}) == (
        'Failed to delete the function hello due the error: Function "hello" not found.')
    assert await js_sdk.value("listFunctions") == []


async def test_js_sdk_event_types(js_sdk: JsSdk, function_server) -> None:
    created = await js_sdk.value("createEventType", {"name": "user.created"})
    assert created["name"] == "user.created"
    assert created["space"] == "default"
    assert await js_sdk.error("createEventType", {"name": "user.created"}) == (
        'Failed to create user.created event type due the error: Event Type "user.created" already exists.')

    # An authorizer is a function: updating the type to name one.
    await js_sdk.value("createFunction", {"functionId": "auth", "type": "http",
                                          "provider": {"url": function_server.url + "/auth"}})
    updated = await js_sdk.value("updateEventType", {"name": "user.created", "authorizerId": "auth"})
    assert updated["authorizerId"] == "auth"
    [listed] = await js_sdk.value("listEventTypes")
    assert listed["name"] == "user.created" and listed["authorizerId"] == "auth"
    assert await js_sdk.error("updateEventType", {"name": "nope"}) == (
        'Failed to update nope event type due the error: Event Type "nope" not found.')

    assert await js_sdk.value("deleteEventType", {"name": "user.created"}) is None
    assert await js_sdk.error("deleteEventType", {"name": "user.created"}) == (
        'Failed to delete user.created event type due the error: Event Type "user.created" not found.')
    assert await js_sdk.value("listEventTypes") == []


async def test_js_sdk_subscriptions(js_sdk: JsSdk, function_server) -> None:
    results = await js_sdk.run(
        ("createFunction", {"functionId": "hello", "type": "http",
                            "provider": {"url": function_server.url + "/hello"}}),
        ("createEventType", {"name": "user.created"}),
        ("createEventType", {"name": "http.request"}),
        ("subscribe", {"type": "async", "eventType": "user.created", "functionId": "hello", "path": "/"}),
        ("subscribe", {"type": "sync", "eventType": "http.request", "functionId": "hello",
                       "path": "/sync", "method": "POST"}),
    )
    assert all(r["ok"] for r in results), results
    async_sub, sync_sub = results[3]["value"], results[4]["value"]
    assert async_sub["type"] == "async" and async_sub["eventType"] == "user.created"
    assert async_sub["functionId"] == "hello" and async_sub["path"] == "/"
    assert sync_sub["type"] == "sync" and sync_sub["path"] == "/sync" and sync_sub["method"] == "POST"

    listed = await js_sdk.value("listSubscriptions")
    assert {s["subscriptionId"] for s in listed} == {async_sub["subscriptionId"], sync_sub["subscriptionId"]}

    duplicate = await js_sdk.error("subscribe", {"type": "async", "eventType": "user.created",
                                                 "functionId": "hello", "path": "/"})
    assert duplicate == ("Failed to subscribe the event user.created to the function hello due the error: "
                         f'Subscription "{async_sub["subscriptionId"]}" already exists.')
    missing_fn = await js_sdk.error("subscribe", {"type": "async", "eventType": "user.created",
                                                  "functionId": "nope", "path": "/other"})
    assert missing_fn == ("Failed to subscribe the event user.created to the function nope due the error: "
                          'Function "nope" not found.')
    missing_type = await js_sdk.error("subscribe", {"type": "async", "eventType": "user.deleted",
                                                    "functionId": "hello", "path": "/"})
    assert missing_type == ("Failed to subscribe the event user.deleted to the function hello due the error: "
                            'Event Type "user.deleted" not found.')

    # Still in use: neither the function nor the event type can go.
    in_use = await js_sdk.error("deleteFunction", {"functionId": "hello"})
    assert in_use.startswith("Failed to delete the function hello due the error: ")
    in_use = await js_sdk.error("deleteEventType", {"name": "user.created"})
    assert in_use.startswith("Failed to delete user.created event type due the error: ")

    assert await js_sdk.value("unsubscribe", {"subscriptionId": async_sub["subscriptionId"]}) is None
    assert await js_sdk.error("unsubscribe", {"subscriptionId": async_sub["subscriptionId"]}) == (
        f"Failed to unsubscribe the subscription {async_sub['subscriptionId']} due the error: "
        f'Subscription "{async_sub["subscriptionId"]}" not found.')
    [left] = await js_sdk.value("listSubscriptions")
    assert left["subscriptionId"] == sync_sub["subscriptionId"]


async def test_js_sdk_cors(js_sdk: JsSdk) -> None:
    created = await js_sdk.value("createCORS", {"method": "POST", "path": "/shop",
                                                "allowedOrigins": ["https://shop.example"]})
    cors_id = created["corsId"]
    assert created["path"] == "/shop" and created["allowedOrigins"] == ["https://shop.example"]
    [listed] = await js_sdk.value("listCORS")
    assert listed["corsId"] == cors_id

    async with httpx.AsyncClient(base_url=js_sdk.options["url"]) as events:
        preflight = await events.options("/shop", headers={"Origin": "https://shop.example",
                                                           "Access-Control-Request-Method": "POST"})
        assert preflight.headers.get("access-control-allow-origin") == "https://shop.example"

        updated = await js_sdk.value("updateCORS", {"corsId": cors_id, "method": "POST", "path": "/shop",
                                                    "allowedOrigins": ["https://other.example"]})
        assert updated["allowedOrigins"] == ["https://other.example"]
        preflight = await events.options("/shop", headers={"Origin": "https://other.example",
                                                           "Access-Control-Request-Method": "POST"})
        assert preflight.headers.get("access-control-allow-origin") == "https://other.example"

    assert await js_sdk.value("deleteCORS", {"corsId": cors_id}) is None
    assert await js_sdk.error("deleteCORS", {"corsId": cors_id}) == (
        f"Failed to delete {cors_id} CORS configuration due the error: CORS configuration \"{cors_id}\" not found.")
    assert await js_sdk.value("listCORS") == []


async def test_js_sdk_emit_async(js_sdk: JsSdk, function_server) -> None:
    results = await js_sdk.run(
        ("createFunction", {"functionId": "hello", "type": "http",
                            "provider": {"url": function_server.url + "/hello"}}),
        ("createEventType", {"name": "user.created"}),
        ("subscribe", {"type": "async", "eventType": "user.created", "functionId": "hello", "path": "/"}),
        ("emit", cloud_event("user.created", {"userId": "ada"}, event_id="e-1")),
    )
    assert all(r["ok"] for r in results), results
    emitted = results[3]["value"]
    assert emitted["status"] == 202 and emitted["body"] == ""

    [delivered] = await function_server.wait_for_requests(1)
    assert delivered.method == "POST" and delivered.path == "/hello"
    event = delivered.json
    assert event["eventType"] == "user.created"
    assert event["eventID"] == "e-1"
    assert event["source"] == "/services/users"
    assert event["data"] == {"userId": "ada"}


async def test_js_sdk_emit_sync(js_sdk: JsSdk, function_server) -> None:
    # A sync function answers upstream's response object; the gateway answers the client with it.
    function_server.respond(200, {"statusCode": 201, "headers": {"Content-Type": "application/json",
                                                                 "X-Greeter": "hello"},
                                  "body": '{"greeting":"hi ada"}'})
    results = await js_sdk.run(
        ("createFunction", {"functionId": "hello", "type": "http",
                            "provider": {"url": function_server.url + "/hello"}}),
        ("createEventType", {"name": "user.created"}),
        ("subscribe", {"type": "sync", "eventType": "user.created", "functionId": "hello", "path": "/sync"}),
        ("emit", cloud_event("user.created", {"userId": "ada"}), {"path": "/sync"}),
    )
    assert all(r["ok"] for r in results[:3]), results
    assert results[3]["ok"], results[3]
    answer = results[3]["value"]
    assert answer["status"] == 201
    assert answer["headers"]["content-type"] == "application/json"
    assert answer["headers"]["x-greeter"] == "hello"
    assert json.loads(answer["body"]) == {"greeting": "hi ada"}

    [delivered] = await function_server.wait_for_requests(1)
    assert delivered.json["eventType"] == "user.created"
    assert delivered.json["data"] == {"userId": "ada"}


async def test_js_sdk_emit_errors(js_sdk: JsSdk, function_server) -> None:
    function_server.respond(500, {"boom": True})
    setup = await js_sdk.run(
        ("createFunction", {"functionId": "hello", "type": "http",
                            "provider": {"url": function_server.url + "/hello"}}),
        ("createEventType", {"name": "user.created"}),
        ("subscribe", {"type": "sync", "eventType": "user.created", "functionId": "hello", "path": "/sync"}),
    )
    assert all(r["ok"] for r in setup), setup
    failed = await js_sdk.error("emit", cloud_event("user.created", {}), {"path": "/sync"})
    assert failed == "Failed to emit the event user.created due the error: Function call failed. Please check logs."

    invalid = await js_sdk.error("emit", {"eventType": "user.created", "cloudEventsVersion": "0.1"})
    assert invalid.startswith("Failed to emit the event user.created due the error: CloudEvent doesn't validate: ")


# -- the Python SDK ------------------------------------------------------------------------------------




class PySdk:
    """One ``EventGateway`` client; every call runs in a thread (the SDK is synchronous, the function
    server answering the gateway runs in this event loop) and returns what the SDK printed with it."""

    def __init__(self, module: ModuleType, events_url: str, config_url: str) -> None:
        self.client = module.EventGateway(url=events_url, configurationUrl=config_url, space="default")

    async def call(self, method: str, *args: Any, **kwargs: Any) -> tuple[Any, str]:
        def run() -> tuple[Any, str]:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                result = getattr(self.client, method)(*args, **kwargs)
            return result, printed.getvalue()
        return await asyncio.to_thread(run)

    async def value(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return (await self.call(method, *args, **kwargs))[0]


@pytest.fixture
def py_sdk(eventgateway: ModuleType, gateway_process) -> PySdk:
    gw = gateway_process("--db", "memory")
    return PySdk(eventgateway, gw.events_url, gw.config_url)


async def test_py_sdk_connection_and_urls(eventgateway: ModuleType, py_sdk: PySdk) -> None:
    assert await py_sdk.value("checkConnection") is True
    # Without configurationUrl it derives upstream's default port 4001 from the events URL.
    derived = eventgateway.EventGateway(url="http://127.0.0.1:4000")
    assert derived.configurationUrl == "http://127.0.0.1:4001"
    assert py_sdk.client.getAdminUrl("functions").endswith("/v1/spaces/default")


async def test_py_sdk_functions(py_sdk: PySdk, function_server) -> None:
    url = function_server.url + "/hello"
    fn = {"functionId": "hello", "type": "http", "provider": {"url": url}}
    created, printed = await py_sdk.call("createFunction", fn)
    assert created["functionId"] == "hello" and created["space"] == "default"
    assert created["provider"]["url"] == url
    assert printed == "Functions hello created successfully\n"

    # 409: the SDK answers False and says so.
    duplicate, printed = await py_sdk.call("createFunction", fn)
    assert duplicate is False
    assert printed == "Functions hello already exists\n"

    # 400: False, and it prints the gateway's error body.
    invalid, printed = await py_sdk.call("createFunction", {"functionId": "broken", "type": "http"})
    assert invalid is False
    assert printed.startswith("Issue while creating Functions broken\n")
    assert "Function doesn't validate." in printed

    got = await py_sdk.value("getFunction", "hello")
    assert got == created
    listed = await py_sdk.value("getAllFunction")
    assert listed == {"functions": [created]}

    missing, printed = await py_sdk.call("getFunction", "nope")
    assert missing is False
    assert printed == "functions nope not found\n"


async def test_py_sdk_event_types_and_subscriptions(py_sdk: PySdk, function_server) -> None:
    assert (await py_sdk.value("createFunction", {"functionId": "hello", "type": "http",
                                                  "provider": {"url": function_server.url + "/hello"}}))
    created, printed = await py_sdk.call("createEventType", {"name": "user.created"})
    assert created == {"space": "default", "name": "user.created"}
    assert printed == "Eventtypes user.created created successfully\n"
    duplicate, printed = await py_sdk.call("createEventType", {"name": "user.created"})
    assert duplicate is False and printed == "Eventtypes user.created already exists\n"
    assert await py_sdk.value("getEventType", "user.created") == created
    assert await py_sdk.value("getAllEventType") == {"eventTypes": [created]}
    assert await py_sdk.value("getEventType", "user.deleted") is False

    sub = {"type": "async", "eventType": "user.created", "functionId": "hello", "path": "/"}
    subscription, printed = await py_sdk.call("createSubscription", sub)
    assert printed == "Subscriptions hello created successfully\n"
    assert {k: subscription[k] for k in sub} == sub
    sub_id = subscription["subscriptionId"]
    duplicate, printed = await py_sdk.call("createSubscription", sub)
    assert duplicate is False and printed == "Subscriptions hello already exists\n"
    missing, printed = await py_sdk.call("createSubscription", {**sub, "eventType": "user.deleted"})
    assert missing is False
    assert printed.startswith("Issue while creating Subscriptions hello\n")
    assert 'Event Type "user.deleted" not found.' in printed

    assert await py_sdk.value("getSubscription", sub_id) == subscription
    assert await py_sdk.value("getAllSubscription") == {"subscriptions": [subscription]}
    assert await py_sdk.value("getSubscription", "nope") is False


async def test_py_sdk_cors(py_sdk: PySdk) -> None:
    created, printed = await py_sdk.call("createCORS", {"method": "POST", "path": "/shop",
                                                        "allowedOrigins": ["https://shop.example"]})
    assert printed == "Cors /shop created successfully\n"
    assert created["path"] == "/shop" and created["allowedOrigins"] == ["https://shop.example"]
    async with httpx.AsyncClient(base_url=py_sdk.client.clientUrl) as events:
        preflight = await events.options("/shop", headers={"Origin": "https://shop.example",
                                                           "Access-Control-Request-Method": "POST"})
    assert preflight.headers.get("access-control-allow-origin") == "https://shop.example"


async def test_py_sdk_emit_async(py_sdk: PySdk, function_server) -> None:
    assert await py_sdk.value("createFunction", {"functionId": "hello", "type": "http",
                                                 "provider": {"url": function_server.url + "/hello"}})
    assert await py_sdk.value("createEventType", {"name": "user.created"})
    assert await py_sdk.value("createSubscription", {"type": "async", "eventType": "user.created",
                                                     "functionId": "hello", "path": "/"})
    event = cloud_event("user.created", {"userId": "ada"}, event_id="e-7")
    response = await py_sdk.value("emit", event, headers={"Content-Type": "application/cloudevents+json"})
    assert response.status_code == 202 and response.text == ""

    [delivered] = await function_server.wait_for_requests(1)
    assert delivered.path == "/hello"
    assert delivered.json["eventType"] == "user.created"
    assert delivered.json["eventID"] == "e-7"
    assert delivered.json["data"] == {"userId": "ada"}


async def test_py_sdk_emit_sync_http_request(py_sdk: PySdk, function_server) -> None:
    """The SDK's default emit (``application/json``): an ``http.request`` event; a sync subscription's
    function answers the client through the gateway."""
    function_server.respond(200, {"statusCode": 200, "headers": {"Content-Type": "text/plain"},
                                  "body": "hello ada"})
    assert await py_sdk.value("createFunction", {"functionId": "hello", "type": "http",
                                                 "provider": {"url": function_server.url + "/hello"}})
    assert await py_sdk.value("createEventType", {"name": "http.request"})
    assert await py_sdk.value("createSubscription", {"type": "sync", "eventType": "http.request",
                                                     "functionId": "hello", "path": "/greet",
                                                     "method": "POST"})
    response = await py_sdk.value("emit", {"name": "ada"}, path="/greet")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain"
    assert response.text == "hello ada"

    [delivered] = await function_server.wait_for_requests(1)
    event = delivered.json
    assert event["eventType"] == "http.request"
    assert event["data"]["path"] == "/greet"
    assert event["data"]["method"] == "POST"
    assert event["data"]["body"] == {"name": "ada"}


async def test_py_sdk_emit_errors(py_sdk: PySdk, function_server) -> None:
    function_server.respond(500, {"boom": True})
    assert await py_sdk.value("createFunction", {"functionId": "hello", "type": "http",
                                                 "provider": {"url": function_server.url + "/hello"}})
    assert await py_sdk.value("createEventType", {"name": "user.created"})
    assert await py_sdk.value("createSubscription", {"type": "sync", "eventType": "user.created",
                                                     "functionId": "hello", "path": "/sync"})
    failed = await py_sdk.value("emit", cloud_event("user.created", {}), path="/sync",
                                headers={"Content-Type": "application/cloudevents+json"})
    assert failed.status_code == 500
    assert failed.json() == {"errors": [{"message": "Function call failed. Please check logs."}]}

    invalid = await py_sdk.value("emit", {"eventType": "user.created", "cloudEventsVersion": "0.1"},
                                 headers={"Content-Type": "application/cloudevents+json"})
    assert invalid.status_code == 400
    assert invalid.json()["errors"][0]["message"].startswith("CloudEvent doesn't validate: ")
