"""Every kit's typed wrappers for the capability imports (ABI.md 7.1), through the real host.

THE CONTRACT OF A KIT'S CAPABILITIES TESTING MODULE
===================================================

Each kit has a testing plugin in ``wasm_abi/pdk/<lang>/testing/capabilities/`` (built like the accessors
module, see ``tests/pdk/accessors_scenario.py``): a small interpreter that runs a list of operations
through the kit's own wrappers -- never the raw imports -- and reports each result. Behaviour:

- ``subscriptions``: one sync subscription to ``eventgateway.event.received``. ``init`` accepts any config.
- ``react``: the incoming event is ``data.event`` of the system event; its ``data`` is a map
  ``{"ops": [op, ...]}``. The plugin runs the ops in order and answers a **rewrite** of the incoming
  event whose ``data`` is ``{"results": [result, ...]}`` (one result per op, same order; every other
  field of the incoming event unchanged). Any other event (no ``ops`` array) is answered with
  ``continue``.
- Every result is a map holding ``"code"``: the ABI code the wrapper surfaced, as an int -- ``0``
  (``EG_OK``) on success, or the negative error code (``-1`` ``EG_NOT_FOUND`` ... ``-9``
  ``EG_NO_FUEL``). A kit whose wrapper reports "absent" another way (an optional, a null) reports it
  as ``-1``; a kit whose wrapper raises typed errors maps each back to its code. Further fields only
  on success (code 0), as listed below.
- Byte arguments (``key``, ``value``, ``expected``, ``body``) arrive as msgpack **bin**; strings
  (``name``, ``url``, ``method``, label names and values, header names and values) as **str**.

The ops (``op`` is a str; missing optional fields take the default shown):

| op | fields | wrapper called | result on success |
|---|---|---|---|
| ``get`` | ``key`` | kv get | ``{"code": 0, "value": bin}`` (absent: ``{"code": -1}``) |
| ``set`` | ``key``, ``value``, ``ttlMs`` (int, 0) | kv set | ``{"code": 0}`` |
| ``delete`` | ``key`` | kv delete | ``{"code": 0, "deleted": bool}`` |
| ``incr`` | ``key``, ``delta`` (int), ``ttlMs`` (int, 0) | kv incr | ``{"code": 0, "value": int}`` |
| ``cas`` | ``key``, ``expected`` (bin, or nil = "only if absent"), ``value``, ``ttlMs`` (0) | kv cas | ``{"code": 0, "swapped": bool}`` |
| ``metric`` | ``kind`` (``"counter"``, ``"gaugeSet"``, ``"gaugeAdd"``, ``"histogram"``), ``name``, ``labels`` (map str -> str, may be empty), ``value`` (float) | the kit's metric wrapper for that kind, the labels passed through the kit's labels builder one pair at a time, in the map's order | ``{"code": 0}`` |
| ``http`` | ``url``, ``method`` (str, ``"GET"``), ``headers`` (map str -> str, ``{}``), ``body`` (bin, empty), ``timeoutMs`` (int, 0 = the kit's default: no ``timeoutMs`` sent) | http request | ``{"code": 0, "status": int, "headers": map, "body": bin}`` -- ``headers`` the response's header map as the wrapper decoded it |

WAT has no http wrapper (its module does kv and metric ops only); the http tests run for
``HTTP_LANGUAGES``. An op the module does not know is reported as ``{"code": -2}``.

Each kit's kv get starts with a small buffer guess and grows it when the host answers the length it
needs: the values below go from empty to 60,000 bytes, past any first guess.

To add a language: write its module to this contract and add it to ``LANGUAGES`` (and to
``HTTP_LANGUAGES`` if its kit wraps http).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import wasmtime

from plugin_examples.build import KITS_DIR, build, build_source
from tests.pdk.accessors_scenario import TEST_MODULES_DIR
from wasm_abi import Grants, HttpGrant, Limits, MemoryKv, Plugin, PluginMetrics, system_event

LANGUAGES = ("wat", "c", "zig", "rust", "go", "assemblyscript")
HTTP_LANGUAGES = ("c", "zig", "rust", "go", "assemblyscript")

EG_OK, EG_NOT_FOUND, EG_INVALID, EG_TOO_LARGE, EG_QUOTA = 0, -1, -2, -3, -4
EG_UNAVAILABLE, EG_DENIED, EG_TIMEOUT, EG_NOT_A_NUMBER, EG_NO_FUEL = -5, -6, -7, -8, -9

CAPABILITY_IMPORTS = frozenset(
    {"kv_get", "kv_set", "kv_delete", "kv_incr", "kv_cas", "http_request", "http_response", "metric"})


def capabilities_module(lang: str) -> Any:
    source = KITS_DIR / lang / "testing" / "capabilities"
    return build_source(lang, source, TEST_MODULES_DIR / lang / "capabilities.wasm")


# -- a small HTTP server the http ops talk to ------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """``/echo``: 201, ``X-Echo-Method``, ``X-Echo-Token`` (the request's X-Token) and the request body
    back; ``/status/<n>``: that status; ``/slow``: answers after 30 s; ``/big``: a 2 MB body."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/status/"):
            self._send(int(self.path.rsplit("/", 1)[1]), {}, b"status")
        elif self.path == "/slow":
            time.sleep(30.0)  # far beyond every deadline and hang guard of the tests
            self._send(200, {}, b"late")
        elif self.path == "/big":
            self._send(200, {}, b"x" * 2_000_000)
        else:
            self._send(201, {"X-Echo-Method": self.command, "X-Echo-Token": self.headers.get("X-Token", "")},
                       b"echo:" + body)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- driving a module -------------------------------------------------------------------------------


