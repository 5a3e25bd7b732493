"""Cluster propagation delay on loopback: how long a configuration change takes to reach other gateways.

Two measurements, in the same run, against a real etcd started here (temporary data, free ports):

- ``etcd watch`` (the baseline): a write through one EtcdStore connection until the change arrives on the
  watch of another connection. This is the floor any gateway can reach: etcd's commit plus one watch hop.
- ``gateway -> gateway``: three ``python -m gateway serve --db etcd://...`` processes. A sync subscription
  on a new path is created through gateway A's Config API; for each gateway the clock stops when its
  Events API routes an event on that path to the function (B and C are polled concurrently from before
  the write; A right after its write is acknowledged). That is what a user sees: the write returned on A,
  and B serves the new route. The time taken is the moment the first routed probe was sent; the probe
  before it, sent one poll (2 ms plus one unrouted round trip) earlier, was not routed.

With ``--subscriptions N`` the gateways' space already holds N sync subscriptions (same method and event
type as the measured ones, written straight to etcd before the gateways start), so every measured create is
checked against N others and every gateway routes it beside N others (issue 16: p99 under 50 ms at 5,000).

Run: ``python -m bench.bench_cluster [--samples N] [--subscriptions N]`` (needs ``etcd``: ``just
toolchains``). Prints p50/p99 and the ratio of each to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from gateway.store.base import Kind
from gateway.store.etcd import EtcdStore, parse_etcd_url
from tests.cluster.etcd_server import new_etcd_server, remove_etcd_server

REPO_ROOT = Path(__file__).resolve().parents[1]

POLL_INTERVAL = 0.002
"""Seconds between two probes of one gateway: finer polling would load the gateways it measures."""


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def watch_delay(endpoint: str, samples: int) -> list[float]:
    """Seconds from the start of a write on one connection to its arrival on another's watch."""
    writer = EtcdStore(parse_etcd_url(f"etcd://{endpoint}/bench-watch/"))
    reader = EtcdStore(parse_etcd_url(f"etcd://{endpoint}/bench-watch/"))
    await writer.open()
    await reader.open()
    watch = reader.watch((await reader.snapshot()).revision)
    delays: list[float] = []
    try:
        for i in range(samples):
            started = time.perf_counter()
            await writer.create(Kind.EVENT_TYPES, "default", f"e{i}", {"name": f"e{i}"})
            change = await asyncio.wait_for(anext(watch), 5)
            delays.append(time.perf_counter() - started)
            assert change.id == f"e{i}"
    finally:
        await watch.aclose()
        await writer.close()
        await reader.close()
    return delays


async def prefill(endpoint: str, count: int) -> None:
    """``count`` sync subscriptions of the bench's function in the gateways' space, written to etcd directly
    (50 at a time), with the event type and function they need."""
    from gateway.config.models import Subscription
    from tests.cluster.gateways import EVENT_TYPE

    store = EtcdStore(parse_etcd_url(f"etcd://{endpoint}"))
    await store.open()
    try:
        await store.create(Kind.EVENT_TYPES, "default", EVENT_TYPE, {"space": "default", "name": EVENT_TYPE})
        subs = [Subscription.model_validate({"space": "default", "type": "sync", "eventType": EVENT_TYPE,
                                             "functionId": "bench", "path": f"/prefill/{i}", "method": "POST"})
                for i in range(count)]
        for start in range(0, count, 50):
            await asyncio.gather(*(store.create(Kind.SUBSCRIPTIONS, "default", sub.subscription_id, sub.to_json())
                                   for sub in subs[start:start + 50]))
    finally:
        await store.close()


