"""The metrics capability's store (ABI.md section 7.1, "metrics"): one plugin's own series.

A `PluginMetrics` holds what a plugin's `metric` calls recorded: counters, gauges and histograms by
name and label values, at most `Limits.max_metric_series` series (a call that would make one more is
refused and counted in `dropped`). It knows nothing of Prometheus: the gateway renders `samples()` on
its `/metrics` (as ``eventgateway_plugin_custom_<name>``); the Python host reads them directly.

The hot path is `record`: the host call passes the raw bytes of the name and of the msgpack labels,
and a series already seen is found by those bytes in one dict look-up, without decoding anything.
"""

from __future__ import annotations

import math
import re
import threading
from bisect import bisect_left
from typing import Any

import msgpack

from .capabilities import EG_INVALID, EG_QUOTA, CapabilityError

COUNTER_ADD, GAUGE_SET, GAUGE_ADD, HISTOGRAM_OBSERVE = 0, 1, 2, 3
_FAMILY = {COUNTER_ADD: "counter", GAUGE_SET: "gauge", GAUGE_ADD: "gauge", HISTOGRAM_OBSERVE: "histogram"}

#: Histogram buckets (upper bounds; +Inf is implied): Prometheus' defaults.
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_NAME_BYTES = 64
MAX_LABELS = 8
MAX_LABEL_VALUE_BYTES = 128
RESERVED_LABELS = frozenset({"plugin", "le", "quantile"})
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
#: Raw-bytes spellings of one series that `record` finds without decoding.
_SPELLINGS = 8


class _Series:
    __slots__ = ("buckets", "count", "labels", "spellings", "sum", "value")

    def __init__(self, labels: dict[str, str], histogram: bool) -> None:
        self.labels = labels
        self.value = 0.0
        self.count = 0
        self.sum = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1) if histogram else None
        self.spellings = 0  # raw-bytes cache entries that lead here


class _Metric:
    __slots__ = ("family", "label_names", "series")

    def __init__(self, family: str, label_names: tuple[str, ...]) -> None:
        self.family = family
        self.label_names = label_names
        self.series: dict[tuple[str, ...], _Series] = {}


def _check_name(raw: bytes, what: str) -> str:
    if len(raw) > MAX_NAME_BYTES:
        raise CapabilityError(EG_INVALID, f"{what} is {len(raw)} bytes, over {MAX_NAME_BYTES}")
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        raise CapabilityError(EG_INVALID, f"{what} is not ASCII") from None
    if not _NAME.fullmatch(name):
        raise CapabilityError(EG_INVALID, f"{what} {name!r} does not match [a-zA-Z_][a-zA-Z0-9_]*")
    return name


def _decode_labels(raw: bytes) -> dict[str, str]:
    if not raw:
        return {}
    try:
        labels = msgpack.unpackb(raw, raw=False, strict_map_key=True, max_map_len=MAX_LABELS,
                                 max_array_len=0, max_bin_len=0, max_ext_len=0,
                                 max_str_len=max(MAX_NAME_BYTES, MAX_LABEL_VALUE_BYTES))
    except Exception:  # noqa: BLE001 - msgpack raises several types for bad input
        raise CapabilityError(EG_INVALID, "labels are not a msgpack map of at most 8 str -> str") from None
    if not isinstance(labels, dict) or len(labels) > MAX_LABELS:
        raise CapabilityError(EG_INVALID, "labels are not a msgpack map of at most 8 entries")
    out: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise CapabilityError(EG_INVALID, "label names and values must be strings")
        _check_name(key.encode(), "label name")
        if key.startswith("__") or key in RESERVED_LABELS:
            raise CapabilityError(EG_INVALID, f"label name {key!r} is reserved")
        if len(value.encode()) > MAX_LABEL_VALUE_BYTES:
            raise CapabilityError(EG_INVALID, f"label {key!r} has a value over {MAX_LABEL_VALUE_BYTES} bytes")
        out[key] = value
    return out


