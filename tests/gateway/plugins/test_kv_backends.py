"""The kv capability's backends answer alike (ABI.md 7.1, "kv"): every test runs on `MemoryKv` and on
`RedisKv` against a real redis-server (tests/redis_server.py), and a randomized run applies the same calls
to both and compares every answer. Then what only Redis has: namespaces that cannot reach each other's
keys whatever their names, expired keys purged in bounded batches, timeouts, a Redis that is down, and
passwords that never show.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis as redis_py

from gateway.cli import main as cli_main
from gateway.plugins.kv_backend import KvBackendError, open_kv, redacted_url
from gateway.plugins.kv_redis import DOWN_BACKOFF, PURGE_BATCH, RedisKv, data_key, namespace_tag
from gateway.settings import SettingsError, parse_serve_args
from tests.redis_server import RedisServer
from wasm_abi import KvStore, MemoryKv
from wasm_abi.capabilities import (
    EG_NOT_A_NUMBER,
    EG_QUOTA,
    EG_TIMEOUT,
    EG_UNAVAILABLE,
    CapabilityError,
)
from wasm_abi.kv import INT64_MAX, INT64_MIN
from wasm_abi.limits import Limits

BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=BACKENDS)
def kv(request: pytest.FixtureRequest) -> Iterator[KvStore]:
    if request.param == "memory":
        store: KvStore = MemoryKv()
    else:
        store = RedisKv(request.getfixturevalue("redis_server").url)
    yield store
    store.close()


@pytest.fixture
def ns() -> str:
    """A namespace of this test's own (the Redis server is shared by the session)."""
    return f"t-{uuid.uuid4().hex[:12]}"


def code_of(call: Callable[[], Any]) -> int:
    with pytest.raises(CapabilityError) as caught:
        call()
    return caught.value.code


# -- get / set / delete ---------------------------------------------------------------------------


def test_get_set_delete(kv: KvStore, ns: str) -> None:
    assert kv.get(ns, b"k") is None
    kv.set(ns, b"k", b"v1")
    assert kv.get(ns, b"k") == b"v1"
    kv.set(ns, b"k", b"")  # an empty value is a value
    assert kv.get(ns, b"k") == b""
    assert kv.delete(ns, b"k") is True
    assert kv.delete(ns, b"k") is False
    assert kv.get(ns, b"k") is None


def test_binary_keys_and_values(kv: KvStore, ns: str) -> None:
    every_byte = bytes(range(256))
    keys = [b"\x00", b"\xff\xfe", b"}", b"{", b":", b"a:b}c{d", "é".encode(), b" ", b"\r\n", every_byte]
    for i, key in enumerate(keys):
        kv.set(ns, key, every_byte + bytes([i]))
    for i, key in enumerate(keys):
        assert kv.get(ns, key) == every_byte + bytes([i])
    assert kv.get(ns, b"a:b}c{") is None  # a prefix of a key is another key


# -- incr ---------------------------------------------------------------------------------------


def test_incr_counts_from_zero_and_reads_as_decimal(kv: KvStore, ns: str) -> None:
    assert kv.incr(ns, b"c", 5) == 5
    assert kv.incr(ns, b"c", -7) == -2
    assert kv.get(ns, b"c") == b"-2"
    assert kv.incr(ns, b"c", 0) == -2
    kv.set(ns, b"s", b"41")  # a decimal string starts a counter
    assert kv.incr(ns, b"s", 1) == 42
    assert kv.get(ns, b"s") == b"42"


@pytest.mark.parametrize("stored, delta, expected", [
    (b"007", 1, 8), (b"-0", 0, 0), (b"-007", 7, 0), (b"0", -1, -1),
    (b"9223372036854775806", 1, INT64_MAX), (b"-9223372036854775807", -1, INT64_MIN),
    (b"0000000000000000001", 1, 2),  # 19 digits with leading zeros
])
def test_incr_parses_any_decimal_int64(kv: KvStore, ns: str, stored: bytes, delta: int, expected: int) -> None:
    kv.set(ns, b"n", stored)
    assert kv.incr(ns, b"n", delta) == expected
    assert kv.get(ns, b"n") == b"%d" % expected


