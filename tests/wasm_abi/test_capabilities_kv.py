"""The kv capability through the real host (ABI.md section 7.1): grants at load, every call, its
error codes, quotas, fuel, isolation between plugins -- and hostile plugins (key floods, value bombs,
pointers outside memory)."""

from __future__ import annotations

import pytest

from tests.wasm_abi.capability_wat import (
    BUF_AT,
    KV,
    OUT_AT,
    Data,
    cap_plugin,
    memory,
    out_i64,
    react,
    results,
    store,
)
from wasm_abi import Grants, Limits, MemoryKv, Plugin, PluginLoadError
from wasm_abi.capabilities import (
    EG_INVALID,
    EG_NO_FUEL,
    EG_NOT_A_NUMBER,
    EG_NOT_FOUND,
    EG_OK,
    EG_QUOTA,
    EG_TOO_LARGE,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def load(body: str, data: Data, kv: MemoryKv | None = None, name: str = "p", **kwargs: object) -> Plugin:
    return Plugin.from_bytes(cap_plugin(body, data, KV), name=name, grants=Grants(kv=kv or MemoryKv()),
                             **kwargs)  # type: ignore[arg-type]


def test_an_ungranted_capability_refuses_the_load_naming_the_import_and_the_grant() -> None:
    d = Data()
    with pytest.raises(PluginLoadError) as err:
        Plugin.from_bytes(cap_plugin("", d, ("kv_incr",)), name="rl")
    assert err.value.kind == "not_granted"
    assert "eventgateway.kv_incr" in err.value.message and "kv = true" in err.value.message


def test_a_capability_import_of_the_wrong_type_is_refused() -> None:
    wat = cap_plugin("", Data(), ()).replace(
        "(module", '(module (import "eventgateway" "kv_get" (func (param i32) (result i32)))', 1)
    with pytest.raises(PluginLoadError) as err:
        Plugin.from_bytes(wat, name="p", grants=Grants(kv=MemoryKv()))
    assert err.value.kind == "forbidden_import"
    assert "kv_get(i32, i32, i32, i32) -> (i32)" in err.value.message


def test_a_grant_the_module_does_not_use_changes_nothing() -> None:
    with Plugin.from_bytes(cap_plugin("", Data(), ()), name="p", grants=Grants(kv=MemoryKv())) as plugin:
        assert plugin.capabilities == []
        react(plugin)


def test_set_get_delete_round_trip() -> None:
    d = Data()
    key, value = d.ref(b"k1"), d.ref(b"hello world")
    body = (store(0, f"(call $kv_set {key} {value} (i64.const 0))")
            + store(1, f"(call $kv_get {key} (i32.const {BUF_AT}) (i32.const 64))")
            + store(2, f"(call $kv_delete {key})")
            + store(3, f"(call $kv_delete {key})")
            + store(4, f"(call $kv_get {key} (i32.const {BUF_AT}) (i32.const 64))"))
    kv = MemoryKv()
    with load(body, d, kv) as plugin:
        react(plugin)
        assert results(plugin, 5) == [EG_OK, 11, 1, 0, EG_NOT_FOUND]
        assert memory(plugin, BUF_AT, 11) == b"hello world"
    assert kv.get("p", b"k1") is None


def test_get_into_a_small_buffer_returns_the_length_and_writes_nothing() -> None:
    d = Data()
    key = d.ref(b"big")
    body = (store(0, f"(call $kv_get {key} (i32.const {BUF_AT}) (i32.const 4))")
            + store(1, f"(call $kv_get {key} (i32.const 0) (i32.const 0))"))
    kv = MemoryKv()
    kv.set("p", b"big", b"x" * 1000)
    with load(body, d, kv) as plugin:
        react(plugin)
        assert results(plugin, 2) == [1000, 1000]
        assert memory(plugin, BUF_AT, 4) == b"\0\0\0\0"


def test_incr_counts_and_its_ttl_starts_a_fixed_window() -> None:
    clock = FakeClock()
    kv = MemoryKv(clock=clock)
    d = Data()
    body = store(0, f"(call $kv_incr {d.ref(b'n')} (i64.const 1) (i64.const 1000) (i32.const {OUT_AT}))")
    with load(body, d, kv) as plugin:
        seen = []
        for _ in range(3):
            react(plugin)
            assert results(plugin, 1) == [EG_OK]
            seen.append(out_i64(plugin))
            clock.now += 0.3  # the second and third calls keep the first call's expiry
        assert seen == [1, 2, 3]
        assert kv.get("p", b"n") == b"3"
        clock.now += 0.2  # 1.1 s after the first call: the window has passed
        react(plugin)
        assert out_i64(plugin) == 1


def test_incr_on_a_value_that_is_not_a_number_and_on_overflow() -> None:
    kv = MemoryKv()
    kv.set("p", b"text", b"abc")
    kv.set("p", b"max", b"9223372036854775807")
    kv.set("p", b"str", b"41")
    d = Data()
    body = (store(0, f"(call $kv_incr {d.ref(b'text')} (i64.const 1) (i64.const 0) (i32.const {OUT_AT}))")
            + store(1, f"(call $kv_incr {d.ref(b'max')} (i64.const 1) (i64.const 0) (i32.const {OUT_AT}))")
            + store(2, f"(call $kv_incr {d.ref(b'str')} (i64.const 1) (i64.const 0) (i32.const {OUT_AT}))"))
    with load(body, d, kv) as plugin:
        react(plugin)
        assert results(plugin, 3) == [EG_NOT_A_NUMBER, EG_NOT_A_NUMBER, EG_OK]
        assert out_i64(plugin) == 42
    assert kv.get("p", b"max") == b"9223372036854775807"


def test_cas_swaps_only_on_the_expected_value_or_absence() -> None:
    d = Data()
    key = d.ref(b"c")
    absent = "(i32.const 0) (i32.const -1)"
    body = (store(0, f"(call $kv_cas {key} {absent} {d.ref(b'v1')} (i64.const 0))")
            + store(1, f"(call $kv_cas {key} {absent} {d.ref(b'v2')} (i64.const 0))")
            + store(2, f"(call $kv_cas {key} {d.ref(b'nope')} {d.ref(b'v3')} (i64.const 0))")
            + store(3, f"(call $kv_cas {key} {d.ref(b'v1')} {d.ref(b'v4')} (i64.const 0))"))
    kv = MemoryKv()
    with load(body, d, kv) as plugin:
        react(plugin)
        assert results(plugin, 4) == [1, 0, 0, 1]
    assert kv.get("p", b"c") == b"v4"


def test_sizes_ttls_and_pointers_are_checked_before_anything_is_stored() -> None:
    d = Data()
    limits = Limits(max_kv_key_bytes=8, max_kv_value_bytes=16)
    body = (store(0, f"(call $kv_set {d.ref(b'k' * 9)} {d.ref(b'v')} (i64.const 0))")
            + store(1, f"(call $kv_set {d.ref(b'k')} {d.ref(b'v' * 17)} (i64.const 0))")
            + store(2, f"(call $kv_set (i32.const 0) (i32.const 0) {d.ref(b'v')} (i64.const 0))")
            + store(3, f"(call $kv_set {d.ref(b'k')} {d.ref(b'v')} (i64.const -1))")
            + store(4, f"(call $kv_set {d.ref(b'k')} {d.ref(b'v')} (i64.const 31536000001))")
            + store(5, f"(call $kv_set {d.ref(b'k')} (i32.const -16) (i32.const 16) (i64.const 0))")
            + store(6, f"(call $kv_get {d.ref(b'k')} (i32.const 131071) (i32.const 1000))")
            + store(7, f"(call $kv_incr {d.ref(b'k')} (i64.const 1) (i64.const 0) (i32.const 131068))"))
    kv = MemoryKv()
    kv.set("p", b"k", b"12")
    with load(body, d, kv, limits=limits) as plugin:
        react(plugin)
        assert results(plugin, 8) == [EG_TOO_LARGE, EG_TOO_LARGE, EG_INVALID, EG_INVALID, EG_INVALID, EG_INVALID,
                                      EG_INVALID, EG_INVALID]
    assert kv.get("p", b"k") == b"12"  # the incr with a bad `out` changed nothing
    assert kv.usage("p") == (1, 3)


def test_a_key_flood_stops_at_max_kv_keys() -> None:
    """A hostile plugin writing new keys in a loop: every write past the quota is EG_QUOTA, the
    namespace stays at the quota, and the plugin carries on (no fault)."""
    d = Data()
    body = f"""
      (local.set $ptr (i32.const 0))
      (loop $l
        (i32.store (i32.const {OUT_AT}) (local.get $ptr))
        {store(0, f"(call $kv_set (i32.const {OUT_AT}) (i32.const 4) {d.ref(b'v')} (i64.const 0))")}
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $ptr) (i32.const 1000))))"""
    kv = MemoryKv()
    limits = Limits(max_kv_keys=100)
    with load(body, d, kv, limits=limits) as plugin:
        react(plugin)
        assert results(plugin, 1) == [EG_QUOTA]
    assert kv.usage("p")[0] == 100


def test_a_value_bomb_stops_at_max_kv_bytes() -> None:
    d = Data()
    body = f"""
      (local.set $ptr (i32.const 0))
      (loop $l
        (i32.store (i32.const {OUT_AT}) (local.get $ptr))
        {store(0, f"(call $kv_set (i32.const {OUT_AT}) (i32.const 4) (i32.const 0) (i32.const 60000) (i64.const 0))")}
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $ptr) (i32.const 100))))"""
    kv = MemoryKv()
    limits = Limits(max_kv_bytes=1_000_000, sync_fuel=100_000_000)
    with load(body, d, kv, limits=limits) as plugin:
        react(plugin)
        assert results(plugin, 1) == [EG_QUOTA]
    keys, size = kv.usage("p")
    assert size <= 1_000_000 and keys == 16


def test_expired_keys_do_not_count_against_the_quota() -> None:
    clock = FakeClock()
    kv = MemoryKv(clock=clock)
    limits = Limits(max_kv_keys=2)
    kv.set("p", b"a", b"1", ttl_ms=10, limits=limits)
    kv.set("p", b"b", b"1", ttl_ms=10, limits=limits)
    clock.now += 1
    kv.set("p", b"c", b"1", limits=limits)
    assert kv.usage("p") == (1, 2)


def test_a_plugin_that_cannot_pay_gets_no_fuel_and_then_runs_out() -> None:
    d = Data()
    body = store(0, f"(call $kv_set {d.ref(b'k')} {d.ref(b'v')} (i64.const 0))")
    kv = MemoryKv()
    with load(body, d, kv, limits=Limits(host_call_fuel=50_000_000, sync_fuel=10_000_000)) as plugin:
        react(plugin)
        assert results(plugin, 1) == [EG_NO_FUEL]
    assert kv.get("p", b"k") is None


def test_a_loop_of_kv_calls_ends_on_fuel() -> None:
    d = Data()
    body = f"(loop $l (drop (call $kv_get {d.ref(b'k')} (i32.const {BUF_AT}) (i32.const 8))) (br $l))"
    with load(body, d) as plugin:
        with pytest.raises(Exception) as err:
            react(plugin)
        assert getattr(err.value, "kind", None) == "out_of_fuel"


def test_one_plugin_never_sees_another_plugins_keys() -> None:
    kv = MemoryKv()
    d = Data()
    body = (store(0, f"(call $kv_get {d.ref(b'secret')} (i32.const {BUF_AT}) (i32.const 64))")
            + store(1, f"(call $kv_set {d.ref(b'secret')} {d.ref(b'mine')} (i64.const 0))"))
    kv.set("victim", b"secret", b"the victim's")
    with load(body, d, kv, name="attacker") as plugin:
        react(plugin)
        assert results(plugin, 2) == [EG_NOT_FOUND, EG_OK]
    assert kv.get("victim", b"secret") == b"the victim's"
    assert kv.get("attacker", b"secret") == b"mine"


def test_kv_state_is_shared_by_all_instances_of_a_plugin() -> None:
    import concurrent.futures

    d = Data()
    body = store(0, f"(call $kv_incr {d.ref(b'n')} (i64.const 1) (i64.const 0) (i32.const {OUT_AT}))")
    kv = MemoryKv()
    with load(body, d, kv, limits=Limits(pool_size=4)) as plugin:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: react(plugin), range(400)))
        assert len(plugin._pool.snapshot()) > 1
    assert kv.get("p", b"n") == b"400"
