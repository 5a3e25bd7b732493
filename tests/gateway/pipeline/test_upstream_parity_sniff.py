"""Sync responses without a ``Content-Type``: typed as Go's ``net/http`` typed them for the upstream gateway
(``http.DetectContentType`` on the body), through a real gateway and a real function server; a function's
own ``Content-Type`` always wins."""

from __future__ import annotations

import base64

import httpx
import pytest

from gateway.pipeline.sniff import detect_content_type

# Cases of Go's src/net/http/sniff_test.go (Go 1.10), plus the fallbacks.
_GO_CASES = [
    (b"", "text/plain; charset=utf-8"),
    (b"Hello, world!", "text/plain; charset=utf-8"),
    (b"\x01\x02\x03", "application/octet-stream"),
    (b"\x00\x00\x00\x00", "application/octet-stream"),
    (b'{"a": 1}', "text/plain; charset=utf-8"),
    (b"<HtMl><bOdY>blah blah blah</body></html>", "text/html; charset=utf-8"),
    (b"\n<html>blah</html>", "text/html; charset=utf-8"),
    (b"<!DOCTYPE HTML PUBLIC", "text/html; charset=utf-8"),
    (b"<html", "text/plain; charset=utf-8"),  # the tag must be followed by ' ' or '>'
    (b"<p>x</p>", "text/html; charset=utf-8"),
    (b"<!-- c -->", "text/html; charset=utf-8"),
    (b"\n<?xml!", "text/xml; charset=utf-8"),
    (b"%PDF-1.4", "application/pdf"),
    (b"%!PS-Adobe-3.0", "application/postscript"),
    (b"\xfe\xff\x00\x41", "text/plain; charset=utf-16be"),
    (b"\xff\xfe\x41\x00", "text/plain; charset=utf-16le"),
    (b"\xef\xbb\xbfhi", "text/plain; charset=utf-8"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a...", "image/gif"),
    (b"\x89PNG\x0d\x0a\x1a\x0a", "image/png"),
    (b"\xff\xd8\xff\xe0", "image/jpeg"),
    (b"BM....", "image/bmp"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"\x00\x00\x01\x00\x01\x00", "image/vnd.microsoft.icon"),
    (b"OggS\x00\x02", "application/ogg"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wave"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom<\x06t\xbfmdat", "video/mp4"),
    (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", "application/octet-stream"),
    (b"Rar \x1a\x07\x00", "application/x-rar-compressed"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b\x08\x00", "application/x-gzip"),
    (b"x" * 600 + b"\x01", "text/plain; charset=utf-8"),  # only the first 512 bytes count
]


@pytest.mark.parametrize(("body", "expected"), _GO_CASES)
def test_detect_content_type_is_gos_table(body: bytes, expected: str) -> None:
    assert detect_content_type(body) == expected


async def _configure(config: httpx.AsyncClient, function_url: str) -> None:
    base = "/v1/spaces/default"
    assert (await config.post(f"{base}/functions", json={
        "functionId": "fn", "type": "http", "provider": {"url": function_url}})).status_code == 201
    assert (await config.post(f"{base}/eventtypes", json={"name": "http.request"})).status_code == 201
    assert (await config.post(f"{base}/subscriptions", json={
        "type": "sync", "eventType": "http.request", "functionId": "fn", "path": "/page",
        "method": "GET"})).status_code == 201


@pytest.mark.parametrize(("answer", "expected_type", "expected_body"), [
    ({"statusCode": 200, "body": "<html><body>hi</body></html>"}, "text/html; charset=utf-8",
     b"<html><body>hi</body></html>"),
    ({"statusCode": 200, "body": "plain words"}, "text/plain; charset=utf-8", b"plain words"),
    ({"statusCode": 200, "body": '{"a":1}'}, "text/plain; charset=utf-8", b'{"a":1}'),
    ({"statusCode": 201, "body": "<?xml version='1.0'?><a/>"}, "text/xml; charset=utf-8",
     b"<?xml version='1.0'?><a/>"),
    ({"statusCode": 200, "body": base64.b64encode(b"\x89PNG\r\n\x1a\n\x00").decode(), "isBase64Encoded": True},
     "image/png", b"\x89PNG\r\n\x1a\n\x00"),
    ({"statusCode": 200, "body": base64.b64encode(b"\x00\x01\x02").decode(), "isBase64Encoded": True},
     "application/octet-stream", b"\x00\x01\x02"),
    # the function's own header wins, in any case
    ({"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "<html>"},
     "application/json", b"<html>"),
    ({"statusCode": 200, "headers": {"Content-Type": "text/csv"}, "body": "a,b"}, "text/csv", b"a,b"),
])
async def test_untyped_sync_responses_are_sniffed_as_go_did(gateway_server, function_server, answer,
                                                              expected_type, expected_body) -> None:
    running = await gateway_server()
    function_server.respond(200, answer)
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        await _configure(config, function_server.url + "/fn")
        response = await events.get("/page")
    assert response.status_code == answer["statusCode"]
    assert response.headers["content-type"] == expected_type
    assert response.content == expected_body


async def test_empty_untyped_sync_response_gets_no_content_type(gateway_server, function_server) -> None:
    running = await gateway_server()
    function_server.respond(200, {"statusCode": 200, "body": ""})
    async with httpx.AsyncClient(base_url=running.config_url) as config, \
            httpx.AsyncClient(base_url=running.events_url) as events:
        await _configure(config, function_server.url + "/fn")
        response = await events.get("/page")
    assert response.status_code == 200 and response.content == b""
    assert "content-type" not in response.headers