class PluginMetrics:
    """The metric series of one plugin. Thread-safe; `record` is what the host call runs."""

    def __init__(self, max_series: int | None = None) -> None:
        self._lock = threading.Lock()
        self._metrics: dict[str, _Metric] = {}
        self._by_bytes: dict[tuple[bytes, bytes], tuple[_Metric, _Series]] = {}
        self._count = 0
        #: Calls refused because they would have made a series over the cap.
        self.dropped = 0
        self.max_series = max_series

    def cached(self, name: bytes, labels: bytes) -> bool:
        """Whether a call with exactly these bytes finds its series without decoding anything (a
        dict look-up; no lock: a stale answer only changes what the call is charged)."""
        return (name, labels) in self._by_bytes

    def record(self, kind: int, name: bytes, labels: bytes, value: float, max_series: int) -> None:
        """Apply one `metric` call; `CapabilityError` (EG_INVALID, EG_QUOTA) if it cannot be."""
        family = _FAMILY.get(kind)
        if family is None:
            raise CapabilityError(EG_INVALID, f"metric kind {kind} is not 0 (counter add), 1 (gauge set), "
                                  "2 (gauge add) or 3 (histogram observe)")
        if not math.isfinite(value) or (kind == COUNTER_ADD and value < 0):
            raise CapabilityError(EG_INVALID, f"value {value!r} is not allowed for a {family}")
        cap = self.max_series if self.max_series is not None else max_series
        with self._lock:
            found = self._by_bytes.get((name, labels))
            if found is None:
                found = self._new_series(family, name, labels, cap)
            metric, series = found
            if metric.family != family:
                raise CapabilityError(EG_INVALID, f"metric {name.decode()!r} is a {metric.family}, not a {family}")
            if kind == GAUGE_SET:
                series.value = value
            elif kind == HISTOGRAM_OBSERVE:
                series.count += 1
                series.sum += value
                series.buckets[bisect_left(BUCKETS, value)] += 1  # type: ignore[index]
            else:
                series.value += value

    def _new_series(self, family: str, raw_name: bytes, raw_labels: bytes, cap: int) -> tuple[_Metric, _Series]:
        name = _check_name(raw_name, "metric name")
        labels = _decode_labels(raw_labels)
        label_names = tuple(sorted(labels))
        metric = self._metrics.get(name)
        if metric is None:
            metric = _Metric(family, label_names)
            new_metric = True
        else:
            new_metric = False
            if metric.family != family:
                raise CapabilityError(EG_INVALID, f"metric {name!r} is a {metric.family}, not a {family}")
            if metric.label_names != label_names:
                raise CapabilityError(EG_INVALID, f"metric {name!r} has the labels {list(metric.label_names)}, "
                                      f"not {list(label_names)}")
        values = tuple(labels[n] for n in label_names)
        series = metric.series.get(values)
        if series is None:
            if self._count >= cap:
                self.dropped += 1
                raise CapabilityError(EG_QUOTA, f"the plugin has {self._count} metric series, the most allowed "
                                      f"(max_metric_series {cap})")
            series = metric.series[values] = _Series(labels, family == "histogram")
            self._count += 1
            if new_metric:
                self._metrics[name] = metric
        # The cache of raw bytes holds a few spellings per series (msgpack has many for the same labels:
        # key order -- a Go map's is random --, str8/16/32, map16/32), so one series cannot fill it; other
        # spellings are decoded at each call instead.
        if series.spellings < _SPELLINGS and len(self._by_bytes) < 4 * cap + 64:
            series.spellings += 1
            self._by_bytes[(raw_name, raw_labels)] = (metric, series)
        return metric, series

    # -- reading ------------------------------------------------------------------------------

    @property
    def series_count(self) -> int:
        return self._count

    def samples(self) -> list[tuple[str, str, dict[str, str], Any]]:
        """Every series as ``(name, family, labels, value)``: a float for counters and gauges,
        ``(count, sum, cumulative bucket counts aligned with BUCKETS + [+Inf])`` for histograms."""
        out: list[tuple[str, str, dict[str, str], Any]] = []
        with self._lock:
            for name, metric in self._metrics.items():
                for series in metric.series.values():
                    if series.buckets is None:
                        out.append((name, metric.family, dict(series.labels), series.value))
                    else:
                        cumulative, running = [], 0
                        for n in series.buckets:
                            running += n
                            cumulative.append(running)
                        out.append((name, metric.family, dict(series.labels),
                                    (series.count, series.sum, cumulative)))
        return out

    def families(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """name -> (family, label names)."""
        with self._lock:
            return {name: (m.family, m.label_names) for name, m in self._metrics.items()}
