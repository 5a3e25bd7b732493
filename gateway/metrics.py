"""Prometheus metrics of one gateway.

Each :class:`Metrics` owns its own ``CollectorRegistry`` rather than using the process-global one, so
several gateways can run in one process (tests, embedded use) without their series colliding. The
upstream Event Gateway's metric names are kept as they were so that existing dashboards keep working;
the plugin metrics are new.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from wasm_abi.events import SYSTEM_EVENT_TYPES
from wasm_abi.plugin_metrics import BUCKETS as CUSTOM_BUCKETS
from wasm_abi.plugin_metrics import PluginMetrics

__all__ = ["CONTENT_TYPE_LATEST", "CUSTOM_PREFIX", "MAX_LABEL_CHARS", "OTHER", "Metrics", "PluginCustomMetrics"]

log = logging.getLogger("gateway.metrics")

#: The label value that stands for every space and event type the configuration does not name: labels
#: come from what clients send (the ``Space`` header, the event's type), so only configured names may
#: become series of their own, or any client could make the gateway keep (and ``/metrics`` render) an
#: unbounded number of them.
OTHER = "other"
#: Longest label value kept; a longer one is cut (configured names are far shorter than this).
MAX_LABEL_CHARS = 128
#: Event types the gateway makes itself (a bounded set, labelled whether configured or not).
#: (``http.request`` is gateway.events.parse's HTTP_REQUEST_TYPE, a layer above this module.)
_GATEWAY_TYPES = frozenset({"http.request", *SYSTEM_EVENT_TYPES})

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_REACTION_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1)
_FUEL_BUCKETS = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9)


class Metrics:
    """Every series the gateway exports, registered in a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        #: Unbound (no configuration view: unit tests, embedded use), every name is "configured".
        self._known_space: Callable[[str], bool] = lambda space: True
        self._known_type: Callable[[str, str], bool] = lambda space, event_type: True
        self._known_function: Callable[[str, str], bool] = lambda space, function_id: True
        r = self.registry
        ns = "eventgateway"

        # Events API (upstream names).
        self.events_received = Counter(
            "events_received", "Events received by the Events API, system events included.",
            ["space", "type"], namespace=ns, registry=r)
        self.events_processed = Counter(
            "events_processed", "Events whose processing finished.", ["space", "type"], namespace=ns, registry=r)
        self.events_dropped = Counter(
            "events_dropped", "Async deliveries given up: attempts exhausted (now dead letters), vetoed by a "
            "plugin, or system event deliveries the queue refused.", ["space", "type"], namespace=ns, registry=r)
        self.events_backlog = Gauge(
            "events_backlog", "Async deliveries held by the delivery queue (the older name of "
            "eventgateway_async_queue_depth).", namespace=ns, registry=r)
        self.events_custom_processing_seconds = Histogram(
            "events_custom_processing_seconds", "Time from an event's arrival to the end of its processing.",
            namespace=ns, registry=r, buckets=_LATENCY_BUCKETS)

        # Function calls (new).
        self.function_invocations = Counter(
            "function_invocations", "Function invocations by outcome (success, failure).",
            ["space", "function", "mode", "outcome"], namespace=ns, registry=r)
        self.function_duration_seconds = Histogram(
            "function_duration_seconds", "Duration of function invocations.", ["space", "function", "mode"],
            namespace=ns, registry=r, buckets=_LATENCY_BUCKETS)
        self.async_retries = Counter(
            "async_retries", "Async delivery attempts retried after a failure.", ["space", "function"],
            namespace=ns, registry=r)

        # The delivery queue (issue 14).
        self.async_queue_depth = Gauge(
            "async_queue_depth", "Async deliveries held by the delivery queue (waiting, being made or waiting "
            "to retry; dead letters not counted). A queue shared by several processes or gateways: each "
            "reports the whole queue.", namespace=ns, registry=r)
        self.deadletters_total = Counter(
            "deadletters", "Async deliveries that became dead letters (every attempt failed, or the function "
            "was deleted).", ["space", "function"], namespace=ns, registry=r)
        self.delivery_leases_lost = Counter(
            "delivery_leases_lost", "Leases of async deliveries in flight found lost when the delivery worker "
            "renewed them (the worker was stalled longer than --queue-lease): another worker may deliver "
            "those again.", namespace=ns, registry=r)
        #: ``eventgateway_deadletters{space,function}``: see :class:`DeadLetterGauge`.
        self.deadletters = DeadLetterGauge(r, self)

        # Config API (upstream names: the gauges end in _total upstream too).
        self.eventtypes = Gauge("eventtypes_total", "Event types registered.", ["space"], namespace=ns, registry=r)
        self.functions = Gauge("functions_total", "Functions registered.", ["space"], namespace=ns, registry=r)
        self.subscriptions = Gauge("subscriptions_total", "Subscriptions registered.", ["space"], namespace=ns, registry=r)
        self.cors = Gauge("cors_total", "CORS configurations registered.", ["space"], namespace=ns, registry=r)
        self.config_requests = Counter(
            "config_requests", "Config API requests.", ["space", "resource", "operation"], namespace=ns, registry=r)
        self.config_request_duration_seconds = Histogram(
            "config_request_duration_seconds", "Config API request duration.", ["space", "resource", "operation"],
            namespace=ns, registry=r, buckets=_LATENCY_BUCKETS)

        # Plugins (new).
        #: ``eventgateway_plugin_reactions_total``, ``eventgateway_plugin_reaction_seconds`` and
        #: ``eventgateway_plugin_fuel_used``: see :class:`ReactionStats`.
        self.plugin_reactions = ReactionStats(r, ns)
        self.plugin_faults = Counter(
            "plugin_faults", "Plugin faults by kind (out_of_fuel, timeout, trap, memory, bad_output, ...).",
            ["plugin", "kind"], namespace=ns, registry=r)
        self.plugin_state = Gauge(
            "plugin_state", "Plugin state: 0 active, 1 quarantined, 2 disabled, 3 failed to load.", ["plugin"], namespace=ns, registry=r)
        self.plugin_retry_at = Gauge(
            "plugin_quarantine_retry_timestamp_seconds",
            "Unix time at which a quarantined plugin is probed again (0 when not quarantined).", ["plugin"],
            namespace=ns, registry=r)
        self.plugin_last_fault = Gauge(
            "plugin_last_fault_timestamp_seconds",
            "Unix time of a plugin's last fault, labelled with its kind (one series per plugin).",
            ["plugin", "kind"], namespace=ns, registry=r)
        self.plugin_log_dropped = Counter(
            "plugin_log_dropped", "Plugin log lines dropped by the rate limit.", ["plugin"], namespace=ns, registry=r)
        #: ``eventgateway_plugin_custom_*`` (the metrics capability), ``eventgateway_plugin_metric_series_dropped_total``
        #: and ``eventgateway_plugin_metric_conflicts``: see :class:`PluginCustomMetrics`.
        self.plugin_custom = PluginCustomMetrics(r)
        self.plugin_async_backlog_bytes = Gauge(
            "plugin_async_backlog_bytes", "Bytes of encoded events held by waiting or running async plugin "
            "reactions (each event once); bounded, beyond it reactions are dropped.", namespace=ns, registry=r)

        # Cluster (new).
        self.store_up = Gauge("store_up", "1 while the configuration store is reachable.", namespace=ns, registry=r)

        # The series labelled by what a client sends, and how their labels are bounded.
        self._normalizers: dict[Any, Callable[[tuple[str, ...]], tuple[str, ...]]] = {}
        for metric in (self.events_received, self.events_processed, self.events_dropped):
            self._bound(metric, self._event_labels)
        for metric in (self.deadletters_total,):
            self._bound(metric, self._function_labels)
        for metric in (self.config_requests, self.config_request_duration_seconds):  # type: ignore[assignment]
            self._bound(metric, self._space_first)

    def bind(self, known_space: Callable[[str], bool], known_type: Callable[[str, str], bool],
             known_function: Callable[[str, str], bool] | None = None) -> None:
        """Label only what the configuration names: ``known_space(space)``, ``known_type(space, type)`` and
        ``known_function(space, id)`` (the runtime binds its configuration view); anything else is
        labelled ``other``."""
        self._known_space = known_space
        self._known_type = known_type
        if known_function is not None:
            self._known_function = known_function

    def space_label(self, space: str) -> str:
        """``space`` if the configuration knows it (or it is ``default``, or none: ``""``), else ``other``."""
        if space in ("", "default") or (len(space) <= MAX_LABEL_CHARS and self._known_space(space)):
            return space
        return OTHER

    def type_label(self, space: str, event_type: str) -> str:
        """``event_type`` if the gateway makes it or ``space`` configures it, else ``other``."""
        if event_type in _GATEWAY_TYPES or (len(event_type) <= MAX_LABEL_CHARS and self._known_type(space, event_type)):
            return event_type
        return OTHER

    def function_label(self, space: str, function_id: str) -> str:
        """``function_id`` if ``space`` configures it, else ``other`` (dead letters of deleted functions)."""
        if len(function_id) <= MAX_LABEL_CHARS and self._known_function(space, function_id):
            return function_id
        return OTHER

    def _function_labels(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        space, function_id = labels
        return (self.space_label(space), self.function_label(space, function_id))

    def _event_labels(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        space, event_type = labels
        return (self.space_label(space), self.type_label(space, event_type))

    def _space_first(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        return (self.space_label(labels[0]), *(value[:MAX_LABEL_CHARS] for value in labels[1:]))

    def _bound(self, metric: Any, normalize: Callable[[tuple[str, ...]], tuple[str, ...]]) -> None:
        """Make ``metric.labels(...)`` (and :meth:`child`) label through ``normalize``."""
        self._normalizers[metric] = normalize
        labels = metric.labels

        def bounded(*values: str) -> Any:
            return labels(*normalize(tuple(str(v) for v in values)))

        metric.labels = bounded

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, memoized: the event path takes a few labelled children per
        event and plugin reaction, and prometheus-client's ``labels()`` validates and locks each time."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            normalize = self._normalizers.get(metric)
            if normalize is not None:
                bounded = normalize(labels)
                if bounded != labels:  # not memoized under what the client sent: that set is unbounded
                    return self.child(metric, *bounded)
            found = self._children[key] = metric.labels(*labels)
        return found

    def render(self) -> bytes:
        """The text exposition format, for ``GET /v1/metrics``. Serving it: call it off the event loop
        (``asyncio.to_thread``): it formats every series."""
        return generate_latest(self.registry)


class DeadLetterGauge(Collector):
    """``eventgateway_deadletters{space,function}``: the dead letters the queue holds, as last read from
    it (:meth:`set_counts`, by the delivery worker). Labels follow the metrics' rule: spaces and functions
    the configuration does not name (any more) are summed under ``other``. A scrape sees one whole
    reading, never half of two."""

    def __init__(self, registry: CollectorRegistry, metrics: Metrics) -> None:
        self._metrics = metrics
        self._counts: dict[tuple[str, str], int] = {}
        registry.register(self)

    def set_counts(self, counts: dict[tuple[str, str], int]) -> None:
        bounded: dict[tuple[str, str], int] = {}
        for (space, function_id), count in counts.items():
            key = (self._metrics.space_label(space), self._metrics.function_label(space, function_id))
            bounded[key] = bounded.get(key, 0) + count
        self._counts = bounded

    def value(self, space: str, function_id: str) -> int:
        return self._counts.get((space, function_id), 0)

    def describe(self) -> list[Metric]:
        # Nothing reserved: prometheus-client would reserve "eventgateway_deadletters" for the counter
        # eventgateway_deadletters_total too (it names a counter's family without "_total"), while the text
        # format (0.0.4) exposes them as two names, a gauge and a counter, as the issue names them.
        return []

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("eventgateway_deadletters",
                                   "Dead letters held by the delivery queue (list, redeliver or delete them at "
                                   "/v1/spaces/<space>/deadletters).", labels=["space", "function"])
        for (space, function_id), count in sorted(self._counts.items()):
            family.add_metric([space, function_id], count)
        yield family


class _ReactionRow:
    """The counts of one (plugin, event type, mode), written by one thread only."""

    __slots__ = ("fuel_buckets", "fuel_sum", "outcomes", "seconds_buckets", "seconds_sum")

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self.seconds_buckets = [0] * (len(_REACTION_BUCKETS) + 1)
        self.seconds_sum = 0.0
        self.fuel_buckets = [0] * (len(_FUEL_BUCKETS) + 1)
        self.fuel_sum = 0.0


class ReactionStats(Collector):
    """The per-reaction plugin series, kept cheap enough for the event path.

    A sync reaction of a trivial plugin costs a few µs; prometheus-client's labelled counter and two
    histograms cost about as much again (a lock per value, a bucket scan). Here each thread counts
    into its own plain rows, with no lock and no race (a row has a single writer), and a scrape merges
    every thread's rows into the usual counter and histogram families.
    """

    def __init__(self, registry: CollectorRegistry, namespace: str) -> None:
        self._prefix = f"{namespace}_"
        self._local = threading.local()
        self._tables: list[dict[tuple[str, str, str], _ReactionRow]] = []
        self._tables_lock = threading.Lock()  # taken once per thread, to list its table
        registry.register(self)

    def _table(self) -> dict[tuple[str, str, str], _ReactionRow]:
        table = getattr(self._local, "table", None)
        if table is None:
            table = self._local.table = {}
            with self._tables_lock:
                self._tables.append(table)
        return table

    def record(self, plugin: str, event_type: str, mode: str, outcome: str | None = None,
               seconds: float | None = None, fuel: int = 0) -> None:
        """Count one reaction's ``outcome`` and/or observe its wall time and fuel."""
        key = (plugin, event_type, mode)
        table = self._table()
        row = table.get(key)
        if row is None:
            row = table[key] = _ReactionRow()
        if outcome is not None:
            row.outcomes[outcome] = row.outcomes.get(outcome, 0) + 1
        if seconds is not None:
            row.seconds_buckets[bisect_left(_REACTION_BUCKETS, seconds)] += 1
            row.seconds_sum += seconds
        if fuel:
            row.fuel_buckets[bisect_left(_FUEL_BUCKETS, fuel)] += 1
            row.fuel_sum += fuel

    def describe(self) -> list[Metric]:
        return list(self._families({}))

    def collect(self) -> Iterator[Metric]:
        merged: dict[tuple[str, str, str], _ReactionRow] = {}
        with self._tables_lock:
            tables = list(self._tables)
        for table in tables:
            for key, row in list(table.items()):  # one C call: safe while the owner adds rows
                into = merged.get(key)
                if into is None:
                    into = merged[key] = _ReactionRow()
                for outcome, count in list(row.outcomes.items()):
                    into.outcomes[outcome] = into.outcomes.get(outcome, 0) + count
                into.seconds_buckets = [a + b for a, b in zip(into.seconds_buckets, row.seconds_buckets, strict=True)]
                into.seconds_sum += row.seconds_sum
                into.fuel_buckets = [a + b for a, b in zip(into.fuel_buckets, row.fuel_buckets, strict=True)]
                into.fuel_sum += row.fuel_sum
        return self._families(merged)

    def _families(self, rows: dict[tuple[str, str, str], _ReactionRow]) -> Iterator[Metric]:
        labels = ["plugin", "event_type", "mode"]
        reactions = CounterMetricFamily(
            self._prefix + "plugin_reactions",
            "Plugin reactions by outcome (continue, reject, rewrite, fault, skipped, dropped).",
            labels=[*labels, "outcome"])
        seconds = HistogramMetricFamily(self._prefix + "plugin_reaction_seconds", "Wall time of plugin reactions.",
                                        labels=labels)
        fuel = HistogramMetricFamily(self._prefix + "plugin_fuel_used", "Fuel consumed by one plugin reaction.",
                                     labels=labels)
        for key, row in sorted(rows.items()):
            for outcome, count in sorted(row.outcomes.items()):
                reactions.add_metric([*key, outcome], count)
            if any(row.seconds_buckets):
                seconds.add_metric(list(key), _cumulative(_REACTION_BUCKETS, row.seconds_buckets), row.seconds_sum)
            if any(row.fuel_buckets):
                fuel.add_metric(list(key), _cumulative(_FUEL_BUCKETS, row.fuel_buckets), row.fuel_sum)
        yield reactions
        yield seconds
        yield fuel


def _cumulative(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    buckets: list[tuple[str, float]] = []
    total = 0
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        total += count
        buckets.append((floatToGoString(bound), total))
    return buckets


#: Family name prefix of the series plugins define (the metrics capability, ABI.md section 7.1).
CUSTOM_PREFIX = "eventgateway_plugin_custom_"

_CUSTOM_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


class PluginCustomMetrics(Collector):
    """The series plugins granted ``metrics`` record (``wasm_abi.PluginMetrics``), read at each scrape.

    A plugin's metric ``name`` is the family ``eventgateway_plugin_custom_<name>`` with a ``plugin`` label
    (counter: samples ``..._total``; histogram: ``_bucket``/``_count``/``_sum`` with ``wasm_abi.plugin_metrics.BUCKETS``).
    Several plugins using one name and kind share the family (their ``plugin`` labels tell them apart).
    Prometheus allows one type per family name and one family per sample name, so when plugins use one
    name with different kinds (or names whose samples collide: a gauge ``x_total`` and a counter ``x``, a
    gauge ``y_count`` and a histogram ``y``) the family exported first keeps the name as long as any
    plugin still has it, the others' series are left out of the scrape, logged once and counted in
    ``eventgateway_plugin_metric_conflicts{plugin}``; when the first goes, the next scrape picks the next
    (plugins in name order). Each plugin's refused new series (over ``max_metric_series``) are
    ``eventgateway_plugin_metric_series_dropped_total{plugin}``.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._provider: Callable[[], Iterable[tuple[str, PluginMetrics]]] = lambda: ()
        self._lock = threading.Lock()
        self._owners: dict[str, str] = {}  # family name -> its kind, kept while any plugin still has it
        self._logged: set[tuple[str, str, str]] = set()  # conflicts (plugin, name, kind) already logged
        registry.register(self)

    def bind(self, provider: Callable[[], Iterable[tuple[str, PluginMetrics]]]) -> None:
        """Read ``(plugin, its PluginMetrics)`` pairs from ``provider`` at each scrape (the plugin manager)."""
        self._provider = provider

    def describe(self) -> list[Metric]:
        return []  # the names change with what plugins record: no fixed names to reserve

    @staticmethod
    def _family_name(name: str, kind: str) -> str:
        family = CUSTOM_PREFIX + name
        # prometheus-client drops a counter's own "_total" from the family name (and adds it to the sample)
        return family.removesuffix("_total") if kind == "counter" else family

    def collect(self) -> Iterator[Metric]:
        plugins = list(self._provider())
        rows: dict[tuple[str, str], list[tuple[str, dict[str, str], Any]]] = {}
        order: list[tuple[str, str]] = []
        dropped = CounterMetricFamily("eventgateway_plugin_metric_series_dropped",
                                      "Metric series a plugin tried to create over its max_metric_series, refused.",
                                      labels=["plugin"])
        conflicts = GaugeMetricFamily("eventgateway_plugin_metric_conflicts",
                                      "Metrics of a plugin left out of this scrape: another plugin's metric of "
                                      "another kind has the same family or sample name.", labels=["plugin"])
        for plugin, store in plugins:
            dropped.add_metric([plugin], store.dropped)
            for name, kind, labels, value in store.samples():
                key = (self._family_name(name, kind), kind)
                if key not in rows:
                    rows[key] = []
                    order.append(key)
                rows[key].append((plugin, {"plugin": plugin, **labels}, value))
        with self._lock:
            # Families exported at the last scrape keep their name first, then new ones in plugin-name order.
            order.sort(key=lambda key: self._owners.get(key[0]) != key[1])
            claimed: set[str] = set()
            owners: dict[str, str] = {}
            hidden: dict[str, int] = {}
            current_conflicts: set[tuple[str, str, str]] = set()
            families: list[Metric] = []
            for family, kind in order:
                names = {family, *(family + suffix for suffix in _CUSTOM_SUFFIXES[kind])}
                if names & claimed:
                    for plugin, _, _ in rows[(family, kind)]:
                        conflict = (plugin, family, kind)
                        if conflict not in current_conflicts:
                            current_conflicts.add(conflict)
                            hidden[plugin] = hidden.get(plugin, 0) + 1
                        if conflict not in self._logged:
                            log.warning("plugin %r: its %s %s is not exported on /metrics: that name is taken by "
                                        "another plugin's %s (one type per metric name); rename one of them",
                                        plugin, kind, family, owners.get(family) or "metric")
                    continue
                claimed |= names
                owners[family] = kind
                families.append(self._family(family, kind, rows[(family, kind)]))
            self._owners = owners
            self._logged = current_conflicts
        for plugin, _ in plugins:
            conflicts.add_metric([plugin], hidden.get(plugin, 0))
        yield from families
        yield dropped
        yield conflicts

    @staticmethod
    def _family(family: str, kind: str, rows: list[tuple[str, dict[str, str], Any]]) -> Metric:
        documentation = f"Plugin-defined {kind} (metrics capability; label plugin names the plugin)."
        metric: Metric
        if kind == "counter":
            metric = CounterMetricFamily(family, documentation)
            for _, labels, value in rows:
                metric.add_sample(family + "_total", labels, value)
        elif kind == "gauge":
            metric = GaugeMetricFamily(family, documentation)
            for _, labels, value in rows:
                metric.add_sample(family, labels, value)
        else:
            metric = HistogramMetricFamily(family, documentation)
            for _, labels, (count, total, cumulative) in rows:
                for bound, running in zip((*CUSTOM_BUCKETS, float("inf")), cumulative, strict=True):
                    metric.add_sample(family + "_bucket", {**labels, "le": floatToGoString(bound)}, running)
                metric.add_sample(family + "_count", labels, count)
                metric.add_sample(family + "_sum", labels, total)
        return metric
