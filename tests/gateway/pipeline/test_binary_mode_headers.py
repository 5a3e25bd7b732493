"""CloudEvents binary mode header values through the real Events API: percent-decoded as the HTTP bindings
say (1.0 section 3.1.3.2: quoted-string unescaping, then one round of percent-decoding, invalid UTF-8
refused; 0.1 section 3.1.3.2: the attribute's JSON value, percent-encoded), and what reaches a real
function server is the decoded attribute."""

from __future__ import annotations

import httpx
from .event_plane_harness import EventGateway, FunctionServer, GatewayFactory


async def _gateway(event_gateway: GatewayFactory, recorder: FunctionServer) -> EventGateway:
    gw = await event_gateway()
    await gw.function("fn", recorder.target("fn"))
    await gw.subscribe("async", "user.created", "fn")
    return gw


def _error(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    return response.json()["errors"][0]["message"]


async def test_v10_ce_headers_are_percent_decoded(event_gateway, recorder) -> None:
    gw = await _gateway(event_gateway, recorder)
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "user.created",
        "ce-id": "%65-1",  # an unnecessary escape ('e') must be accepted
        "ce-source": "/caf%C3%A9/%e2%82%ac",  # lower-case hex too
        "ce-subject": "Euro%20%E2%82%AC%20%F0%9F%98%80 100%25",  # the spec's example, and '%25' for '%'
        "ce-note": '"older \\"quoted\\" sender%21"',  # quoted-string first, then percent-decoding
        "content-type": "application/json",
    }
    assert (await gw.client.post("/", content=b'{"n": 1}', headers=headers)).status_code == 202
    [received] = await recorder.wait_for("fn")
    event = received["body"]
    assert event["id"] == "e-1"
    assert event["source"] == "/café/€"
    assert event["subject"] == "Euro € 😀 100%"
    assert event["note"] == 'older "quoted" sender!'
    assert event["data"] == {"n": 1} and event["datacontenttype"] == "application/json"


async def test_v10_raw_utf8_from_a_non_conforming_sender_is_read_as_utf8(event_gateway, recorder) -> None:
    gw = await _gateway(event_gateway, recorder)
    headers = [(b"ce-specversion", b"1.0"), (b"ce-type", b"user.created"), (b"ce-id", b"raw"),
               (b"ce-source", "/café".encode())]
    assert (await gw.client.post("/", content=b"", headers=headers)).status_code == 202
    [received] = await recorder.wait_for("fn")
    assert received["body"]["source"] == "/café"


async def test_v10_broken_encodings_are_refused_naming_the_header(event_gateway, recorder) -> None:
    gw = await _gateway(event_gateway, recorder)
    base = {"ce-specversion": "1.0", "ce-type": "user.created", "ce-id": "1", "ce-source": "/s"}
    message = _error(await gw.client.post("/", content=b"", headers={**base, "ce-subject": "100% sure"}))
    assert message == ("binary-mode CloudEvent (ce-* headers): header 'ce-subject': '%' at position 3 is not "
                       "followed by two hex digits (CloudEvents header values are percent-encoded: send '%25' "
                       "for a literal '%')")
    message = _error(await gw.client.post("/", content=b"", headers={**base, "ce-source": "/a%C0%A0"}))
    assert message.startswith("binary-mode CloudEvent (ce-* headers): header 'ce-source': the percent-decoded "
                              "value is not valid UTF-8")  # %C0%A0: the spec's overlong example
    message = _error(await gw.client.post("/", content=b"", headers={**base, "ce-subject": '"unterminated'}))
    assert "header 'ce-subject': a quoted value has no closing '\"'" in message
    assert recorder.received["fn"] == []


async def test_v01_ce_headers_are_json_values_percent_encoded(event_gateway, recorder) -> None:
    gw = await _gateway(event_gateway, recorder)
    headers = {
        "CE-CloudEventsVersion": '"0.1"',  # the 0.1 spec's own examples quote the JSON string
        "CE-EventType": '"user.created"',
        "CE-EventID": "v01-1",  # bare, as the upstream gateway's clients send
        "CE-Source": '"/caf%C3%A9"',
        "CE-X-Note": "50%25 off %E2%82%AC",
        "content-type": "text/plain",
    }
    assert (await gw.client.post("/", content=b"hello", headers=headers)).status_code == 202
    [received] = await recorder.wait_for("fn")
    event = received["body"]
    assert (event["cloudEventsVersion"], event["eventType"], event["eventID"], event["source"]) == \
        ("0.1", "user.created", "v01-1", "/café")
    assert event["extensions"] == {"note": "50% off €"} and event["data"] == "hello"

    # Not valid percent-encoding: kept as sent, as upstream (which never decoded 0.1 values) did.
    raw = {**headers, "CE-EventID": "v01-2", "CE-X-Note": "50% off"}
    assert (await gw.client.post("/", content=b"x", headers=raw)).status_code == 202
    assert (await recorder.wait_for("fn", 2))[1]["body"]["extensions"] == {"note": "50% off"}