@pytest.mark.parametrize("stored", [b"", b"abc", b" 5", b"5 ", b"+5", b"5.0", b"1e3", b"--5", b"-", b"0x10",
                                    b"9223372036854775808", b"-9223372036854775809", b"99999999999999999999",
                                    b"00000000000000000001", b"\x005", "٣".encode()])
def test_incr_on_what_is_not_an_int64_is_not_a_number(kv: KvStore, ns: str, stored: bytes) -> None:
    kv.set(ns, b"n", stored)
    assert code_of(lambda: kv.incr(ns, b"n", 1)) == EG_NOT_A_NUMBER
    assert kv.get(ns, b"n") == stored  # unchanged


@pytest.mark.parametrize("start, delta", [(INT64_MAX, 1), (INT64_MIN, -1), (1, INT64_MAX), (-2, INT64_MIN)])
def test_incr_overflow_is_not_a_number_and_changes_nothing(kv: KvStore, ns: str, start: int, delta: int) -> None:
    assert kv.incr(ns, b"n", start) == start
    assert code_of(lambda: kv.incr(ns, b"n", delta)) == EG_NOT_A_NUMBER
    assert kv.get(ns, b"n") == b"%d" % start
    kv.set(ns, b"z", b"0%d" % INT64_MAX if start > 0 else b"-0%d" % -INT64_MIN)  # leading zero, at the edge
    assert code_of(lambda: kv.incr(ns, b"z", delta)) == EG_NOT_A_NUMBER
    assert kv.get(ns, b"z") == (b"0%d" % INT64_MAX if start > 0 else b"-0%d" % -INT64_MIN)


# -- TTLs -----------------------------------------------------------------------------------------


def test_a_key_expires_and_is_then_absent_for_every_call(kv: KvStore, ns: str) -> None:
    kv.set(ns, b"k", b"v", ttl_ms=150)
    kv.set(ns, b"d", b"v", ttl_ms=150)
    kv.set(ns, b"c", b"v", ttl_ms=150)
    kv.set(ns, b"n", b"5", ttl_ms=150)
    assert kv.get(ns, b"k") == b"v"
    time.sleep(0.25)
    assert kv.get(ns, b"k") is None
    assert kv.delete(ns, b"d") is False
    assert kv.cas(ns, b"c", None, b"new") is True  # absent-only: an expired key is absent
    assert kv.incr(ns, b"n", 1) == 1  # counts from 0 again


def test_incr_sets_the_ttl_only_when_it_creates_the_key(kv: KvStore, ns: str) -> None:
    assert kv.incr(ns, b"w", 1, ttl_ms=200) == 1
    time.sleep(0.1)
    assert kv.incr(ns, b"w", 1, ttl_ms=10_000) == 2  # keeps its expiry
    assert kv.incr(ns, b"w", 1) == 3  # and a ttl of 0 does not remove it
    time.sleep(0.2)
    assert kv.get(ns, b"w") is None
    assert kv.incr(ns, b"w", 1, ttl_ms=10_000) == 1  # a new window
    kv.set(ns, b"p", b"1")  # no expiry; incr with a TTL does not add one
    assert kv.incr(ns, b"p", 1, ttl_ms=100) == 2
    time.sleep(0.2)
    assert kv.get(ns, b"p") == b"2"


def test_set_and_cas_replace_the_ttl(kv: KvStore, ns: str) -> None:
    kv.set(ns, b"k", b"v", ttl_ms=100)
    kv.set(ns, b"k", b"v2")  # no TTL now
    assert kv.cas(ns, b"c", None, b"1", ttl_ms=10_000)
    assert kv.cas(ns, b"c", b"1", b"2", ttl_ms=100)  # the new TTL
    time.sleep(0.2)
    assert kv.get(ns, b"k") == b"v2"
    assert kv.get(ns, b"c") is None


# -- cas ------------------------------------------------------------------------------------------


def test_cas(kv: KvStore, ns: str) -> None:
    assert kv.cas(ns, b"k", None, b"a") is True  # absent-only
    assert kv.cas(ns, b"k", None, b"b") is False
    assert kv.cas(ns, b"k", b"x", b"b") is False
    assert kv.get(ns, b"k") == b"a"
    assert kv.cas(ns, b"k", b"a", b"") is True
    assert kv.cas(ns, b"k", None, b"c") is False  # an empty value is not an absent key
    assert kv.cas(ns, b"k", b"", b"d") is True
    assert kv.cas(ns, b"absent", b"", b"e") is False  # nor is an absent key an empty value
    kv.incr(ns, b"n", 7)
    assert kv.cas(ns, b"n", b"7", b"8") is True  # a counter compares as its decimal
    assert kv.incr(ns, b"n", 1) == 9