async def gateway_delay(endpoint: str, samples: int, workdir: Path,
                        poll_interval: float = POLL_INTERVAL, prefilled: int = 0) -> dict[str, list[float]]:
    """Seconds from a subscription write through gateway A to its route serving on A, B and C."""
    import httpx
    from tests.cluster.gateways import GatewayNode, function_server, start_cluster

    delays: dict[str, list[float]] = {"write acknowledged by A": [], "A (same gateway)": [], "B": [], "C": [],
                                      "B, after A's ack": [], "C, after A's ack": []}
    async with function_server() as function:
        gateways = await start_cluster(f"etcd://{endpoint}", 3, workdir)
        try:
            a, b, c = gateways
            async with httpx.AsyncClient(timeout=5) as client:
                if prefilled:
                    # The prefilled subscriptions name the function before it exists: create it now.
                    await a.config(client, "POST", "/functions", {"functionId": "bench", "type": "http",
                                                                  "provider": {"url": function.url("bench")}})
                else:
                    await a.setup_function(client, "bench", function.url("bench"))

                async def routed(name: str, gateway: GatewayNode, path: str, started: float) -> None:
                    # The clock stops when the first probe that gets routed was *sent*: its answer then
                    # includes a whole function call, which says nothing about propagation. The previous
                    # probe, sent at most one poll earlier, was not routed.
                    while True:
                        sent = time.perf_counter()
                        if await gateway.routes(client, path):
                            break
                        await asyncio.sleep(poll_interval)
                    delays[name].append(sent - started)

                for i in range(samples):
                    path = f"/bench/{i}"
                    started = time.perf_counter()
                    # B and C poll from before the write, each on its own, so neither waits for the other.
                    pollers = [asyncio.create_task(routed(name, gateway, path, started))
                               for name, gateway in (("B", b), ("C", c))]
                    await a.subscribe(client, "bench", path)
                    delays["write acknowledged by A"].append(time.perf_counter() - started)
                    await routed("A (same gateway)", a, path, started)
                    await asyncio.wait_for(asyncio.gather(*pollers), 10)
                    acked = delays["write acknowledged by A"][-1]
                    for name in ("B", "C"):
                        # Negative when B already served the route before A's answer reached the client.
                        delays[f"{name}, after A's ack"].append(delays[name][-1] - acked)
        finally:
            for gateway in gateways:
                gateway.stop()
    return delays


def report(name: str, samples: list[float], baseline: float) -> str:
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    return (f"{name:<36} n={len(samples):<4} p50={p50 * 1000:7.2f} ms  p99={p99 * 1000:7.2f} ms  "
            f"max={max(samples) * 1000:7.2f} ms  p50/baseline={p50 / baseline:5.1f}x")


async def main(samples: int, gateways: bool, poll_interval: float = POLL_INTERVAL, subscriptions: int = 0) -> None:
    server = new_etcd_server()
    try:
        if subscriptions and gateways:
            started = time.perf_counter()
            await prefill(server.endpoint, subscriptions)
            print(f"prefilled {subscriptions} subscriptions in {time.perf_counter() - started:.1f} s")
        watch = await watch_delay(server.endpoint, samples)
        baseline = statistics.median(watch)
        load = os.getloadavg()[0]
        print(f"cluster propagation on loopback (etcd {server.endpoint}, {samples} samples each, "
              f"{os.cpu_count()} CPUs, load average {load:.1f} at start, probes every "
              f"{poll_interval * 1000:g} ms, {subscriptions} other subscriptions in the space)")
        print(report("etcd watch (baseline)", watch, baseline))
        if gateways:
            with tempfile.TemporaryDirectory(prefix="eg-bench-cluster-") as workdir:
                measured = await gateway_delay(server.endpoint, samples, Path(workdir), poll_interval, subscriptions)
                for name, delays in measured.items():
                    print(report(f"gateway A -> {name}", delays, baseline))
    finally:
        remove_etcd_server(server)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--no-gateways", action="store_true", help="only the etcd watch baseline")
    parser.add_argument("--poll-interval", type=float, default=POLL_INTERVAL * 1000, metavar="MS",
                        help="milliseconds between two probes of one gateway (default %(default)g); a probe "
                             "is an HTTP request, so finer polling loads the gateways being measured")
    parser.add_argument("--subscriptions", type=int, default=0, metavar="N",
                        help="sync subscriptions already in the space when the measured creates start (default 0)")
    args = parser.parse_args()
    asyncio.run(main(args.samples, not args.no_gateways, args.poll_interval / 1000, args.subscriptions))
