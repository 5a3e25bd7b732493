"""What the observation hooks cost per event, in-process, by tracing configuration (issue 15/16).

One event as the pipeline observes it with one sync ``event.received`` plugin and a sync http function (the
bench_gateway "1 sync event.received plugin" scenario): the request observation, the received stage with
the plugin's verdict, routing, the stamp of the distributed-tracing extension, the function call with its
``traceparent``, the finish. Only the hooks run (no HTTP, no plugin, no function): the numbers are the
observation's own cost on the event loop. Configurations: tracing off (the hooks find no observation),
``always_off``, ``parentbased_always_off`` with an incoming unsampled ``traceparent``, and ``always_on``
(every span made, encoded and queued; exported to bench_gateway's OTLP sink, a Hypercorn process answering
200 to every export).

Interleaved rounds, the best round per configuration; per event µs, the ratio to tracing off and the
young-generation garbage collections per 1,000 events. Run:
``flock /tmp/bench.lock python3 -m bench.bench_observation [--events N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import gc
import socket
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from bench.workload import stop_process
from gateway.observe.observation import Observer, current
from gateway.observe.tracing import configure_tracing

REPO = Path(__file__).resolve().parent.parent
EVENT = {"specversion": "1.0", "type": "bench.event", "source": "/bench", "id": "1", "data": {"n": 1}}
UNSAMPLED_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_sink() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    sink = subprocess.Popen([sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                             "bench.bench_gateway:otlp_sink"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            time.sleep(0.1)
    return sink, f"http://127.0.0.1:{port}"


def one_event(observer: Observer, headers: dict[str, str]) -> None:
    """The hooks of one event, as gateway/pipeline calls them (pipeline.py, emitter.py, stages.py, invoke.py)."""
    if not observer.active():
        # tracing off, nobody on the tail: each hook of the path asks for the observation and finds none
        for _ in range(6):
            if current() is not None:
                raise AssertionError
        return
    observed = observer.request("POST", "/bench", "default", headers.get)
    observed.parsed([EVENT], False)
    obs = current()
    assert obs is not None
    stage = obs.begin_stage("eventgateway.event.received")
    obs.plugin("guard", "sync", "continue", time.time_ns(), fuel=1234)
    obs.end_stage(stage, rejected=None, rewritten=False)
    obs = current()
    assert obs is not None
    started, started_ns = time.perf_counter(), time.time_ns()
    obs.stage_done("eventgateway.routing", started, started_ns, note="1 sync, 0 async subscribers",
                   attributes={"eventgateway.subscribers.sync": 1, "eventgateway.subscribers.async": 0})
    obs.stamp(EVENT)
    obs = current()
    assert obs is not None
    call = obs.begin_call("bench", "http", "sync", None)
    obs.call_status = 200
    obs.end_call(call, True)
    observed.finish(200)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per configuration per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    sink, endpoint = _start_sink()
    batching = {"OTEL_BSP_SCHEDULE_DELAY": "200"}

    def traced(sampler: str) -> Observer:
        tracing = configure_tracing(endpoint, {**batching, "OTEL_TRACES_SAMPLER": sampler})
        assert tracing is not None
        return Observer(None, tracing)

    configurations: list[tuple[str, Observer, dict[str, str]]] = [
        ("tracing off", Observer(), {}),
        ("always_off", traced("always_off"), {}),
        ("parentbased_always_off, unsampled traceparent", traced("parentbased_always_off"),
         {"traceparent": UNSAMPLED_PARENT}),
        ("always_on (5 spans, encoded, queued)", traced("always_on"), {}),
    ]
    best = {name: float("inf") for name, _, _ in configurations}
    collections = {name: 0 for name, _, _ in configurations}
    counted: list[int] = []

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info.get("generation") == 0:
            counted.append(1)

    gc.callbacks.append(on_gc)
    try:
        for _, observer, headers in configurations:  # warm-up
            for _ in range(1000):
                one_event(observer, headers)
        for round_index in range(args.rounds):
            order = configurations[round_index % len(configurations):] + configurations[:round_index % len(configurations)]
            for name, observer, headers in order:
                run: Callable[[Observer, dict[str, str]], None] = one_event
                counted.clear()
                started = time.perf_counter()
                for _ in range(args.events):
                    run(observer, headers)
                seconds = time.perf_counter() - started
                best[name] = min(best[name], seconds / args.events)
                collections[name] += len(counted)
    finally:
        gc.callbacks.remove(on_gc)
        for _, observer, _ in configurations:
            if observer.tracing is not None:
                observer.tracing.shutdown()
        stop_process(sink)
    base = best["tracing off"]
    total = args.events * args.rounds
    print(f"{args.events} events x {args.rounds} interleaved rounds per configuration; best round")
    print("| configuration | µs per event | vs tracing off (extra µs) | young GCs per 1,000 events |")
    print("|---|---:|---:|---:|")
    for name, _, _ in configurations:
        print(f"| {name} | {best[name] * 1e6:.2f} | +{(best[name] - base) * 1e6:.2f} | "
              f"{collections[name] * 1000 / total:.1f} |")


if __name__ == "__main__":
    main()
