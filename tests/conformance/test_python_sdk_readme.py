"""The Python SDK's own README example against a real gateway: ``event-gateway-sdk`` 1.2.0 (PyPI), ``emit``
with its default content type (``application/json``) and a CloudEvent without ``eventID``. Upstream 0.9.1
answered 202 (the body is not a valid CloudEvent, so it is a plain JSON request: an ``http.request``
event); so must this gateway.

The SDK is installed with ``pip install --target`` into a temporary folder, never into the project's
environment: its wheel ships a stray top-level ``tests`` package that would shadow this project's. The
folder is on ``sys.path`` only while the test runs. If pip cannot install it the test fails (PyPI is part
of the test's environment), it is not skipped.
"""

from __future__ import annotations

import asyncio

import httpx



async def test_readme_emit_with_default_content_type_is_accepted(gateway_server, function_server,
                                                                 eventgateway) -> None:
    running = await gateway_server()
    base = "/v1/spaces/default"
    async with httpx.AsyncClient(base_url=running.config_url) as config:
        assert (await config.post(f"{base}/functions", json={
            "functionId": "mailer", "type": "http",
            "provider": {"url": function_server.url + "/mailer"}})).status_code == 201
        assert (await config.post(f"{base}/eventtypes", json={"name": "http.request"})).status_code == 201
        assert (await config.post(f"{base}/subscriptions", json={
            "type": "async", "eventType": "http.request", "functionId": "mailer",
            "path": "/user/send-mail-user"})).status_code == 201

    # The README's example, verbatim but for the URL (and its typo: it passes `configData`).
    eg = eventgateway.EventGateway(url=running.events_url)
    cloud_event = {
        "eventType": "user.created",
        "cloudEventsVersion": "0.1",
        "source": "/services/users",
        "data": {
            "userId": "foo",
            "userName": "bar",
        },
    }
    # The SDK is synchronous (requests); the gateway runs in this event loop, so call it from a thread.
    response = await asyncio.to_thread(eg.emit, cloudEvent=cloud_event, path="/user/send-mail-user")
    assert response.status_code == 202, response.text
    assert response.text == ""

    [delivered] = await function_server.wait_for_requests(1)
    event = delivered.json
    assert event["eventType"] == "http.request"
    assert event["data"]["body"] == cloud_event
    assert event["data"]["path"] == "/user/send-mail-user"
    assert event["data"]["headers"]["Content-Type"] == "application/json"
