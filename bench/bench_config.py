"""Config API under a large configuration: how long one subscription create takes as a space grows.

A real gateway in this process (Hypercorn serving the Config API on a free port, the SQLite store in a
temporary directory) and an httpx client on the same event loop. For each size (default 20, 300, 1,000 and
5,000 subscriptions in one space; each size its own space, filled through the store, all sync subscriptions
on distinct static paths with the same method and event type, so every one of them is in the group the
conflict check looks at), every sample is one ``POST /v1/spaces/{space}/subscriptions`` of a new sync
subscription, timed from the request to the answer (the Config API answers after its own view has the
write), then deleted again untimed so the size stays put.

Code paths in the same run, interleaved batch by batch: ``incremental`` (the per-space conflict index,
what the gateway runs; on etcd and SQLite a create the view lets pass is one guarded transaction), ``store-first``
(the index too, but the store's state read first, as before the guarded create: on etcd a point read, or the
fingerprint when etcd's revision moved) and ``full`` (the conflict check before issue 16: every subscription
of the space read from the store and put into a fresh path tree; kept callable as the service's fallback).
The ``GET one subscription`` row is the HTTP floor of the same server (one point read).

Run: ``python -m bench.bench_config [--sizes 20,300,1000,5000] [--samples 40] [--rounds 4] [--paths ...]
[--etcd [--foreign-writes]]`` (``--etcd``: the store is a real etcd started here, as ``bench_cluster``
does; ``--foreign-writes``: before each timed create, untimed, one write under another prefix of that etcd,
as another application sharing it would make).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SIZES = (20, 300, 1_000, 5_000)
EVENT_TYPE = "bench.event"
FUNCTION = "bench-fn"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def fill(gateway: Any, space: str, size: int) -> None:
    """``size`` sync subscriptions in ``space`` written straight to the store (the Config API would take
    minutes on the old path), then wait until the gateway's view has them all."""
    from gateway.config.models import EventType, Function, Subscription
    from gateway.store.base import Kind

    store = gateway.store
    await store.create(Kind.EVENT_TYPES, space, EVENT_TYPE, EventType(space=space, name=EVENT_TYPE).to_json())
    function = Function.model_validate({"space": space, "functionId": FUNCTION, "type": "http",
                                        "provider": {"url": "http://127.0.0.1:9/"}})
    await store.create(Kind.FUNCTIONS, space, FUNCTION, function.to_json())
    last = 0
    for i in range(size):
        sub = Subscription.model_validate({"space": space, "type": "sync", "eventType": EVENT_TYPE,
                                           "functionId": FUNCTION, "path": f"/fill/{i}", "method": "POST"})
        last = (await store.create(Kind.SUBSCRIPTIONS, space, sub.subscription_id, sub.to_json())).revision
    await gateway.view.wait_for_revision(last, timeout=120)


def set_path(gateway: Any, name: str) -> None:
    """Select the conflict-check code path of the gateway's config service."""
    gateway.config.incremental_conflicts = name != "full"
    gateway.config.view_first_creates = name == "incremental"