# -- quotas -------------------------------------------------------------------------------------


def test_the_key_quota(kv: KvStore, ns: str) -> None:
    limits = Limits(max_kv_keys=3)
    for key in (b"a", b"b", b"c"):
        kv.set(ns, key, b"v", limits=limits)
    assert code_of(lambda: kv.set(ns, b"d", b"v", limits=limits)) == EG_QUOTA
    assert code_of(lambda: kv.incr(ns, b"d", 1, limits=limits)) == EG_QUOTA
    assert code_of(lambda: kv.cas(ns, b"d", None, b"v", limits=limits)) == EG_QUOTA
    assert kv.get(ns, b"d") is None
    kv.set(ns, b"a", b"replaced", limits=limits)  # an existing key does not add one
    assert kv.delete(ns, b"b")
    kv.set(ns, b"d", b"v", limits=limits)
    with pytest.raises(CapabilityError, match=r"holds 3 keys.*max_kv_keys 3"):
        kv.set(ns, b"e", b"v", limits=limits)


def test_expired_keys_do_not_count(kv: KvStore, ns: str) -> None:
    limits = Limits(max_kv_keys=3, max_kv_bytes=100)
    kv.set(ns, b"a", b"x" * 40, ttl_ms=100, limits=limits)
    kv.set(ns, b"b", b"x" * 40, ttl_ms=100, limits=limits)
    kv.set(ns, b"c", b"v", limits=limits)
    assert code_of(lambda: kv.set(ns, b"d", b"x" * 30, limits=limits)) == EG_QUOTA
    time.sleep(0.2)
    kv.set(ns, b"d", b"x" * 40, limits=limits)  # both the keys and the bytes of a and b are free again
    kv.set(ns, b"e", b"x" * 40, limits=limits)
    assert kv.get(ns, b"a") is None and kv.get(ns, b"e") == b"x" * 40


def test_the_byte_quota(kv: KvStore, ns: str) -> None:
    limits = Limits(max_kv_bytes=50)
    kv.set(ns, b"k", b"x" * 49, limits=limits)  # 1 + 49: exactly the quota
    with pytest.raises(CapabilityError, match=r"would hold 51 bytes, over max_kv_bytes 50"):
        kv.set(ns, b"k", b"x" * 50, limits=limits)
    assert kv.get(ns, b"k") == b"x" * 49  # unchanged
    assert code_of(lambda: kv.set(ns, b"j", b"", limits=limits)) == EG_QUOTA
    kv.set(ns, b"k", b"x" * 9, limits=limits)  # shrinking frees bytes: 10 now
    # A counter counts as 20 bytes whatever its digits: 10 + 1 + 20 = 31
    assert kv.incr(ns, b"n", 1, limits=limits) == 1
    assert code_of(lambda: kv.incr(ns, b"m", 1, limits=limits)) == EG_QUOTA  # 31 + 21 > 50
    assert kv.delete(ns, b"n")
    kv.set(ns, b"s", b"5", limits=limits)  # 10 + 2
    kv.set(ns, b"t", b"x" * 20, limits=limits)  # 12 + 21 = 33
    # incr turns "5" into a counter: 2 bytes become 21, 33 + 19 = 52 > 50
    assert code_of(lambda: kv.incr(ns, b"s", 1, limits=limits)) == EG_QUOTA
    assert kv.get(ns, b"s") == b"5"
    kv.set(ns, b"t", b"x" * 18, limits=limits)  # 31 + 19 = 50: fits
    assert kv.incr(ns, b"s", 1, limits=limits) == 6


@pytest.mark.parametrize("backend", [
    pytest.param("memory"),
    pytest.param("redis", marks=pytest.mark.redis)])
def test_expired_bytes_do_not_count_when_incr_makes_a_counter(request: pytest.FixtureRequest, backend: str,
                                                              ns: str) -> None:
    store: KvStore = MemoryKv() if backend == "memory" else RedisKv(request.getfixturevalue("redis_server").url)
    limits = Limits(max_kv_bytes=50)
    try:
        store.set(ns, b"old", b"x" * 30, ttl_ms=50, limits=limits)  # 33 bytes, for 50 ms
        store.set(ns, b"n", b"5", limits=limits)  # 35
        time.sleep(0.15)  # 2 live bytes; as a counter "n" counts 21, far under 50
        assert store.incr(ns, b"n", 1, limits=limits) == 6
    finally:
        store.close()


