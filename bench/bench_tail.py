"""What a live tail client costs `TailHub.publish`, per record: a client that keeps up against one that
stalled (its buffer of `BUFFER` records full, so every record is dropped for it before any work).

In-process, no server: the hub and its subscriptions as the Config API's tail endpoint uses them. Rows,
each the median over ``--rounds`` interleaved rounds of ``--records`` publishes (wall time per publish):

- no client: the publish with nobody listening (the pipeline does not even build records then);
- one reading client: its buffer drained every 100 records (the encode + buffer append is paid);
- one stalled client: its buffer full from the start (a counter increment per record);
- one reading + one stalled client.

Ratios are against the reading client in the same round. This is where the speed claim of the old test
"a stalled client does not slow publish" (median < 20 µs, p99 < 200 µs per publish) is measured now.

Run: ``python -m bench.bench_tail [--records N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

from gateway.observe.record import CallRecord, EventRecord, PluginVerdict, StageRecord
from gateway.observe.tail import BUFFER, Subscription, TailHub


def _record(n: int) -> EventRecord:
    stage = StageRecord("eventgateway.event.received", 0.05, [
        PluginVerdict("guard", "sync", "continue", 0.012, fuel=1234, message="m" * 400)])
    return EventRecord(id=f"ev-{n}", type="user.created", space="default", source="/bench", status=202,
                       duration_ms=1.5, stages=[stage], calls=[CallRecord("hello", "http", "async", True, 3.2,
                                                                          status=200)])


def _drain(client: Subscription) -> None:
    while client._take() is not None:
        pass


def _scenario(name: str, records: list[EventRecord]) -> float:
    """Seconds per publish of ``records`` for the clients ``name`` describes."""
    hub = TailHub()
    reading: list[Subscription] = []
    if "reading" in name:
        reading.append(hub.subscribe())
    if "stalled" in name:
        stalled = hub.subscribe()
        for record in records[:BUFFER]:  # fill its buffer (and the reading client's, drained below)
            hub.publish(record)
        assert stalled._records == BUFFER
        for client in reading:
            _drain(client)
    spent = 0.0
    publish = hub.publish
    for start in range(0, len(records), 100):
        batch = records[start:start + 100]
        began = time.perf_counter()
        for record in batch:
            publish(record)
        spent += time.perf_counter() - began
        for client in reading:
            _drain(client)
    return spent / len(records)


SCENARIOS: dict[str, Callable[[list[EventRecord]], float]] = {
    name: functools.partial(_scenario, name)
    for name in ("no client", "one reading client", "one stalled client", "one reading + one stalled client")
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    records = [_record(n) for n in range(args.records)]
    for run in SCENARIOS.values():  # warm-up
        run(records[:2000])
    results: dict[str, list[float]] = {name: [] for name in SCENARIOS}
    ratios: dict[str, list[float]] = {name: [] for name in SCENARIOS}
    for _ in range(args.rounds):
        this_round = {name: run(records) for name, run in SCENARIOS.items()}
        for name, seconds in this_round.items():
            results[name].append(seconds)
            ratios[name].append(seconds / this_round["one reading client"])
    print(f"{args.records} publishes x {args.rounds} interleaved rounds; median per publish, and its ratio to "
          f"the reading client's in the same round")
    print(f"{'clients':36s} {'us/publish':>10s} {'vs reading':>10s}")
    for name in SCENARIOS:
        print(f"{name:36s} {statistics.median(results[name]) * 1e6:10.2f} {statistics.median(ratios[name]):9.2f}x")


if __name__ == "__main__":
    main()
