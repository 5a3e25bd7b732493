"""The metrics capability through the real host (ABI.md section 7.1, "metrics"): the three kinds, name and
label rules, kind and label-name conflicts, and a cardinality flood stopped at max_metric_series."""

from __future__ import annotations

import pytest

from tests.wasm_abi.capability_wat import Data, cap_plugin, labels, react, results, store
from wasm_abi import Grants, Limits, Plugin, PluginFault, PluginMetrics
from wasm_abi.capabilities import EG_INVALID, EG_OK, EG_QUOTA


def call(d: Data, kind: int, name: bytes, label_map: dict[str, str] | None, value: float) -> str:
    labels_ref = d.ref(labels(label_map)) if label_map else "(i32.const 0) (i32.const 0)"
    return f"(call $metric (i32.const {kind}) {d.ref(name)} {labels_ref} (f64.const {value!r}))"


def run(body: str, d: Data, metrics: PluginMetrics, limits: Limits | None = None) -> list[int]:
    with Plugin.from_bytes(cap_plugin(body, d, ("metric",)), name="m", grants=Grants(metrics=metrics),
                           limits=limits) as plugin:
        react(plugin)
        return results(plugin, body.count("i32.store (i32.const 5"))


def test_counter_gauge_and_histogram() -> None:
    d, metrics = Data(), PluginMetrics()
    body = (store(0, call(d, 0, b"hits", {"route": "a"}, 2.0))
            + store(1, call(d, 0, b"hits", {"route": "a"}, 3.0))
            + store(2, call(d, 1, b"level", None, 7.5))
            + store(3, call(d, 2, b"level", None, -0.5))
            + store(4, call(d, 3, b"latency", None, 0.02))
            + store(5, call(d, 3, b"latency", None, 20.0)))
    assert run(body, d, metrics) == [EG_OK] * 6
    samples = {(name, tuple(sorted(lab.items()))): value for name, _, lab, value in metrics.samples()}
    assert samples[("hits", (("route", "a"),))] == 5.0
    assert samples[("level", ())] == 7.0
    count, total, buckets = samples[("latency", ())]
    assert (count, total) == (2, 20.02)
    assert buckets[1] == 0 and buckets[2] == 1 and buckets[-1] == 2  # 0.02 lands in the 0.025 bucket


@pytest.mark.parametrize(("kind", "name", "label_map", "value"), [
    (0, b"bad-name", None, 1.0),
    (0, b"9starts_with_digit", None, 1.0),
    (0, b"x" * 65, None, 1.0),
    (0, b"ok", {"plugin": "spoof"}, 1.0),
    (0, b"ok", {"le": "1"}, 1.0),
    (0, b"ok", {"__reserved": "1"}, 1.0),
    (0, b"ok", {"k": "v" * 129}, 1.0),
    (0, b"ok", {f"k{i}": "v" for i in range(9)}, 1.0),
    (0, b"ok", None, -1.0),
    (0, b"ok", None, float("inf")),
    (3, b"ok", None, float("nan")),
    (7, b"ok", None, 1.0),
], ids=["dash", "digit", "long-name", "plugin-label", "le-label", "dunder-label", "long-value", "nine-labels",
        "negative-counter", "inf", "nan", "unknown-kind"])
def test_invalid_calls_are_refused(kind: int, name: bytes, label_map: dict[str, str] | None, value: float) -> None:
    d, metrics = Data(), PluginMetrics()
    assert run(store(0, call(d, kind, name, label_map, value)), d, metrics) == [EG_INVALID]
    assert metrics.samples() == []


def test_bad_label_bytes_are_refused() -> None:
    d, metrics = Data(), PluginMetrics()
    garbage = d.ref(b"\xc1garbage")
    body = store(0, f"(call $metric (i32.const 0) {d.ref(b'x')} {garbage} (f64.const 1))")
    assert run(body, d, metrics) == [EG_INVALID]


def test_a_name_keeps_its_kind_and_its_label_names() -> None:
    d, metrics = Data(), PluginMetrics()
    body = (store(0, call(d, 0, b"x", {"a": "1"}, 1.0))
            + store(1, call(d, 1, b"x", {"a": "1"}, 1.0))
            + store(2, call(d, 0, b"x", {"b": "1"}, 1.0))
            + store(3, call(d, 0, b"x", {"a": "2"}, 1.0)))
    assert run(body, d, metrics) == [EG_OK, EG_INVALID, EG_INVALID, EG_OK]
    assert metrics.series_count == 2


def test_a_cardinality_flood_is_capped_and_counted() -> None:
    """A plugin making a new series per call (a label value from a counter): at most max_metric_series
    series exist; every call past the cap is EG_QUOTA and counted in `dropped`. (Each of these calls
    pays for decoding its new label bytes: 22 000 fuel, so 400 of them fit in the 10 M budget.)"""
    d, metrics = Data(), PluginMetrics()
    # labels {"id": "<4 bytes>"}: fixmap(1) fixstr "id" fixstr(4) + the loop counter's bytes
    prefix = b"\x81\xa2id\xa4"
    at = d.ptr(prefix + b"AAAA")
    body = f"""
      (local.set $ptr (i32.const 0))
      (loop $l
        (i32.store8 (i32.const {at + len(prefix)}) (i32.add (i32.const 65) (i32.rem_u (local.get $ptr) (i32.const 26))))
        (i32.store8 (i32.const {at + len(prefix) + 1})
          (i32.add (i32.const 65) (i32.rem_u (i32.div_u (local.get $ptr) (i32.const 26)) (i32.const 26))))
        (i32.store8 (i32.const {at + len(prefix) + 2}) (i32.add (i32.const 65) (i32.div_u (local.get $ptr) (i32.const 676))))
        {store(0, f"(call $metric (i32.const 0) {d.ref(b'flood')} (i32.const {at}) (i32.const {len(prefix) + 4}) (f64.const 1))")}
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $ptr) (i32.const 400))))"""
    assert run(body, d, metrics, Limits(max_metric_series=50)) == [EG_QUOTA]
    assert metrics.series_count == 50
    assert metrics.dropped == 350


def test_new_label_spellings_pay_for_their_decoding() -> None:
    """A call with label bytes the host has not cached costs ten calls' worth more fuel: 1 000 calls on
    one series fit in a sync reaction's 10 M fuel, 1 000 calls each spelling a new series do not."""
    def loop(new_spelling: bool) -> str:
        d = Data()
        prefix = b"\x81\xa2id\xa4"
        at = d.ptr(prefix + b"AAAA")
        spell = f"""(i32.store8 (i32.const {at + len(prefix)}) (i32.add (i32.const 65) (i32.rem_u (local.get $ptr) (i32.const 26))))
            (i32.store8 (i32.const {at + len(prefix) + 1})
              (i32.add (i32.const 65) (i32.rem_u (i32.div_u (local.get $ptr) (i32.const 26)) (i32.const 26))))"""
        body = f"""
          (local.set $ptr (i32.const 0))
          (loop $l
            {spell if new_spelling else ""}
            (drop (call $metric (i32.const 0) {d.ref(b'n')} (i32.const {at}) (i32.const {len(prefix) + 4}) (f64.const 1)))
            (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $ptr) (i32.const 1000))))"""
        return cap_plugin(body, d, ("metric",))

    with Plugin.from_bytes(loop(False), name="m", grants=Grants(metrics=PluginMetrics())) as plugin:
        react(plugin)
    with Plugin.from_bytes(loop(True), name="m", grants=Grants(metrics=PluginMetrics())) as plugin:
        with pytest.raises(PluginFault) as err:
            react(plugin)
        assert err.value.kind == "out_of_fuel"