def test_a_quota_refusal_changes_nothing(kv: KvStore, ns: str) -> None:
    limits = Limits(max_kv_keys=1, max_kv_bytes=10)
    kv.set(ns, b"k", b"v", ttl_ms=60_000, limits=limits)
    assert code_of(lambda: kv.cas(ns, b"k", b"v", b"x" * 20, limits=limits)) == EG_QUOTA
    assert kv.get(ns, b"k") == b"v"
    assert code_of(lambda: kv.set(ns, b"other", b"", limits=limits)) == EG_QUOTA
    assert kv.get(ns, b"other") is None


# -- namespaces, clear, threads -------------------------------------------------------------------

HOSTILE_NAMESPACES = ["a", "a}", "a}:b", "{a}", "a:b", "a%7D", "a%", "%", "}", "{", ":", "", "a\x00",
                      "é", "a}:b}:c", "eg:kv:{a}", "A"]


def test_namespaces_never_reach_each_other(kv: KvStore, ns: str) -> None:
    # Keys that would make the naive "eg:kv:{NS}:KEY" of one namespace equal to another's
    keys = [b"b}:c", b"c", b"", b"}:x", b"x", b":b", b"b", b"7D", b"{a}"]
    written = {}
    for space in HOSTILE_NAMESPACES:
        for key in keys:
            if not key:
                continue
            value = f"{space!r}|{key!r}".encode()
            kv.set(ns + space, key, value)
            written[(space, key)] = value
    for (space, key), value in written.items():
        assert kv.get(ns + space, key) == value
    # incr, cas and delete in one namespace touch no other
    assert kv.incr(ns + "a}:b", b"n", 1) == 1 and kv.get(ns + "a", b"b}:n") is None
    assert kv.cas(ns + "a", b"b}:c", written[("a", b"b}:c")], b"swapped")
    assert kv.get(ns + "a}:b", b"c") == written[("a}:b", b"c")]
    assert kv.delete(ns + "a", b"b}:c")
    assert kv.get(ns + "a}:b", b"c") == written[("a}:b", b"c")]
    kv.clear(ns + "a")
    for (space, key), value in written.items():
        assert kv.get(ns + space, key) == (None if space == "a" else value)


def test_clear_drops_one_namespace(kv: KvStore, ns: str) -> None:
    for i in range(30):
        kv.set(ns, b"k%d" % i, b"v", ttl_ms=60_000 if i % 2 else 0)
    kv.set(ns + "-other", b"k1", b"stays")
    kv.clear(ns)
    assert all(kv.get(ns, b"k%d" % i) is None for i in range(30))
    assert kv.get(ns + "-other", b"k1") == b"stays"
    kv.set(ns, b"again", b"v", limits=Limits(max_kv_keys=1, max_kv_bytes=6))  # the quota starts empty


def test_concurrent_incr_from_threads(kv: KvStore, ns: str) -> None:
    def work() -> None:
        for _ in range(150):
            kv.incr(ns, b"hits", 1, ttl_ms=60_000)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert kv.get(ns, b"hits") == b"1200"


# -- the two backends side by side ----------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("seed", range(4))
def test_memory_and_redis_answer_the_same_calls_alike(redis_server: RedisServer, ns: str, seed: int) -> None:
    rng = random.Random(seed)
    memory, shared = MemoryKv(), RedisKv(redis_server.url)
    limits = Limits(max_kv_keys=6, max_kv_bytes=120)
    keys = [b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"}:", b"\x00"]
    values = [b"", b"1", b"-3", b"007", b"x" * 30, b"abc", b"9223372036854775807", b"x" * 70, b"42"]

    def answer(store: KvStore, op: str, args: tuple[Any, ...]) -> Any:
        try:
            return getattr(store, op)(ns, *args)
        except CapabilityError as exc:
            return ("error", exc.code, exc.message)

    try:
        for step in range(400):
            op = rng.choice(["get", "set", "set", "delete", "incr", "incr", "cas", "cas"])
            key = rng.choice(keys)
            if op == "get" or op == "delete":
                args: tuple[Any, ...] = (key,)
            elif op == "set":
                args = (key, rng.choice(values), 0, limits)
            elif op == "incr":
                args = (key, rng.choice([1, -1, 5, INT64_MAX, INT64_MIN, 0]), 0, limits)
            else:
                expected = rng.choice([None, *values])
                args = (key, expected, rng.choice(values), 0, limits)
            mine, theirs = answer(memory, op, args), answer(shared, op, args)
            assert mine == theirs, f"step {step}: {op}{args[:3]}: memory {mine!r}, redis {theirs!r}"
        for key in keys:
            assert memory.get(ns, key) == shared.get(ns, key)
        assert memory.usage(ns) == shared.usage(ns)
    finally:
        memory.close()
        shared.close()