class Harness:
    """A capabilities testing module loaded with kv, metrics and (when its kit wraps http) http."""

    def __init__(self, lang: str, *, base_url: str | None = None, limits: Limits | None = None) -> None:
        self.lang = lang
        self.kv = MemoryKv()
        self.metrics = PluginMetrics()
        http: tuple[HttpGrant, ...] = ()
        if base_url:
            http = tuple(HttpGrant(f"{base_url}{path}") for path in ("/granted/", "/echo", "/status/", "/slow", "/big"))
        elif lang in HTTP_LANGUAGES:  # the module imports http: it must be granted some prefix to load
            http = (HttpGrant("http://127.0.0.1:9/unused/"),)
        self.name = f"{lang}-capabilities"
        self.plugin = Plugin.from_file(
            capabilities_module(lang), name=self.name,
            grants=Grants(kv=self.kv, metrics=self.metrics, http=http),
            limits=limits or Limits(sync_timeout=1.0))

    def run(self, *ops: dict[str, Any]) -> list[dict[str, Any]]:
        incoming = {"specversion": "1.0", "type": "kit.capabilities", "id": "1", "source": "/test",
                    "data": {"ops": list(ops)}}
        reaction = self.plugin.react(system_event("eventgateway.event.received",
                                                  {"event": incoming, "path": "/", "headers": {}}))
        assert reaction.error is None, reaction
        assert reaction.event is not None, f"{self.lang}: no rewrite: {reaction}"
        assert {k: v for k, v in reaction.event.items() if k != "data"} == {
            k: v for k, v in incoming.items() if k != "data"}
        results = reaction.event["data"]["results"]
        assert len(results) == len(ops), results
        return list(results)

    def one(self, op: dict[str, Any]) -> dict[str, Any]:
        return self.run(op)[0]

    def close(self) -> None:
        self.plugin.close()