async def run(sizes: list[int], samples: int, rounds: int, paths: list[str], etcd: bool = False,
              foreign_writes: bool = False) -> None:
    import httpx

    from gateway.server import start_gateway
    from gateway.settings import Settings

    server = None
    if etcd:
        from tests.cluster.etcd_server import new_etcd_server
        server = new_etcd_server()
    with tempfile.TemporaryDirectory(prefix="eg-bench-config-") as workdir:
        db = f"etcd://{server.endpoint}" if server else f"sqlite:{Path(workdir) / 'config.db'}"
        settings = Settings(events_port=0, config_port=0, drain_timeout=1.0, data_dir=workdir, db=db, queue="memory")
        running = await start_gateway(settings, close_grace=0)
        gateway = running.gateway
        another_app = None
        if foreign_writes:
            from gateway.store.base import Kind
            from gateway.store.etcd import EtcdStore, parse_etcd_url
            assert server is not None
            another_app = EtcdStore(parse_etcd_url(f"etcd://{server.endpoint}/bench-another-app/"))
            await another_app.open()
        try:
            started = time.perf_counter()
            for size in sizes:
                await fill(gateway, f"size{size}", size)
            print(f"filled {sum(sizes)} subscriptions in {time.perf_counter() - started:.1f} s")
            results: dict[tuple[int, str], list[float]] = {(s, p): [] for s in sizes for p in paths + ["GET"]}
            serial = 0
            async with httpx.AsyncClient(base_url=running.config_url, timeout=60) as client:
                for round_ in range(rounds):
                    order = paths if round_ % 2 == 0 else list(reversed(paths))
                    for size in sizes:
                        base = f"/v1/spaces/size{size}/subscriptions"
                        for name in order:
                            set_path(gateway, name)
                            for _ in range(samples // rounds):
                                serial += 1
                                body = {"type": "sync", "eventType": EVENT_TYPE, "functionId": FUNCTION,
                                        "path": f"/new/{serial}", "method": "POST"}
                                if another_app is not None:
                                    await another_app.create(Kind.EVENT_TYPES, "x", f"x{serial}", {"n": serial})
                                t0 = time.perf_counter()
                                answer = await client.post(base, json=body)
                                results[(size, name)].append(time.perf_counter() - t0)
                                assert answer.status_code == 201, answer.text
                                sid = answer.json()["subscriptionId"]
                                t0 = time.perf_counter()
                                got = await client.get(f"{base}/{sid}")
                                results[(size, "GET")].append(time.perf_counter() - t0)
                                assert got.status_code == 200
                                deleted = await client.delete(f"{base}/{sid}")
                                assert deleted.status_code == 204, deleted.text
            set_path(gateway, "incremental")
        finally:
            if another_app is not None:
                await another_app.close()
            await running.stop()
            if server is not None:
                from tests.cluster.etcd_server import remove_etcd_server
                remove_etcd_server(server)

    load = os.getloadavg()[0]
    print(f"subscription create through the Config API ({'etcd' if etcd else 'SQLite'} store, {samples} samples per cell, {rounds} "
          f"interleaved rounds, {os.cpu_count()} CPUs, load average {load:.1f} at the end)")
    print()
    print("| subscriptions in the space | path | median | p90 | max | vs first size |")
    print("|---:|---|---:|---:|---:|---:|")
    for name in paths + ["GET"]:
        first = statistics.median(results[(sizes[0], name)])
        for size in sizes:
            values = results[(size, name)]
            median = statistics.median(values)
            label = {"incremental": "create (incremental check)",
                     "store-first": "create (incremental, store read first: before the guard)",
                     "full": "create (full re-check, old path)",
                     "GET": "GET one subscription (HTTP floor)"}[name]
            print(f"| {size:,} | {label} | {median * 1000:.2f} ms | {percentile(values, 0.9) * 1000:.2f} ms | "
                  f"{max(values) * 1000:.2f} ms | {median / first:.2f}x |")
    for baseline in ("store-first", "full"):
        if baseline in paths and "incremental" in paths:
            print()
            for size in sizes:
                new = statistics.median(results[(size, "incremental")])
                old = statistics.median(results[(size, baseline)])
                print(f"{size:>6,} subscriptions: incremental {new * 1000:.2f} ms vs {baseline} {old * 1000:.2f} ms "
                      f"({old / new:.2f}x)")


def main(argv: Sequence[str] = ()) -> None:
    """``python -m bench`` calls this with no arguments: the defaults."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--samples", type=int, default=40, help="creates per size and path (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--paths", default="incremental,full",
                        help="code paths, comma-separated: incremental, store-first, full (default %(default)s)")
    parser.add_argument("--etcd", action="store_true", help="a real etcd started here instead of SQLite")
    parser.add_argument("--foreign-writes", action="store_true",
                        help="with --etcd: one write under another prefix before each timed create")
    args = parser.parse_args(list(argv))
    if args.foreign_writes and not args.etcd:
        parser.error("--foreign-writes needs --etcd")
    asyncio.run(run([int(s) for s in args.sizes.split(",")], args.samples, args.rounds, args.paths.split(","),
                    args.etcd, args.foreign_writes))


if __name__ == "__main__":
    main(sys.argv[1:])