# -- Redis only -------------------------------------------------------------------------------------


def test_the_key_layout_is_injective() -> None:
    names = {}
    for space in HOSTILE_NAMESPACES:
        tag = namespace_tag(space)
        assert tag.count(b"{") == 1 and tag.count(b"}") == 1 and b":" not in tag
        for key in (b"b}:c", b"c", b"}:x", b"x", b":b"):
            name = data_key(space, key)
            assert name not in names, f"{(space, key)} and {names.get(name)} share {name!r}"
            names[name] = (space, key)
            # parsed back: the tag ends at the first "}", the key follows the ":" after it
            assert name.startswith(b"eg:kv:{")
            end = name.index(b"}")
            assert name[end + 1:end + 2] == b":" and name[end + 2:] == key
    assert namespace_tag("ratelimit-1.v2_x") == b"{ratelimit-1.v2_x}"  # plugin names read as written


@pytest.mark.redis
def test_the_redis_keys_are_where_the_docs_say(redis_server: RedisServer, ns: str) -> None:
    kv = RedisKv(redis_server.url)
    client = redis_py.Redis.from_url(redis_server.url)
    try:
        kv.set(ns, b"k:1", b"v", ttl_ms=60_000)
        kv.incr(ns, b"n", 3)
        assert set(client.scan_iter(match=f"eg:kv:{{{ns}}}*")) == {
            f"eg:kv:{{{ns}}}:k:1".encode(), f"eg:kv:{{{ns}}}:n".encode(), f"eg:kv:{{{ns}}}#index".encode(),
            f"eg:kv:{{{ns}}}#sizes".encode(), f"eg:kv:{{{ns}}}#bytes".encode()}
        assert 59_000 < client.pttl(f"eg:kv:{{{ns}}}:k:1") <= 60_000
        assert client.pttl(f"eg:kv:{{{ns}}}:n") == -1
        assert client.get(f"eg:kv:{{{ns}}}#bytes") == b"%d" % (3 + 1 + 1 + 20)
        kv.clear(ns)
        assert list(client.scan_iter(match=f"eg:kv:{{{ns}}}*")) == []
    finally:
        kv.close()
        client.close()


@pytest.mark.redis
def test_the_bytes_of_many_expired_keys_come_back_in_bounded_batches(redis_server: RedisServer, ns: str) -> None:
    kv = RedisKv(redis_server.url)
    count = PURGE_BATCH * 2 + 500
    limits = Limits(max_kv_keys=count + 10, max_kv_bytes=count * 14 + 100)
    client = redis_py.Redis.from_url(redis_server.url)
    try:
        # the namespace as the scripts write it (faster than one call per key): every key expires at once
        expiry_ms = int(client.time()[0]) * 1000 + 1500
        pipe = client.pipeline(transaction=False)
        for i in range(count):
            key = b"k%07d" % i  # 8 bytes + 6 bytes of value = 14
            pipe.set(data_key(ns, key), b"vvvvvv", pxat=expiry_ms)
        pipe.execute()
        index = f"eg:kv:{{{ns}}}#index"
        client.zadd(index, {b"k%07d" % i: expiry_ms for i in range(count)})
        client.hset(f"eg:kv:{{{ns}}}#sizes", mapping={b"k%07d" % i: 14 for i in range(count)})
        client.set(f"eg:kv:{{{ns}}}#bytes", count * 14)
        assert code_of(lambda: kv.set(ns, b"big", b"x" * 500, limits=limits)) == EG_QUOTA  # all still live
        time.sleep(max(0.0, expiry_ms / 1000 - time.time()) + 0.1)
        kv.set(ns, b"big", b"x" * 500, limits=limits)  # three script calls purge them all, then it fits
        assert kv.usage(ns) == (1, 503)
        assert client.zcard(index) == 1
    finally:
        kv.close()
        client.close()


