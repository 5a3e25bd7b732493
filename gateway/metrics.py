"""Prometheus metrics of one gateway.

Each :class:`Metrics` owns its own ``CollectorRegistry`` rather than using the process-global one, so
several gateways can run in one process (tests, embedded use) without their series colliding. The
upstream Event Gateway's metric names are kept as they were so that existing dashboards keep working;
the plugin metrics are new.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_REACTION_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1)
_FUEL_BUCKETS = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9)


class Metrics:
    """Every series the gateway exports, registered in a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        r = self.registry
        ns = "eventgateway"

        # Events API (upstream names).
        self.events_received = Counter(
            "events_received", "Events received by the Events API, system events included.",
            ["space", "type"], namespace=ns, registry=r)
        self.events_processed = Counter(
            "events_processed", "Events whose processing finished.", ["space", "type"], namespace=ns, registry=r)
        self.events_dropped = Counter(
            "events_dropped", "Async deliveries given up: backlog full or retries exhausted.",
            ["space", "type"], namespace=ns, registry=r)
        self.events_backlog = Gauge(
            "events_backlog", "Async deliveries waiting in the backlog.", namespace=ns, registry=r)
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
        self.plugin_reactions = Counter(
            "plugin_reactions", "Plugin reactions by outcome (continue, reject, rewrite, fault, skipped).",
            ["plugin", "event_type", "mode", "outcome"], namespace=ns, registry=r)
        self.plugin_reaction_seconds = Histogram(
            "plugin_reaction_seconds", "Wall time of plugin reactions.", ["plugin", "event_type", "mode"],
            namespace=ns, registry=r, buckets=_REACTION_BUCKETS)
        self.plugin_fuel_used = Histogram(
            "plugin_fuel_used", "Fuel consumed by one plugin reaction.", ["plugin", "event_type", "mode"],
            namespace=ns, registry=r, buckets=_FUEL_BUCKETS)
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

        # Cluster (new).
        self.store_up = Gauge("store_up", "1 while the configuration store is reachable.", namespace=ns, registry=r)

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, memoized: the event path takes a few labelled children per
        event and plugin reaction, and prometheus-client's ``labels()`` validates and locks each time."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def render(self) -> bytes:
        """The text exposition format, for ``GET /v1/metrics``."""
        return generate_latest(self.registry)
