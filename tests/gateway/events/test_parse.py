"""Request parsing rules, case by case (the end-to-end tests in tests/gateway/pipeline cover the same formats
through the server; these pin the exact shapes and error messages)."""

from __future__ import annotations

import base64
import json

import pytest

from gateway.events.cloudevents import InvalidEvent, set_extension
from gateway.events.parse import RawRequest, parse_request


def _request(body: bytes = b"", method: str = "POST", path: str = "/", **headers: str) -> RawRequest:
    return RawRequest(method=method, path=path, host="gw.local",
                      headers=[(k.replace("_", "-"), v) for k, v in headers.items()], query={}, body=body)


def test_binary_v10_keeps_unknown_bodies_as_data_base64() -> None:
    parsed = parse_request(_request(b"\x00\xff", ce_specversion="1.0", ce_type="t", ce_source="/s", ce_id="1",
                                    content_type="application/octet-stream", ce_traceparent="00-1"))
    event = parsed.events[0]
    assert event["data_base64"] == base64.b64encode(b"\x00\xff").decode()
    assert event["traceparent"] == "00-1" and event["datacontenttype"] == "application/octet-stream"


def test_http_request_wrapping_has_the_upstream_fields() -> None:
    request = RawRequest(method="PUT", path="/a/b", host="gw.local",
                         headers=[("x-multi", "1"), ("X-Multi", "2"), ("content-type", "text/plain")],
                         query={"q": ["1", "2"]}, body=b"hello")
    event = parse_request(request).events[0]
    assert event["eventType"] == "http.request"
    assert event["source"] == "https://serverless.com/event-gateway/#transformationVersion=0.1"
    assert event["data"] == {"headers": {"X-Multi": "1, 2", "Content-Type": "text/plain"}, "query": {"q": ["1", "2"]},
                             "body": "hello", "host": "gw.local", "path": "/a/b", "method": "PUT", "params": {}}


def test_application_json_cloudevent_body_is_recognised() -> None:
    event = {"eventType": "a", "cloudEventsVersion": "0.1", "source": "/s", "eventID": "1"}
    parsed = parse_request(_request(json.dumps(event).encode(), content_type="application/json"))
    assert parsed.events == [event]
    plain = parse_request(_request(b'{"a": 1}', content_type="application/json"))
    assert plain.events[0]["eventType"] == "http.request" and plain.events[0]["data"]["body"] == {"a": 1}


@pytest.mark.parametrize(("body", "headers", "message"), [
    (b'{"specversion": "0.3", "type": "t", "source": "/", "id": "1"}',
     {"content_type": "application/cloudevents+json"}, "unsupported specversion '0.3'"),
    (b'{"specversion": "1.0", "type": "t", "source": "/", "id": "1", "time": "yesterday"}',
     {"content_type": "application/cloudevents+json"}, "'time' is not an RFC 3339 timestamp"),
    (b'{"specversion": "1.0", "type": "t", "source": "/", "id": "1", "Bad-Name": 1}',
     {"content_type": "application/cloudevents+json"}, "attribute name 'Bad-Name' is invalid"),
    (b'{"type": "t"}', {"content_type": "application/cloudevents+json"}, "neither 'specversion'"),
    (b'[{"specversion": "1.0", "type": "t", "source": "/", "id": "1"}, {"specversion": "1.0"}]',
     {"content_type": "application/cloudevents-batch+json"}, "batch item 1: required attribute 'id'"),
    (b"x", {"ce_specversion": "1.0", "ce_type": "t", "ce_id": "1"}, "binary-mode CloudEvent (ce-* headers)"),
    (b"x", {"CE_EventType": "t", "CE_CloudEventsVersion": "0.1", "CE_Source": "/"}, "'eventID'"),
    (b"{}", {"Event": "eventgateway.function.invoked"}, "reserved"),
])
def test_invalid_events_name_what_is_wrong(body: bytes, headers: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidEvent, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        parse_request(_request(body, **headers))


def test_extensions_go_where_each_version_keeps_them() -> None:
    v10 = {"specversion": "1.0", "type": "t", "source": "/", "id": "1"}
    v01 = {"eventType": "t", "cloudEventsVersion": "0.1", "source": "/", "eventID": "1", "extensions": {"a": 1}}
    assert set_extension(v10, "eventgateway", {"x": 1})["eventgateway"] == {"x": 1}
    assert set_extension(v01, "eventgateway", {"x": 1})["extensions"] == {"a": 1, "eventgateway": {"x": 1}}
    assert "eventgateway" not in v10 and v01["extensions"] == {"a": 1}  # copies, never in place
