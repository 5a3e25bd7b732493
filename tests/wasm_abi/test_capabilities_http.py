"""The http capability through the real host against a real HTTP server (ABI.md section 7.1, "http"):
grants, the address rules, redirects, deadlines, caps and header rules -- each as a hostile plugin would
try them."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgpack
import pytest

from tests.wasm_abi.capability_wat import HTTP, Data, cap_plugin, memory, react, results, store
from wasm_abi import Grants, HttpGrant, Limits, Plugin
from wasm_abi.capabilities import (
    EG_DENIED,
    EG_INVALID,
    EG_NOT_FOUND,
    EG_TIMEOUT,
    EG_TOO_LARGE,
    EG_UNAVAILABLE,
)

RESPONSE_AT = 131072  # page 2 and 3: room for a 64 KiB response
SEEN: list[dict[str, Any]] = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:  # the host stopped reading (a capped answer): expected
            pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        SEEN.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        path = self.path
        port = self.server.server_address[1]
        if path == "/ok":
            self._answer(200, b'{"ok":true}', {"content-type": "application/json", "x-multi": "a"})
        elif path == "/echo":
            self._answer(201, body, {"X-Method": self.command})
        elif path == "/redirect-in":
            self._answer(302, b"", {"Location": "/ok"})
        elif path == "/redirect-303":
            self._answer(303, b"", {"Location": "/echo"})
        elif path == "/redirect-out":
            self._answer(302, b"", {"Location": f"http://127.0.0.2:{port}/ok"})
        elif path == "/loop":
            self._answer(302, b"", {"Location": "/loop"})
        elif path == "/slow":
            time.sleep(30)  # far beyond every deadline below and their hang guards
            self._answer(200, b"late")
        elif path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(1000):  # 50 s for the whole body
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
        elif path == "/huge":
            self._answer(200, b"y" * (2 * 1024 * 1024))
        else:
            self._answer(404, b"no")

    do_GET = do_POST = do_PUT = _handle


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("0.0.0.0", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def plugin_for(request: dict[str, Any] | bytes, grants: list[str | HttpGrant], limits: Limits | None = None,
               log: list[str] | None = None) -> Plugin:
    d = Data()
    raw = request if isinstance(request, bytes) else msgpack.packb(request, use_bin_type=True)
    body = (store(0, f"(call $http_request {d.ref(raw)})")
            + store(1, f"(call $http_response (i32.const {RESPONSE_AT}) (i32.const 65536))"))
    handler = (lambda plugin, level, message: log.append(message)) if log is not None else None
    return Plugin.from_bytes(cap_plugin(body, d, HTTP, memory_pages=4), name="h",
                             grants=Grants(http=tuple(grants)),  # type: ignore[arg-type]
                             limits=limits or Limits(sync_timeout=1.0), log_handler=handler)


def call(request: dict[str, Any] | bytes, grants: list[str | HttpGrant], **kwargs: Any) -> tuple[list[int], Any]:
    with plugin_for(request, grants, **kwargs) as plugin:
        react(plugin)
        codes = results(plugin, 2)
        response = msgpack.unpackb(memory(plugin, RESPONSE_AT, codes[1])) if codes[1] > 0 else None
        return codes, response


def test_a_granted_get(server: int) -> None:
    codes, response = call({"url": f"http://127.0.0.1:{server}/ok"}, [f"http://127.0.0.1:{server}/"])
    assert codes[0] == codes[1] > 0
    assert response["status"] == 200
    assert response["body"] == b'{"ok":true}'
    assert response["headers"]["Content-Type"] == "application/json"  # canonical case
    assert response["headers"]["X-Multi"] == "a"


def test_a_post_sends_method_headers_and_body(server: int) -> None:
    SEEN.clear()
    codes, response = call({"url": f"http://127.0.0.1:{server}/echo", "method": "post",
                            "headers": {"authorization": "Bearer t", "X-Trace": "1"}, "body": b"\x00\x01payload"},
                           [f"http://127.0.0.1:{server}/echo"])
    assert response["status"] == 201 and response["body"] == b"\x00\x01payload"
    assert SEEN[-1]["method"] == "POST"
    assert SEEN[-1]["headers"]["Authorization"] == "Bearer t"


def test_a_url_under_no_grant_is_denied_and_logged_with_the_grant_that_would_allow_it(server: int) -> None:
    SEEN.clear()
    log: list[str] = []
    codes, _ = call({"url": f"http://127.0.0.1:{server}/ok"}, [f"http://127.0.0.1:{server}/api/"], log=log)
    assert codes == [EG_DENIED, EG_NOT_FOUND]
    assert SEEN == []  # nothing was sent
    assert any(f"http://127.0.0.1:{server}/ok is denied" in m and f'http = ["http://127.0.0.1:{server}/"]' in m
               for m in log), log


@pytest.mark.parametrize(("prefix", "url", "covered"), [
    ("https://auth.example.com/", "https://auth.example.com/v1/check", True),
    ("https://auth.example.com", "https://auth.example.com/x", True),
    ("https://auth.example.com/", "https://auth.example.com.evil.com/", False),
    ("https://auth.example.com/", "http://auth.example.com/", False),
    ("https://auth.example.com/", "https://auth.example.com:8443/", False),
    ("https://auth.example.com:443/", "https://AUTH.example.com/x", True),
    ("https://a.example.com/api", "https://a.example.com/api/x", True),
    ("https://a.example.com/api", "https://a.example.com/apiary", False),
])
def test_grant_prefixes_match_on_parsed_urls(prefix: str, url: str, covered: bool) -> None:
    from wasm_abi.capabilities import parse_url

    parts = parse_url(url)
    assert not isinstance(parts, str)
    assert HttpGrant(prefix).covers(*parts) is covered


def _loopback_name() -> str:
    """A host name (not an IP literal, not `localhost`) that resolves to a non-global address here."""
    for name in (socket.gethostname(), "localhost.localdomain", "ip6-localhost"):
        try:
            infos = socket.getaddrinfo(name, 80, 0, socket.SOCK_STREAM)
        except OSError:
            continue
        if infos and all(not ipaddress.ip_address(i[4][0]).is_global for i in infos) and \
                all(i[4][0] in ("127.0.0.1", "::1") or i[0] == socket.AF_INET for i in infos):
            return name
    raise AssertionError("no host name on this machine resolves to a loopback or private address; the test "
                         "needs one (the machine's own hostname usually does, through /etc/hosts)")


def test_a_name_resolving_to_a_private_address_needs_an_explicit_grant(server: int) -> None:
    name = _loopback_name()
    url = f"http://{name}:{server}/ok"
    log: list[str] = []
    codes, _ = call({"url": url}, [f"http://{name}:{server}/"], log=log)
    assert codes[0] == EG_DENIED
    assert any("not a globally routable address" in m for m in log)
    codes, response = call({"url": url}, [HttpGrant(f"http://{name}:{server}/", private_addresses=True)])
    assert response["status"] == 200


def test_redirects_are_followed_inside_the_grants_only(server: int) -> None:
    grant = [f"http://127.0.0.1:{server}/"]
    codes, response = call({"url": f"http://127.0.0.1:{server}/redirect-in"}, grant)
    assert response["status"] == 200 and response["body"] == b'{"ok":true}'
    codes, _ = call({"url": f"http://127.0.0.1:{server}/redirect-out"}, grant)
    assert codes[0] == EG_DENIED
    codes, _ = call({"url": f"http://127.0.0.1:{server}/loop"}, grant)
    assert codes[0] == EG_UNAVAILABLE
    SEEN.clear()
    codes, response = call({"url": f"http://127.0.0.1:{server}/redirect-303", "method": "POST", "body": "x"}, grant)
    assert response["status"] == 201 and SEEN[-1]["method"] == "GET" and SEEN[-1]["body"] == b""


def test_credentials_are_dropped_on_a_redirect_to_another_origin(server: int) -> None:
    SEEN.clear()
    grants = [f"http://127.0.0.1:{server}/", f"http://127.0.0.2:{server}/"]
    codes, response = call({"url": f"http://127.0.0.1:{server}/redirect-out",
                            "headers": {"Authorization": "secret", "X-Other": "kept"}}, grants)
    assert response["status"] == 200
    assert "Authorization" not in SEEN[-1]["headers"] and SEEN[-1]["headers"]["X-Other"] == "kept"


def test_a_slow_server_times_out_within_the_reaction_budget(server: int) -> None:
    started = time.monotonic()
    codes, _ = call({"url": f"http://127.0.0.1:{server}/slow"}, [f"http://127.0.0.1:{server}/"],
                    limits=Limits(sync_timeout=0.3))
    elapsed = time.monotonic() - started
    assert codes[0] == EG_TIMEOUT
    assert elapsed < 10.0  # a hang guard: the server answers after 30 s, the reaction's budget is 0.3 s
    # The request's own timeout (100 ms) ends it, under a reaction deadline of 5 s: a call that ended
    # without a fault (the reaction's deadline would have been one) well within those 5 s.
    started = time.monotonic()
    codes, _ = call({"url": f"http://127.0.0.1:{server}/slow", "timeoutMs": 100}, [f"http://127.0.0.1:{server}/"],
                    limits=Limits(sync_timeout=5.0))
    assert codes[0] == EG_TIMEOUT and time.monotonic() - started < 4.0


def test_a_trickling_server_cannot_stretch_the_deadline(server: int) -> None:
    """One byte every 50 ms: each read is quick, the whole exchange (50 s) is not -- the deadline holds."""
    started = time.monotonic()
    codes, _ = call({"url": f"http://127.0.0.1:{server}/trickle"}, [f"http://127.0.0.1:{server}/"],
                    limits=Limits(sync_timeout=0.4))
    assert codes[0] == EG_TIMEOUT
    assert time.monotonic() - started < 10.0  # a hang guard (the deadline is 0.4 s, the whole body 50 s)


def test_a_huge_answer_is_capped(server: int) -> None:
    codes, _ = call({"url": f"http://127.0.0.1:{server}/huge"}, [f"http://127.0.0.1:{server}/"],
                    limits=Limits(sync_timeout=1.0, max_http_response_bytes=64 * 1024))
    assert codes[0] == EG_TOO_LARGE


@pytest.mark.parametrize("request_", [
    {"url": "URL/ok", "headers": {"Host": "evil"}},
    {"url": "URL/ok", "headers": {"X-A": "v\r\nInjected: 1"}},
    {"url": "URL/ok", "headers": {"Bad Name": "v"}},
    {"url": "URL/ok", "headers": {"Transfer-Encoding": "chunked"}},
    {"url": "URL/ok", "headers": {"Proxy-Authorization": "x"}},
    {"url": "URL/ok", "method": "CONNECT"},
    {"url": "URL/ok", "method": "GET /x HTTP/1.1\r\n"},
    {"url": "URL/ok", "timeoutMs": -1},
    {"url": "URL/ok", "body": 5},
    {"url": "URL/../admin"},
    {"url": "URL/%2e%2e/admin"},
    {"url": "URL\\ok"},
    {"url": "http://user:pw@HOSTPORT/ok"},
    {"url": "ftp://HOSTPORT/ok"},
    {"method": "GET"},
    b"\xc1not msgpack",
    [1, 2, 3],
], ids=["host", "crlf", "bad-name", "te", "proxy", "connect", "method-injection", "timeout", "body-type",
        "dot-dot", "encoded-dot-dot", "backslash", "userinfo", "ftp", "no-url", "bad-msgpack", "not-a-map"])
def test_malformed_requests_are_invalid_and_send_nothing(server: int, request_: Any) -> None:
    SEEN.clear()
    base = f"http://127.0.0.1:{server}"
    if isinstance(request_, dict) and "url" in request_:
        request_ = {**request_, "url": request_["url"].replace("URL", base).replace("HOSTPORT", f"127.0.0.1:{server}")}
    raw = request_ if isinstance(request_, bytes) else msgpack.packb(request_, use_bin_type=True)
    codes, _ = call(raw, [f"{base}/"])
    assert codes[0] == EG_INVALID
    assert SEEN == []


def test_a_request_over_the_cap_is_too_large(server: int) -> None:
    codes, _ = call({"url": f"http://127.0.0.1:{server}/echo", "method": "POST", "body": b"z" * 5000},
                    [f"http://127.0.0.1:{server}/"], limits=Limits(sync_timeout=1.0, max_http_request_bytes=4096))
    assert codes[0] == EG_TOO_LARGE


def test_a_response_is_held_only_during_the_call_that_made_it(server: int) -> None:
    d = Data()
    request = msgpack.packb({"url": f"http://127.0.0.1:{server}/ok"})
    body = store(0, f"(call $http_response (i32.const {RESPONSE_AT}) (i32.const 65536))")
    with Plugin.from_bytes(cap_plugin(body, d, HTTP, memory_pages=4), name="h",
                           grants=Grants(http=(f"http://127.0.0.1:{server}/",)), limits=Limits(sync_timeout=1.0)) as p:
        react(p)
        assert results(p, 1) == [EG_NOT_FOUND]
    assert request  # (a plugin that never asked has nothing to read)


def test_http_costs_fuel_before_the_request(server: int) -> None:
    SEEN.clear()
    codes, _ = call({"url": f"http://127.0.0.1:{server}/ok"}, [f"http://127.0.0.1:{server}/"],
                    limits=Limits(sync_timeout=1.0, http_call_fuel=20_000_000))
    assert codes[0] == -9  # EG_NO_FUEL: the default sync budget is 10 M
    assert SEEN == []


def test_grants_are_checked_when_made() -> None:
    for bad in ("ftp://x/", "https://u@x/", "https://x/?q=1", "", "https://x/../y"):
        with pytest.raises(ValueError):
            HttpGrant(bad)
    assert HttpGrant("http://127.0.0.1:8080/").names_address
    assert HttpGrant("http://localhost:8080/").names_address
    assert not HttpGrant("http://auth.internal/").names_address