@pytest.fixture(params=LANGUAGES)
def lang(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def harness(lang: str) -> Iterator[Harness]:
    h = Harness(lang)
    try:
        yield h
    finally:
        h.close()


def get(key: bytes) -> dict[str, Any]:
    return {"op": "get", "key": key}


def put(key: bytes, value: bytes, ttl_ms: int = 0) -> dict[str, Any]:
    return {"op": "set", "key": key, "value": value, "ttlMs": ttl_ms}


def incr(key: bytes, delta: int, ttl_ms: int = 0) -> dict[str, Any]:
    return {"op": "incr", "key": key, "delta": delta, "ttlMs": ttl_ms}


def cas(key: bytes, expected: bytes | None, value: bytes, ttl_ms: int = 0) -> dict[str, Any]:
    return {"op": "cas", "key": key, "expected": expected, "value": value, "ttlMs": ttl_ms}


def metric(kind: str, name: str, value: float, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"op": "metric", "kind": kind, "name": name, "labels": labels or {}, "value": value}


# -- kv ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 255, 256, 257, 1024, 4096, 60_000])
def test_kv_set_then_get_returns_the_value_of_any_size(harness: Harness, size: int) -> None:
    value = bytes(i % 251 for i in range(size))
    assert harness.run(put(b"k", value), get(b"k")) == [{"code": EG_OK}, {"code": EG_OK, "value": value}]
    assert harness.kv.get(harness.name, b"k") == value


def test_kv_get_grows_past_a_value_that_grew_between_events(harness: Harness) -> None:
    small, large = b"s" * 10, bytes(range(256)) * 200  # 51,200 bytes
    assert harness.run(put(b"k", small), get(b"k"))[1] == {"code": EG_OK, "value": small}
    assert harness.run(put(b"k", large), get(b"k"))[1] == {"code": EG_OK, "value": large}
    assert harness.run(get(b"k"), put(b"k", small), get(b"k"))[2] == {"code": EG_OK, "value": small}


def test_kv_get_of_a_missing_key_is_not_found(harness: Harness) -> None:
    assert harness.one(get(b"nope")) == {"code": EG_NOT_FOUND}


def test_kv_keys_are_bytes(harness: Harness) -> None:
    key = bytes(range(256))[:200]
    assert harness.run(put(key, b"v"), get(key)) == [{"code": EG_OK}, {"code": EG_OK, "value": b"v"}]
    assert harness.kv.get(harness.name, key) == b"v"


def test_kv_delete_says_whether_a_key_was_there(harness: Harness) -> None:
    assert harness.run(put(b"k", b"v"), {"op": "delete", "key": b"k"}, {"op": "delete", "key": b"k"}, get(b"k")) == [
        {"code": EG_OK}, {"code": EG_OK, "deleted": True}, {"code": EG_OK, "deleted": False}, {"code": EG_NOT_FOUND}]


def test_kv_incr_counts_and_its_ttl_applies_when_it_creates_the_key(harness: Harness) -> None:
    results = harness.run(incr(b"n", 1, 300), incr(b"n", 41, 0), incr(b"n", -50, 0), get(b"n"))
    assert results == [{"code": EG_OK, "value": 1}, {"code": EG_OK, "value": 42}, {"code": EG_OK, "value": -8},
                       {"code": EG_OK, "value": b"-8"}]
    time.sleep(0.5)  # the first incr's TTL (300 ms) holds: later incrs kept the key's expiry
    assert harness.run(get(b"n"), incr(b"n", 1 << 40, 0)) == [
        {"code": EG_NOT_FOUND}, {"code": EG_OK, "value": 1 << 40}]


def test_kv_incr_on_a_value_that_is_not_a_number(harness: Harness) -> None:
    assert harness.run(put(b"t", b"abc"), incr(b"t", 1)) == [{"code": EG_OK}, {"code": EG_NOT_A_NUMBER}]
    assert harness.run(incr(b"big", 2**63 - 1), incr(b"big", 1)) == [
        {"code": EG_OK, "value": 2**63 - 1}, {"code": EG_NOT_A_NUMBER}]


def test_kv_set_ttl_expires(harness: Harness) -> None:
    assert harness.run(put(b"t", b"v", 200), get(b"t"))[1] == {"code": EG_OK, "value": b"v"}
    time.sleep(0.4)
    assert harness.one(get(b"t")) == {"code": EG_NOT_FOUND}


def test_kv_cas_swaps_only_on_the_expected_value(harness: Harness) -> None:
    assert harness.run(
        cas(b"c", None, b"one"),        # absent-only, key absent: swaps
        cas(b"c", None, b"two"),        # absent-only, key present: does not
        cas(b"c", b"wrong", b"three"),  # wrong expectation
        cas(b"c", b"one", b"four"),     # right one
        get(b"c"),
        cas(b"c", b"", b"five"),        # an empty expected value is not "absent"
        put(b"e", b""), cas(b"e", b"", b"six"), get(b"e"),
    ) == [{"code": EG_OK, "swapped": True}, {"code": EG_OK, "swapped": False}, {"code": EG_OK, "swapped": False},
          {"code": EG_OK, "swapped": True}, {"code": EG_OK, "value": b"four"}, {"code": EG_OK, "swapped": False},
          {"code": EG_OK}, {"code": EG_OK, "swapped": True}, {"code": EG_OK, "value": b"six"}]


def test_kv_errors_reach_the_plugin_as_codes(harness: Harness) -> None:
    long_key = b"k" * 257  # Limits.max_kv_key_bytes is 256
    assert harness.run(
        put(long_key, b"v"), get(long_key), incr(long_key, 1), cas(long_key, None, b"v"),
        {"op": "delete", "key": long_key},
        put(b"", b"v"),                 # an empty key
        put(b"k", b"v", -1),            # a TTL out of range
        put(b"k", b"v" * (64 * 1024 + 1)),  # over Limits.max_kv_value_bytes
    ) == [{"code": EG_TOO_LARGE}] * 5 + [{"code": EG_INVALID}] * 2 + [{"code": EG_TOO_LARGE}]


def test_kv_quota_is_a_code_and_changes_nothing(lang: str) -> None:
    h = Harness(lang, limits=Limits(sync_timeout=1.0, max_kv_keys=2))
    try:
        assert h.run(put(b"a", b"1"), put(b"b", b"2"), put(b"c", b"3"), incr(b"d", 1), cas(b"e", None, b"5"),
                     put(b"a", b"replaced"), get(b"a"), get(b"c")) == [
            {"code": EG_OK}, {"code": EG_OK}, {"code": EG_QUOTA}, {"code": EG_QUOTA}, {"code": EG_QUOTA},
            {"code": EG_OK}, {"code": EG_OK, "value": b"replaced"}, {"code": EG_NOT_FOUND}]
    finally:
        h.close()


# -- metrics ----------------------------------------------------------------------------------------


def test_metrics_with_labels_land_in_the_plugins_series(harness: Harness) -> None:
    labels = {"route": "/a", "method": "GET"}
    assert harness.run(
        metric("counter", "hits", 1.0, labels), metric("counter", "hits", 2.5, labels),
        metric("counter", "hits", 1.0, {"route": "/b", "method": "PUT"}),
        metric("gaugeSet", "depth", 7.0), metric("gaugeAdd", "depth", -2.0),
        metric("histogram", "latency", 0.02, {"route": "/a"}), metric("histogram", "latency", 0.3, {"route": "/a"}),
    ) == [{"code": EG_OK}] * 7
    samples = {(name, kind, tuple(sorted(lab.items()))): value for name, kind, lab, value in harness.metrics.samples()}
    assert samples[("hits", "counter", (("method", "GET"), ("route", "/a")))] == 3.5
    assert samples[("hits", "counter", (("method", "PUT"), ("route", "/b")))] == 1.0
    assert samples[("depth", "gauge", ())] == 5.0
    count, total = samples[("latency", "histogram", (("route", "/a"),))][:2]
    assert (count, round(total, 6)) == (2, 0.32)


def test_metric_errors_reach_the_plugin_as_codes(harness: Harness) -> None:
    assert harness.run(
        metric("counter", "bad-name", 1.0),
        metric("counter", "neg", -1.0),
        metric("counter", "ok", 1.0, {"le": "x"}),
        metric("counter", "ok", 1.0, {f"l{i}": "v" for i in range(9)}),  # over 8 labels
        metric("gaugeSet", "hits2", 1.0), metric("counter", "hits2", 1.0),  # a name keeps its kind
    ) == [{"code": EG_INVALID}] * 4 + [{"code": EG_OK}, {"code": EG_INVALID}]


def test_metric_series_quota_is_a_code(lang: str) -> None:
    h = Harness(lang, limits=Limits(sync_timeout=1.0, max_metric_series=2))
    try:
        assert h.run(*(metric("counter", "c", 1.0, {"n": str(i)}) for i in range(3))) == [
            {"code": EG_OK}, {"code": EG_OK}, {"code": EG_QUOTA}]
        assert h.metrics.dropped == 1
    finally:
        h.close()


# -- http -------------------------------------------------------------------------------------------


@pytest.fixture(params=HTTP_LANGUAGES)
def http_harness(request: pytest.FixtureRequest, http_server: str) -> Iterator[Harness]:
    h = Harness(str(request.param), base_url=http_server, limits=Limits(sync_timeout=1.0))
    try:
        yield h
    finally:
        h.close()


def test_http_request_returns_status_headers_and_body(http_harness: Harness, http_server: str) -> None:
    result = http_harness.one({"op": "http", "url": f"{http_server}/echo", "method": "POST",
                               "headers": {"X-Token": "secret-1"}, "body": b"ping" * 100})
    assert result["code"] == EG_OK, result
    assert result["status"] == 201
    assert result["headers"]["X-Echo-Method"] == "POST"
    assert result["headers"]["X-Echo-Token"] == "secret-1"
    assert result["body"] == b"echo:" + b"ping" * 100


def test_http_any_status_is_a_successful_call(http_harness: Harness, http_server: str) -> None:
    result = http_harness.one({"op": "http", "url": f"{http_server}/status/503"})
    assert (result["code"], result["status"], result["body"]) == (EG_OK, 503, b"status")


def test_http_errors_reach_the_plugin_as_codes(http_harness: Harness, http_server: str) -> None:
    results = http_harness.run(
        {"op": "http", "url": f"{http_server}/not-granted"},
        {"op": "http", "url": "http://10.255.255.1/granted/"},
        {"op": "http", "url": "ftp://example.com/"},
        {"op": "http", "url": f"{http_server}/echo", "method": "TRACE"},
        {"op": "http", "url": f"{http_server}/big"},
    )
    assert [r["code"] for r in results] == [EG_DENIED, EG_DENIED, EG_INVALID, EG_INVALID, EG_TOO_LARGE]


def test_http_timeout_is_a_code_within_the_budget(http_harness: Harness, http_server: str) -> None:
    """The request's own timeout (200 ms) ends it, as a code: under a reaction deadline of 5 s and a server
    answering after 30 s, nothing else could end it within 4 s (a bound that tells them apart, not a speed)."""
    harness = Harness(http_harness.lang, base_url=http_server, limits=Limits(sync_timeout=5.0))
    try:
        started = time.monotonic()
        assert harness.one({"op": "http", "url": f"{http_server}/slow", "timeoutMs": 200}) == {"code": EG_TIMEOUT}
        assert time.monotonic() - started < 4.0
    finally:
        harness.close()


# -- imports only when used ------------------------------------------------------------------------


def imports_of(path: Any) -> set[str]:
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(path))
    return {imp.name or "" for imp in module.imports if imp.module == "eventgateway"}


@pytest.mark.parametrize("example", ["logger", "guard", "enricher"])
def test_a_plugin_that_calls_no_wrapper_imports_no_capability(lang: str, example: str) -> None:
    path = build(lang, example)
    assert not imports_of(path) & CAPABILITY_IMPORTS
    with Plugin.from_file(path, name=f"{lang}-{example}") as plugin:  # no grants at all
        assert plugin.subscriptions


def test_the_testing_module_imports_what_it_wraps(lang: str) -> None:
    expected = {"kv_get", "kv_set", "kv_delete", "kv_incr", "kv_cas", "metric"}
    if lang in HTTP_LANGUAGES:
        expected |= {"http_request", "http_response"}
    assert imports_of(capabilities_module(lang)) & CAPABILITY_IMPORTS == expected
