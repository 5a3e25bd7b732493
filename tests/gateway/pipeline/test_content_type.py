"""A malformed ``Content-Type`` through the real Events API: refused with 400 naming the value and what
is wrong (upstream also answered 400, with Go's bare ``mime:`` error), before any event is made or any
function called; a well-formed but unknown media type is not malformed and reaches the function."""

from __future__ import annotations

import base64

import pytest
from .event_plane_harness import EventGateway, FunctionServer, GatewayFactory


async def _gateway(event_gateway: GatewayFactory, recorder: FunctionServer) -> EventGateway:
    gw = await event_gateway()
    await gw.function("fn", recorder.target("fn"))
    await gw.function("hook", recorder.target("hook"))
    await gw.subscribe("sync", "http.request", "fn", path="/hook", method="POST")
    await gw.subscribe("async", "user.created", "hook")
    return gw


@pytest.mark.parametrize(("content_type", "reason"), [
    ("json", "expected a media type 'type/subtype' (such as application/json)"),
    ("application/", "'application/' is not a media type 'type/subtype' of tokens"),
    ("text/pl@in", "'text/pl@in' is not a media type 'type/subtype' of tokens"),
    ("text/plain; charset", "parameter 'charset' is not name=value"),
    ('application/json; charset="utf-8', "parameter 'charset=\"utf-8' is not name=value"),
])
async def test_malformed_content_types_are_refused_naming_the_value(event_gateway, recorder, content_type,
                                                                    reason) -> None:
    gw = await _gateway(event_gateway, recorder)
    for path, extra in (("/hook", {}), ("/", {"Event": "user.created"})):
        response = await gw.client.post(path, content=b'{"a": 1}', headers={"content-type": content_type, **extra})
        assert response.status_code == 400
        [error] = response.json()["errors"]
        assert error["message"].startswith(f"Content-Type header {content_type!r} is malformed: {reason}")
    await gw.plane.settle(5)
    assert recorder.received["fn"] == [] and recorder.received["hook"] == []


async def test_well_formed_content_types_are_accepted_even_unknown_ones(event_gateway, recorder) -> None:
    gw = await _gateway(event_gateway, recorder)
    for content_type in ("vnd.example/x-thing", "application/json ; charset = utf-8", "application/json;",
                         'text/plain; charset="utf-8"; q=1'):
        assert (await gw.client.post("/hook", content=b'"x"', headers={"content-type": content_type})).status_code == 200
    assert (await gw.client.post("/hook", content=b"raw")).status_code == 200  # no Content-Type at all
    events = [r["body"] for r in await recorder.wait_for("fn", 5)]
    assert events[0]["data"]["body"] == base64.b64encode(b'"x"').decode()  # unknown type: opaque bytes
    assert events[0]["data"]["headers"]["Content-Type"] == "vnd.example/x-thing"
    assert events[1]["data"]["body"] == "x" and events[2]["data"]["body"] == "x"  # JSON, decoded
    assert events[3]["data"]["body"] == '"x"'  # text
