"""The ratelimit and authcheck examples (issue 13), every language's build, through the real host with
real grants: a `MemoryKv` per test, and for authcheck a real token service (an HTTP server in the test).

To add a language: put it in RATELIMIT_LANGUAGES / AUTHCHECK_LANGUAGES once its example builds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conformance.conftest import built_example
from tests.conformance.scenarios import cloudevent_v1
from wasm_abi import Grants, HttpGrant, Limits, MemoryKv, Plugin, PluginLoadError, Reaction, system_event
from wasm_abi.events import EVENT_RECEIVED

RATELIMIT_LANGUAGES = ("wat", "c", "zig", "rust", "go", "assemblyscript")
AUTHCHECK_LANGUAGES = ("c", "zig", "rust", "go", "assemblyscript")
CONTINUE = Reaction()


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def received(source: str = "/shop", event_type: str = "order.placed",
             headers: dict[str, str] | None = None) -> dict[str, Any]:
    event = cloudevent_v1(event_type, {"n": 1})
    event["source"] = source
    return system_event(EVENT_RECEIVED, {"event": event, "path": "/", "headers": headers or {}})


class Loaded:
    def __init__(self, lang: str, example: str, config: dict[str, Any], *, http: tuple[HttpGrant, ...] = (),
                 limits: Limits | None = None) -> None:
        self.kv = MemoryKv()
        self.logs: list[tuple[str, str]] = []
        self.name = f"{lang}-{example}"
        self.plugin = Plugin.from_file(
            built_example(lang, example), name=self.name, config=config,
            grants=Grants(kv=self.kv, http=http),  # no metrics: the examples must not import it
            limits=limits or Limits(sync_timeout=1.0, log_rate_per_second=1e6, log_burst=100_000),
            log_handler=lambda _plugin, level, text: self.logs.append((level, text)))

    def react(self, event: dict[str, Any]) -> Reaction:
        return self.plugin.react(event)


@pytest.fixture
def loaded() -> Iterator[list[Loaded]]:
    plugins: list[Loaded] = []
    yield plugins
    for p in plugins:
        p.plugin.close()


def load(registry: list[Loaded], lang: str, example: str, config: dict[str, Any], **kw: Any) -> Loaded:
    p = Loaded(lang, example, config, **kw)
    registry.append(p)
    return p


# -- ratelimit --------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", RATELIMIT_LANGUAGES)
class TestRatelimit:
    def test_the_n_plus_first_event_of_a_key_is_429(self, lang: str, loaded: list[Loaded]) -> None:
        rl = load(loaded, lang, "ratelimit", {"limit": 3, "windowSeconds": 60})
        assert rl.plugin.subscriptions == [("eventgateway.event.received", "sync")]
        assert [rl.react(received("/a")) for _ in range(3)] == [CONTINUE] * 3
        assert rl.react(received("/a")) == Reaction(
            error='rate limit exceeded for source "/a": 3 events per 60 s', status=429)
        assert rl.react(received("/b")) == CONTINUE  # another key has its own count
        assert rl.kv.get(rl.name, b"rl:/a") == b"4"
        assert rl.kv.get(rl.name, b"rl:/b") == b"1"

    def test_the_window_expires(self, lang: str, loaded: list[Loaded]) -> None:
        rl = load(loaded, lang, "ratelimit", {"limit": 1, "windowSeconds": 1})
        assert rl.react(received()) == CONTINUE
        assert rl.react(received()).status == 429
        time.sleep(1.2)
        assert rl.react(received()) == CONTINUE

    def test_key_by_type(self, lang: str, loaded: list[Loaded]) -> None:
        rl = load(loaded, lang, "ratelimit", {"limit": 1, "windowSeconds": 60, "keyBy": "type"})
        assert rl.react(received("/a", "t.one")) == CONTINUE
        assert rl.react(received("/b", "t.one")) == Reaction(
            error='rate limit exceeded for type "t.one": 1 events per 60 s', status=429)
        assert rl.react(received("/a", "t.two")) == CONTINUE

    def test_key_by_header_matches_the_name_in_any_case(self, lang: str, loaded: list[Loaded]) -> None:
        rl = load(loaded, lang, "ratelimit", {"limit": 1, "windowSeconds": 60, "keyBy": "header:x-api-key"})
        assert rl.react(received(headers={"X-Api-Key": "k1"})) == CONTINUE
        assert rl.react(received(headers={"X-Api-Key": "k1"})) == Reaction(
            error='rate limit exceeded for header:x-api-key "k1": 1 events per 60 s', status=429)
        assert rl.react(received(headers={"X-Api-Key": "k2"})) == CONTINUE
        assert rl.react(received()) == CONTINUE  # missing: counts as ""
        assert rl.react(received(headers={"X-Other": "k1"})) == Reaction(
            error='rate limit exceeded for header:x-api-key "": 1 events per 60 s', status=429)

    def test_a_long_value_is_hashed_into_the_key_and_cut_in_the_message(self, lang: str,
                                                                        loaded: list[Loaded]) -> None:
        rl = load(loaded, lang, "ratelimit", {"limit": 1, "windowSeconds": 60})
        source = "/" + "s" * 300
        assert rl.react(received(source)) == CONTINUE
        assert rl.kv.get(rl.name, b"rl#" + fnv1a64(source.encode()).encode()) == b"1"
        assert rl.react(received(source)) == Reaction(
            error=f'rate limit exceeded for source "{source[:100]}": 1 events per 60 s', status=429)
        at_limit = "/" + "t" * 199  # exactly 200 bytes: still plain
        rl.react(received(at_limit))
        assert rl.kv.get(rl.name, b"rl:" + at_limit.encode()) == b"1"

    @pytest.mark.parametrize("on_error", [None, "open"])
    def test_a_kv_error_lets_events_through_when_open(self, lang: str, loaded: list[Loaded],
                                                       on_error: str | None) -> None:
        config: dict[str, Any] = {"limit": 5, "windowSeconds": 60}
        if on_error:
            config["onError"] = on_error
        rl = load(loaded, lang, "ratelimit", config, limits=Limits(sync_timeout=1.0, max_kv_keys=1))
        assert rl.react(received("/a")) == CONTINUE
        assert rl.react(received("/b")) == CONTINUE  # a second key is over the quota: EG_QUOTA
        assert any(level == "warn" and "kv error -4" in text for level, text in rl.logs), rl.logs

    def test_a_kv_error_rejects_with_503_when_closed(self, lang: str, loaded: list[Loaded]) -> None:
        rl = load(loaded, lang, "ratelimit", {"limit": 5, "windowSeconds": 60, "onError": "closed"},
                  limits=Limits(sync_timeout=1.0, max_kv_keys=1))
        assert rl.react(received("/a")) == CONTINUE
        assert rl.react(received("/b")) == Reaction(error="rate limiter unavailable: kv error -4", status=503)

    @pytest.mark.parametrize("config, field", [
        ({"windowSeconds": 60}, "limit"),
        ({"limit": 0, "windowSeconds": 60}, "limit"),
        ({"limit": "5", "windowSeconds": 60}, "limit"),
        ({"limit": 5}, "windowSeconds"),
        ({"limit": 5, "windowSeconds": -1}, "windowSeconds"),
        ({"limit": 5, "windowSeconds": 60, "keyBy": "ip"}, "keyBy"),
        ({"limit": 5, "windowSeconds": 60, "onError": "maybe"}, "onError"),
    ])
    def test_an_invalid_config_fails_init_naming_the_field(self, lang: str, config: dict[str, Any],
                                                           field: str) -> None:
        with pytest.raises(PluginLoadError) as caught:
            Plugin.from_file(built_example(lang, "ratelimit"), name=f"{lang}-ratelimit", config=config,
                             grants=Grants(kv=MemoryKv()))
        assert field in str(caught.value)


# -- authcheck --------------------------------------------------------------------------------------


class TokenService:
    """POST /check: 200 for `Bearer good` (in the header named by `header`), 403 otherwise; /slow
    answers after 30 s. Every call is recorded (method, path, the header's value, body)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None, bytes]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                token = self.headers.get("Authorization") or self.headers.get("X-Token")
                service.calls.append((self.command, self.path, token, body))
                if self.path == "/slow":
                    time.sleep(30.0)  # far beyond the reaction's budget and the hang guards
                status = 200 if token == "Bearer good" else 403
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def token_service() -> Iterator[TokenService]:
    service = TokenService()
    yield service
    service.close()


@pytest.mark.parametrize("lang", AUTHCHECK_LANGUAGES)
class TestAuthcheck:
    def authcheck(self, registry: list[Loaded], lang: str, service: TokenService, path: str = "/check",
                  **config: Any) -> Loaded:
        return load(registry, lang, "authcheck", {"url": service.base + path, **config},
                    http=(HttpGrant(service.base + "/"),))

    def test_a_2xx_allows_and_forwards_the_header(self, lang: str, loaded: list[Loaded],
                                                  token_service: TokenService) -> None:
        ac = self.authcheck(loaded, lang, token_service)
        assert ac.react(received(headers={"Authorization": "Bearer good"})) == CONTINUE
        assert token_service.calls == [("POST", "/check", "Bearer good", b"")]

    def test_anything_else_is_401(self, lang: str, loaded: list[Loaded], token_service: TokenService) -> None:
        ac = self.authcheck(loaded, lang, token_service)
        assert ac.react(received(headers={"Authorization": "Bearer bad"})) == Reaction(
            error="unauthorized", status=401)

    def test_a_missing_header_is_401_without_a_call(self, lang: str, loaded: list[Loaded],
                                                    token_service: TokenService) -> None:
        ac = self.authcheck(loaded, lang, token_service)
        assert ac.react(received(headers={"X-Other": "x"})) == Reaction(
            error="missing Authorization header", status=401)
        custom = self.authcheck(loaded, lang, token_service, header="X-Token")
        assert custom.react(received(headers={"Authorization": "Bearer good"})) == Reaction(
            error="missing X-Token header", status=401)
        assert custom.react(received(headers={"x-token": "Bearer good"})) == CONTINUE  # any case
        assert token_service.calls == [("POST", "/check", "Bearer good", b"")]

    def test_allows_are_cached_for_cache_seconds(self, lang: str, loaded: list[Loaded],
                                                 token_service: TokenService) -> None:
        ac = self.authcheck(loaded, lang, token_service, cacheSeconds=60)
        good = received(headers={"Authorization": "Bearer good"})
        assert [ac.react(good) for _ in range(3)] == [CONTINUE] * 3
        assert len(token_service.calls) == 1
        key = b"auth:" + fnv1a64(b"Bearer good").encode()
        assert ac.kv.get(ac.name, key) == b"Bearer good"
        bad = received(headers={"Authorization": "Bearer bad"})
        assert [ac.react(bad).status for _ in range(2)] == [401, 401]  # denies are not cached
        assert len(token_service.calls) == 3

    def test_without_cache_every_event_calls(self, lang: str, loaded: list[Loaded],
                                             token_service: TokenService) -> None:
        ac = self.authcheck(loaded, lang, token_service)
        good = received(headers={"Authorization": "Bearer good"})
        assert [ac.react(good) for _ in range(2)] == [CONTINUE] * 2
        assert len(token_service.calls) == 2
        assert ac.kv.get(ac.name, b"auth:" + fnv1a64(b"Bearer good").encode()) is None

    def test_a_cache_entry_for_another_value_is_a_miss(self, lang: str, loaded: list[Loaded],
                                                       token_service: TokenService) -> None:
        ac = self.authcheck(loaded, lang, token_service, cacheSeconds=60)
        # as if another value hashed to the same key: it must not let "Bearer bad" through
        ac.kv.set(ac.name, b"auth:" + fnv1a64(b"Bearer bad").encode(), b"Bearer good", 0)
        assert ac.react(received(headers={"Authorization": "Bearer bad"})) == Reaction(
            error="unauthorized", status=401)
        assert len(token_service.calls) == 1

    def test_a_slow_service_is_401_within_the_budget(self, lang: str, token_service: TokenService) -> None:
        with Plugin.from_file(built_example(lang, "authcheck"), name=f"{lang}-authcheck",
                              config={"url": token_service.base + "/slow"},
                              grants=Grants(kv=MemoryKv(), http=(HttpGrant(token_service.base + "/"),)),
                              limits=Limits(sync_timeout=0.5)) as plugin:
            started = time.monotonic()
            reaction = plugin.react(received(headers={"Authorization": "Bearer good"}))
            elapsed = time.monotonic() - started
        # The plugin's own answer to EG_TIMEOUT (not a fault), within its 0.5 s budget: the time is a hang
        # guard (10x), the server answers after 30 s.
        assert reaction == Reaction(error="unauthorized: token service error -7", status=401)
        assert elapsed < 5.0

    def test_a_url_outside_the_grants_is_401(self, lang: str, token_service: TokenService) -> None:
        with Plugin.from_file(built_example(lang, "authcheck"), name=f"{lang}-authcheck",
                              config={"url": token_service.base + "/check"},
                              grants=Grants(kv=MemoryKv(), http=(HttpGrant(token_service.base + "/other/"),)),
                              limits=Limits(sync_timeout=1.0)) as plugin:
            reaction = plugin.react(received(headers={"Authorization": "Bearer good"}))
        assert reaction == Reaction(error="unauthorized: token service error -6", status=401)
        assert token_service.calls == []

    def test_an_invalid_config_fails_init(self, lang: str, token_service: TokenService) -> None:
        for config, field in [({}, "url"), ({"url": 5}, "url"), ({"url": "http://x/", "cacheSeconds": -1},
                                                                   "cacheSeconds")]:
            with pytest.raises(PluginLoadError) as caught:
                Plugin.from_file(built_example(lang, "authcheck"), name=f"{lang}-authcheck", config=config,
                                 grants=Grants(kv=MemoryKv(), http=(HttpGrant(token_service.base + "/"),)))
            assert field in str(caught.value)


@pytest.mark.parametrize("lang, example, imports", [
    # WAT has no linker: its kv imports block declares the five kv functions (one grant, kv, either way)
    ("wat", "ratelimit", {"kv_get", "kv_set", "kv_delete", "kv_incr", "kv_cas"}),
    *((lang, "ratelimit", {"kv_incr"}) for lang in RATELIMIT_LANGUAGES if lang != "wat"),
    *((lang, "authcheck", {"kv_get", "kv_set", "http_request", "http_response"})
      for lang in AUTHCHECK_LANGUAGES),
])
def test_the_examples_import_only_the_capabilities_they_use(lang: str, example: str, imports: set[str]) -> None:
    import wasmtime

    module = wasmtime.Module.from_file(wasmtime.Engine(), str(built_example(lang, example)))
    assert {imp.name for imp in module.imports if imp.module == "eventgateway"} - {"log"} == imports
