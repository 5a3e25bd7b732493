"""The per-reaction plugin series: counted per thread without locks, merged at scrape into ordinary
Prometheus counter and histogram families (checked by parsing the exposition text)."""

from __future__ import annotations

import threading

from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Metrics

RECEIVED = "eventgateway.event.received"


def scrape(metrics: Metrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def test_counts_from_every_thread_are_merged() -> None:
    metrics = Metrics()
    stats = metrics.plugin_reactions
    per_thread = 2500

    def work() -> None:
        for _ in range(per_thread):
            stats.record("guard", RECEIVED, "async", "continue", seconds=0.00002, fuel=5000)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(per_thread):
        stats.record("guard", RECEIVED, "sync", "continue", seconds=0.00002, fuel=5000)
    stats.record("guard", RECEIVED, "sync", "reject", seconds=0.3, fuel=2_000_000)
    for thread in threads:
        thread.join()

    samples = scrape(metrics)
    reactions = samples["eventgateway_plugin_reactions_total"]
    assert reactions[labels(plugin="guard", event_type=RECEIVED, mode="async", outcome="continue")] == 4 * per_thread
    assert reactions[labels(plugin="guard", event_type=RECEIVED, mode="sync", outcome="continue")] == per_thread
    assert reactions[labels(plugin="guard", event_type=RECEIVED, mode="sync", outcome="reject")] == 1

    sync = {"plugin": "guard", "event_type": RECEIVED, "mode": "sync"}
    seconds = samples["eventgateway_plugin_reaction_seconds_bucket"]
    assert seconds[labels(**sync, le="1e-05")] == 0
    assert seconds[labels(**sync, le="2.5e-05")] == per_thread  # 20 µs falls in the 25 µs bucket
    assert seconds[labels(**sync, le="0.25")] == per_thread
    assert seconds[labels(**sync, le="1.0")] == per_thread + 1  # buckets are cumulative
    assert seconds[labels(**sync, le="+Inf")] == per_thread + 1
    assert samples["eventgateway_plugin_reaction_seconds_count"][labels(**sync)] == per_thread + 1
    assert abs(samples["eventgateway_plugin_reaction_seconds_sum"][labels(**sync)] - (per_thread * 0.00002 + 0.3)) < 1e-9

    fuel = samples["eventgateway_plugin_fuel_used_bucket"]
    assert fuel[labels(**sync, le="10000.0")] == per_thread
    assert fuel[labels(**sync, le="1e+07")] == per_thread + 1
    asyn = {"plugin": "guard", "event_type": RECEIVED, "mode": "async"}
    assert samples["eventgateway_plugin_fuel_used_count"][labels(**asyn)] == 4 * per_thread


def test_an_outcome_without_a_run_adds_no_observation() -> None:
    metrics = Metrics()
    metrics.plugin_reactions.record("slow", RECEIVED, "sync", "skipped")
    samples = scrape(metrics)
    assert samples["eventgateway_plugin_reactions_total"][
        labels(plugin="slow", event_type=RECEIVED, mode="sync", outcome="skipped")] == 1
    assert "eventgateway_plugin_reaction_seconds_count" not in samples
    assert metrics.registry.get_sample_value(
        "eventgateway_plugin_reactions_total",
        {"plugin": "slow", "event_type": RECEIVED, "mode": "sync", "outcome": "skipped"}) == 1
