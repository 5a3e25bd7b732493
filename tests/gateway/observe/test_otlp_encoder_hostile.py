"""The hand-written OTLP encoder against hostile values: every encoded request decodes with
``opentelemetry-proto`` to exactly what was given (or to its documented bounded form), whatever the value."""

from __future__ import annotations

import math
import sys

import pytest

from gateway.observe.otlp import OtlpEncoder, SpanEvent

from .test_otlp_encoder import RESOURCE, _attributes, _decode, _span

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


def _round_trip(attributes: dict, **encoder_options) -> dict:
    encoder = OtlpEncoder(RESOURCE, "gateway", **encoder_options)
    _, scope_spans = _decode(encoder.request([_span(attributes=attributes)]))
    [span] = scope_spans.spans
    return _attributes(span.attributes)


def test_int64_bounds_and_beyond() -> None:
    given = {"min": I64_MIN, "max": I64_MAX, "below": I64_MIN - 1, "above": I64_MAX + 1, "zero": 0, "minus one": -1,
             "u64": (1 << 64) - 1, "2**32": 1 << 32, "huge": 10**400}
    assert _round_trip(given) == {"min": I64_MIN, "max": I64_MAX, "below": str(I64_MIN - 1), "above": str(I64_MAX + 1),
                                  "zero": 0, "minus one": -1, "u64": str((1 << 64) - 1), "2**32": 1 << 32,
                                  "huge": str(10**400)[:4096]}


def test_floats_nan_inf_and_signed_zero() -> None:
    decoded = _round_trip({"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "-0": -0.0, "tiny": 5e-324,
                           "max": sys.float_info.max})
    assert math.isnan(decoded.pop("nan"))
    assert decoded == {"inf": math.inf, "-inf": -math.inf, "-0": 0.0, "tiny": 5e-324, "max": sys.float_info.max}
    assert math.copysign(1, _round_trip({"-0": -0.0})["-0"]) == -1


def test_bools_and_ints_stay_apart_through_the_caches() -> None:
    encoder = OtlpEncoder(RESOURCE, "gateway")
    spans = [_span(span_id=n + 1, attributes={"v": value}) for n, value in enumerate([1, True, 0, False, 1, True])]
    for _ in range(2):
        _, scope_spans = _decode(encoder.request(spans))
        kinds = [s.attributes[0].value.WhichOneof("value") for s in scope_spans.spans]
        assert kinds == ["int_value", "bool_value"] * 3
        assert [_attributes(s.attributes)["v"] for s in scope_spans.spans] == [1, True, 0, False, 1, True]


def test_nul_and_non_utf8_text() -> None:
    given = {"nul": "a\x00b", "key\x00nul": "v", "surrogate pair halves": "\ud83d\ude00", "bytes": b"\xff\xfe\x00",
             "latin": "caf\xe9"}
    assert _round_trip(given) == {"nul": "a\x00b", "key\x00nul": "v", "surrogate pair halves": "??",
                                  "bytes": b"\xff\xfe\x00", "latin": "caf\xe9"}


def test_the_value_limit_counts_characters_and_never_splits_one() -> None:
    # 4096 snowmen are 12288 UTF-8 bytes: the limit is characters, as the SDK's, and the text stays valid UTF-8.
    assert _round_trip({"wide": "\u2603" * 5000}, value_limit=4096) == {"wide": "\u2603" * 4096}


def test_nested_and_huge_arrays() -> None:
    """Arrays hold primitives: a container inside one is sent as its (bounded) text. A 50-deep array sent as
    nested ArrayValues would exceed the protobuf decoder's depth limit: the collector would refuse the batch."""
    deep: list = ["leaf"]
    for _ in range(50):
        deep = [deep]
    looped: list = [1]
    looped.append(looped)
    decoded = _round_trip({"deep": deep, "huge": list(range(100_000)), "empty": [], "mixed": [True, 1, 1.5, "s", b"b"],
                           "nested": [[1, 2], {"a": 1}, (3,)], "looped": looped, "dict": {"a": [1]}, "set": {1}})
    assert decoded["deep"] == ["[[[[[...]]]]]"] and decoded["huge"] == list(range(100_000))
    assert decoded["empty"] == [] and decoded["mixed"] == [True, 1, 1.5, "s", b"b"]
    assert decoded["nested"] == ["[1, 2]", "{'a': 1}", "(3,)"]
    assert decoded["looped"] == [1, "[1, [1, [1, [1, [...]]]]]"]
    assert decoded["dict"] == "{'a': [1]}" and decoded["set"] == "{1}"


def test_very_deep_array_does_not_kill_the_export() -> None:
    """A value nested deeper than Python's recursion limit: the span is still encoded (the value cut or
    stringified), not a RecursionError that drops the whole batch."""
    deep: list = ["leaf"]
    for _ in range(sys.getrecursionlimit() + 10):
        deep = [deep]
    encoder = OtlpEncoder(RESOURCE, "gateway")
    _, scope_spans = _decode(encoder.request([_span(attributes={"deep": deep, "ok": "kept", "dict": {"d": deep}})]))
    decoded = _attributes(scope_spans.spans[0].attributes)
    assert decoded["ok"] == "kept" and decoded["deep"] == ["[[[[[...]]]]]"] and decoded["dict"] == "{'d': [[[[...]]]]}"


@pytest.mark.parametrize("count_limit", [0, 1, None])
def test_count_limits_at_the_edges(count_limit: int | None) -> None:
    many = {f"k{n}": n for n in range(300)}
    encoder = OtlpEncoder(RESOURCE, "gateway", count_limit=count_limit)
    _, scope_spans = _decode(encoder.request([_span(attributes=many, events=[SpanEvent("e", 1, many)])]))
    [span] = scope_spans.spans
    kept = 300 if count_limit is None else count_limit
    assert _attributes(span.attributes) == {f"k{n}": n for n in range(kept)}
    assert span.dropped_attributes_count == 300 - kept
    assert span.events[0].dropped_attributes_count == 300 - kept


def test_many_distinct_keys_and_values_keep_the_caches_bounded() -> None:
    encoder = OtlpEncoder(RESOURCE, "gateway")
    for round_ in range(30):
        spans = [_span(span_id=n + 1, attributes={f"key-{round_}-{n}": f"v{n}", "n": n}) for n in range(1000)]
        _, scope_spans = _decode(encoder.request(spans))
        assert _attributes(scope_spans.spans[-1].attributes) == {f"key-{round_}-999": "v999", "n": 999}
    assert len(encoder._keys) <= 4096 and len(encoder._pairs) <= 8192


def test_an_int_past_pythons_decimal_text_limit() -> None:
    """str() refuses an int of more than 4300 digits (ValueError): that must not lose the batch."""
    huge = 10**5000
    assert _round_trip({"huge": huge, "negative": -huge}, value_limit=None) == {"huge": hex(huge),
                                                                              "negative": hex(-huge)}
