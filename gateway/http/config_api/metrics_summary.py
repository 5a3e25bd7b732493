"""``GET /v1/metrics/summary``: the few Prometheus figures the web console charts, as JSON.

The console polls it (every 2 s) and charts the differences between two readings: events/s, errors/s, the
p99 latency of the events finished in between (from the histogram's buckets) and each plugin's p99 reaction
time. Everything is cumulative since the process started, like the Prometheus series it is read from
(``/v1/metrics``), so any client can compute rates the same way. Read from this process's registry (each
process of ``--processes N`` has its own), off the event loop.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from quart import Blueprint, Response, jsonify

from gateway.metrics import Metrics

from . import openapi as _openapi
from ._common import gateway

__all__ = ["blueprint", "summary"]

blueprint = Blueprint("metrics_summary", __name__, url_prefix="/v1")

_SYSTEM_PREFIX = "eventgateway."


def _histogram() -> dict[str, Any]:
    return {"buckets": {}, "count": 0.0, "sum": 0.0}


def _add_bucket(histogram: dict[str, Any], le: str, value: float) -> None:
    histogram["buckets"][le] = histogram["buckets"].get(le, 0.0) + value


def _finish(histogram: dict[str, Any]) -> dict[str, Any]:
    """Buckets as ``[[upper bound, cumulative count], ...]`` in order (``null`` for +Inf: JSON has no infinity)."""
    rows = sorted(((float(le), count) for le, count in histogram["buckets"].items()), key=lambda row: row[0])
    return {"buckets": [[None if math.isinf(le) else le, count] for le, count in rows],
            "count": histogram["count"], "sum": histogram["sum"]}


def summary(metrics: Metrics) -> dict[str, Any]:
    """The console's figures from ``metrics``' registry (cumulative)."""
    received = processed = 0.0
    success = failure = 0.0
    faults = rejections = 0.0
    latency = _histogram()
    plugins: dict[str, dict[str, Any]] = {}

    def plugin(name: str) -> dict[str, Any]:
        found = plugins.get(name)
        if found is None:
            found = plugins[name] = {"reactions": 0.0, "faults": 0.0, "rejections": 0.0, "seconds": _histogram(),
                                     "fuel": {"count": 0.0, "sum": 0.0}}
        return found

    for family in metrics.registry.collect():
        name = family.name
        for sample in family.samples:
            labels, value = sample.labels, sample.value
            if name == "eventgateway_events_received" and sample.name.endswith("_total"):
                if not labels.get("type", "").startswith(_SYSTEM_PREFIX):
                    received += value
            elif name == "eventgateway_events_processed" and sample.name.endswith("_total"):
                if not labels.get("type", "").startswith(_SYSTEM_PREFIX):
                    processed += value
            elif name == "eventgateway_function_invocations" and sample.name.endswith("_total"):
                if labels.get("outcome") == "success":
                    success += value
                else:
                    failure += value
            elif name == "eventgateway_events_custom_processing_seconds":
                if sample.name.endswith("_bucket"):
                    _add_bucket(latency, labels["le"], value)
                elif sample.name.endswith("_count"):
                    latency["count"] += value
                elif sample.name.endswith("_sum"):
                    latency["sum"] += value
            elif name == "eventgateway_plugin_faults" and sample.name.endswith("_total"):
                faults += value
                plugin(labels.get("plugin", ""))["faults"] += value
            elif name == "eventgateway_plugin_reactions" and sample.name.endswith("_total"):
                row = plugin(labels.get("plugin", ""))
                row["reactions"] += value
                if labels.get("outcome") == "reject":
                    rejections += value
                    row["rejections"] += value
            elif name == "eventgateway_plugin_reaction_seconds":
                seconds = plugin(labels.get("plugin", ""))["seconds"]
                if sample.name.endswith("_bucket"):
                    _add_bucket(seconds, labels["le"], value)
                elif sample.name.endswith("_count"):
                    seconds["count"] += value
                elif sample.name.endswith("_sum"):
                    seconds["sum"] += value
            elif name == "eventgateway_plugin_fuel_used":
                fuel = plugin(labels.get("plugin", ""))["fuel"]
                if sample.name.endswith("_count"):
                    fuel["count"] += value
                elif sample.name.endswith("_sum"):
                    fuel["sum"] += value
    return {
        "time": time.time(),
        "events": {"received": received, "processed": processed},
        "functions": {"success": success, "failure": failure},
        "pluginFaults": faults,
        "pluginRejections": rejections,
        "latencySeconds": _finish(latency),
        "plugins": {name: {**row, "seconds": _finish(row["seconds"])} for name, row in sorted(plugins.items())},
    }


@blueprint.get("/metrics/summary")
async def metrics_summary() -> Response:
    # Collecting walks every series: off the event loop, as /v1/metrics does.
    return jsonify(await asyncio.to_thread(summary, gateway().metrics))


def _openapi_paths() -> dict[str, dict[str, Any]]:
    histogram = {"type": "object", "properties": {
        "buckets": {"type": "array", "description": "[upper bound in seconds (null: +Inf), cumulative count]",
                    "items": {"type": "array"}},
        "count": {"type": "number"}, "sum": {"type": "number"}}}
    schema = {"type": "object", "properties": {
        "time": {"type": "number", "description": "Unix time of the reading"},
        "events": {"type": "object", "properties": {"received": {"type": "number"}, "processed": {"type": "number"}}},
        "functions": {"type": "object", "properties": {"success": {"type": "number"}, "failure": {"type": "number"}}},
        "pluginFaults": {"type": "number"}, "pluginRejections": {"type": "number"},
        "latencySeconds": histogram,
        "plugins": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "reactions": {"type": "number"}, "faults": {"type": "number"}, "rejections": {"type": "number"},
            "seconds": histogram, "fuel": {"type": "object", "description": "fuel used by its reactions",
                                           "properties": {"count": {"type": "number"}, "sum": {"type": "number"}}}}}}}}
    return {"/v1/metrics/summary": {"get": {
        "summary": "The web console's figures from /v1/metrics as JSON (cumulative since start)",
        "tags": ["Status"],
        "responses": {"200": {"description": "counters and histograms",
                              "content": {"application/json": {"schema": schema}}}}}}}


_openapi.EXTRA_PATHS.update(_openapi_paths())