@pytest.mark.redis
def test_a_restarted_redis_gets_its_scripts_again(redis_factory: Callable[[], RedisServer], ns: str) -> None:
    server = redis_factory()
    kv = RedisKv(server.url)
    try:
        assert kv.incr(ns, b"n", 1) == 1
        server.kill()
        assert code_of(lambda: kv.incr(ns, b"n", 1)) == EG_UNAVAILABLE
        server.start()
        time.sleep(DOWN_BACKOFF + 0.05)
        assert kv.incr(ns, b"n", 1) == 1  # nothing was persisted; the scripts are loaded again (NOSCRIPT)
    finally:
        kv.close()


@pytest.mark.redis
def test_idle_connections_to_a_restarted_redis_are_not_used(redis_factory: Callable[[], RedisServer],
                                                            ns: str, caplog: pytest.LogCaptureFixture) -> None:
    server = redis_factory()
    kv = RedisKv(server.url)
    barrier = threading.Barrier(6)

    def hold_a_connection() -> None:
        barrier.wait()
        kv.incr(ns, b"n", 1)

    try:
        threads = [threading.Thread(target=hold_a_connection) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(kv._idle) > 1  # white box: several idle connections, all to the old server
        server.kill()
        server.start()  # no kv call in between: the calls find the connections closed under them
        caplog.set_level(logging.WARNING, logger="gateway.plugins.kv")
        for i in range(8):
            assert kv.incr(ns, b"n", 1) == i + 1
        assert not caplog.records
    finally:
        kv.close()


@pytest.mark.redis
def test_redis_down_is_unavailable_fast_and_logged_once(redis_factory: Callable[[], RedisServer], ns: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    server = redis_factory()
    kv = RedisKv(server.url)
    caplog.set_level(logging.INFO, logger="gateway.plugins.kv")
    try:
        kv.set(ns, b"k", b"v")
        server.kill()
        for call in (lambda: kv.get(ns, b"k"), lambda: kv.incr(ns, b"n", 1), lambda: kv.set(ns, b"k", b"v"),
                     lambda: kv.delete(ns, b"k"), lambda: kv.cas(ns, b"k", None, b"v")):
            started = time.monotonic()
            assert code_of(call) == EG_UNAVAILABLE
            assert time.monotonic() - started < 0.5  # a hang guard (10x): the down backoff tries nothing
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
        server.start()
        time.sleep(DOWN_BACKOFF + 0.05)
        assert kv.get(ns, b"k") is None  # a fresh Redis (nothing persisted)
        assert any("answers again" in r.getMessage() for r in caplog.records)
    finally:
        kv.close()


@pytest.mark.redis
def test_a_redis_that_does_not_answer_times_out_within_the_call_budget(
        redis_factory: Callable[[], RedisServer], ns: str) -> None:
    server = redis_factory()
    kv = RedisKv(server.url)
    assert server.process is not None
    try:
        kv.set(ns, b"k", b"v")  # a connection is open and idle
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            # The kind of each answer is the mechanism (the call's own 50 ms budget ran out: EG_TIMEOUT; then
            # the down backoff: EG_UNAVAILABLE without trying); the times are hang guards (10x), not speeds.
            assert code_of(lambda: kv.get(ns, b"k", timeout=0.05)) == EG_TIMEOUT
            assert time.monotonic() - started < 1.5
            started = time.monotonic()  # a new connection: the kernel accepts it, Redis says nothing
            assert code_of(lambda: kv.incr(ns, b"n", 1, timeout=0.05)) == EG_TIMEOUT
            assert time.monotonic() - started < 1.5
            started = time.monotonic()  # then, for a moment, no more waiting
            assert code_of(lambda: kv.incr(ns, b"n", 1, timeout=0.05)) == EG_UNAVAILABLE
            assert time.monotonic() - started < 0.5
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        time.sleep(DOWN_BACKOFF + 0.05)
        assert kv.get(ns, b"k") == b"v"
    finally:
        kv.close()


@pytest.mark.redis
def test_a_password_never_shows(redis_factory: Callable[[], RedisServer], ns: str,
                                caplog: pytest.LogCaptureFixture) -> None:
    server = redis_factory()
    client = redis_py.Redis.from_url(server.url)
    client.config_set("requirepass", "s3cret-pw")
    client.close()
    caplog.set_level(logging.DEBUG)
    good = RedisKv(f"redis://:s3cret-pw@127.0.0.1:{server.port}/0")
    wrong = RedisKv(f"redis://:wrong-pw@127.0.0.1:{server.port}/0")
    try:
        good.set(ns, b"k", b"v")
        assert good.get(ns, b"k") == b"v"
        with pytest.raises(CapabilityError) as caught:
            wrong.get(ns, b"k")
        assert caught.value.code == EG_UNAVAILABLE
        server.kill()
        with pytest.raises(CapabilityError) as down:
            good.get(ns, b"k")
        for text in (str(caught.value), str(down.value), caplog.text, good.display_url, wrong.display_url):
            assert "s3cret-pw" not in text and "wrong-pw" not in text, text
        assert good.display_url == f"redis://:***@127.0.0.1:{server.port}/0"
    finally:
        good.close()
        wrong.close()


# -- open_kv ------------------------------------------------------------------------------------------


def test_open_kv() -> None:
    assert isinstance(open_kv(None), MemoryKv) and isinstance(open_kv("memory"), MemoryKv)
    for url in ("redis://127.0.0.1:6379/0", "rediss://user:pw@cache.example:6380/3", "redis://localhost",
                "unix:///run/redis/redis.sock"):
        store = open_kv(url)
        assert isinstance(store, RedisKv) and store.blocking
        store.close()


@pytest.mark.parametrize("url, message", [
    ("memcached://h:11211", "expected memory, redis://host:port/db"),
    ("Memory", "expected memory"),
    ("redis://", "no host"),
    ("redis://h:65536/0", "Port out of range"),
    ("redis://h:0/0", "port 0"),
    ("redis://:pw-secret@h:6379/x", "the database 'x' is not a number"),
    ("redis://h:6379/0\r\nFLUSHALL", "whitespace or control characters"),
    ("redis://h/0 ", "whitespace or control characters"),
    ("redis://" + "h" * 3000, "longer than 2048 characters"),
    ("unix://", "no socket path"),
])
def test_open_kv_refuses_what_no_backend_can_use(url: str, message: str) -> None:
    with pytest.raises(KvBackendError, match="^--plugin-kv ") as caught:
        open_kv(url)
    assert message in str(caught.value)
    assert "pw-secret" not in str(caught.value)
    assert len(str(caught.value)) < 300


def test_redacted_url() -> None:
    assert redacted_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redacted_url("rediss://user:pw@[::1]:6380/2") == "rediss://user:***@[::1]:6380/2"
    assert redacted_url("redis://h:1/0") == "redis://h:1/0"
    assert "pw" not in redacted_url("redis://:pw@h:port/0")


# -- the flag -------------------------------------------------------------------------------------------


def test_the_plugin_kv_flag_and_its_variable() -> None:
    assert parse_serve_args([]).plugin_kv is None
    assert parse_serve_args(["--plugin-kv", "redis://127.0.0.1:6379/0"]).plugin_kv == "redis://127.0.0.1:6379/0"
    from_env = parse_serve_args([], {"EVENT_GATEWAY_PLUGIN_KV": "redis://:pw-in-env@h:1/2"})
    assert from_env.plugin_kv == "redis://:pw-in-env@h:1/2"
    assert "pw-in-env" not in repr(from_env)  # settings never print the password
    assert parse_serve_args(["--plugin-kv", "memory"], {"EVENT_GATEWAY_PLUGIN_KV": "redis://h/0"}).plugin_kv == "memory"


def test_a_bad_plugin_kv_stops_the_command_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main(["serve", "--plugin-kv", "redis://:pw-secret@cache:6379/zero"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--plugin-kv 'redis://:***@cache:6379/zero': the database 'zero' is not a number" in err
    assert "pw-secret" not in err
    with pytest.raises(SettingsError, match=r"--plugin-kv 'memcache://x'"):
        parse_serve_args([], {"EVENT_GATEWAY_PLUGIN_KV": "memcache://x"})
