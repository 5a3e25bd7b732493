"""Events API throughput and latency: no plugin vs one sync ``event.received`` plugin vs three plugins on
every stage, in one run, against the same server configuration, with a second no-plugin gateway as a control.

Each scenario is a ``python -m gateway serve`` process (memory store, the same flags; only ``--plugin``
differs) with one http function behind a sync subscription configured through the Config API. They
run side by side and are loaded in interleaved rounds (``--concurrency`` clients sending CloudEvents 1.0
events), so a shared machine's changing load falls on all of them alike. Every request goes
through the whole event path: parse, ``event.received``, routing, ``function.invoking``, the function
call (a minimal ASGI app in its own process), ``function.invoked``, the sync response. Results are
reported as ratios to the no-plugin baseline measured in the same run; the control (a second, identical
no-plugin gateway) shows how far apart two identical processes land, i.e. the noise floor of the ratios.
Absolute numbers depend on the machine and are only comparable within one run.

Tracing (issue 15): one more gateway runs the one-plugin scenario with traces on (``--otel-endpoint`` to an
OTLP/HTTP sink in its own process that answers 200 to every export, ``OTEL_TRACES_SAMPLER=always_on``: every
event sampled); its row is compared with the same scenario untraced. ``--sampler-off`` adds that scenario with
``OTEL_TRACES_SAMPLER=always_off`` (traces configured, none sampled: the trace context only propagated), from
this tree and, with ``--compare-tree``, from that one too (issue 16). ``--compare-tree DIR`` adds a no-plugin
gateway and a three-plugin one run from another source tree (e.g. ``git archive`` of the commit before a change,
extracted to DIR): what a change costs the event path, or saves the plugins, measured side by side.

The load comes from httpx clients in this process by default: they share the machine's cores with the gateways
and the function, which dilutes every ratio (a gateway twice as dear per event does not lose half its
throughput when the client is the bottleneck). ``--client wrk`` loads with wrk instead (C, two threads): the
gateway is then the bottleneck and the ratios are close to those of the gateway's CPU per event.

    python -m bench.bench_gateway [--duration 6] [--rounds 6] [--concurrency 8] [--client httpx|wrk] [--compare-tree DIR] [--only WORDS]
        [--sampler-off]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.workload import cloudevents_wrk_script, read_body, run_wrk, stop_process, sync_function_app
import wasmtime

REPO = Path(__file__).resolve().parent.parent
KIT = REPO / "wasm_abi" / "pdk" / "wat" / "kit.wat"
GUARD = REPO / "plugin_examples" / "wat" / "guard.wat"
#: The scenario of --sampler-off: traces configured, the sampler samples nothing.
SAMPLER_OFF = "1 sync event.received plugin, sampler always_off"
STAGES = ("eventgateway.event.received", "eventgateway.function.invoking", "eventgateway.function.invoked",
          "eventgateway.function.invocationFailed")


function_app = sync_function_app  # served by Hypercorn as bench.bench_gateway:function_app


async def otlp_sink(scope, receive, send) -> None:
    """The traced gateway's collector: takes every OTLP/HTTP export and answers 200 (an empty
    ExportTraceServiceResponse), keeping nothing."""
    if scope["type"] != "http":
        return
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/x-protobuf"), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


def _hex(data: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in data)


def stage_plugin(stages: tuple[str, ...] = STAGES) -> bytes:
    """A plugin subscribed (sync) to ``stages`` (all four system events by default) that reads the incoming
    event's type on each and continues: the cost of a plugin that looks at every stage and lets everything
    through."""
    segments, subscribe, at = [], [], 2048
    for event_type in stages:
        segments.append(f'(data (i32.const {at}) "{_hex(event_type.encode())}")')
        subscribe.append(f"(call $w_subscription (i32.const {at}) (i32.const {len(event_type)}) (i32.const 0))")
        at += 128
    segments.append(f'(data (i32.const 3968) "{_hex(b"never.this")}")')
    body = "\n".join(segments) + f"""
  (func $on_subscriptions (result i64)
    (call $w_begin) (call $w_array (i32.const {len(stages)})) {' '.join(subscribe)} (call $w_end))
  (func $on_init (param $config i32) (result i64) (global.get $CONTINUE))
  (func $on_react (param $event i32) (result i64)
    (if (call $str_eq (call $ce_type (call $incoming (local.get $event))) (i32.const 3968) (i32.const 10))
      (then unreachable))
    (global.get $CONTINUE))
"""
    return bytes(wasmtime.wat2wasm("(module\n" + KIT.read_text() + "\n" + body + "\n)"))


@dataclass
class Result:
    name: str
    requests: int
    errors: dict[int, int]
    seconds: float
    latencies: list[float]
    #: CPU seconds (user + system, all threads) the gateway process spent while measured.
    cpu: float = 0.0
    #: With ``--client wrk``: each round's p50 and p99 in ms (wrk reports percentiles, not latencies).
    wrk_percentiles: list[tuple[float, float]] | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        if self.wrk_percentiles:  # wrk: the median of the rounds' p50, the worst round's p99
            if p == 50:
                return sorted(r[0] for r in self.wrk_percentiles)[len(self.wrk_percentiles) // 2]
            return max(r[1] for r in self.wrk_percentiles)
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000 if ordered else float("nan")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gateway:
    def __init__(self, plugins: list[Path], log: Path, *, flags: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, tree: Path = REPO) -> None:
        self.log_path = log
        events_port, config_port = _free_port(), _free_port()
        self.events_url = f"http://127.0.0.1:{events_port}"
        self.config_url = f"http://127.0.0.1:{config_port}"
        command = [sys.executable, "-m", "gateway", "serve", "--db", "memory", "--events-port", str(events_port),
                   "--config-port", str(config_port), "--log-level", "warn", "--workers", "100"]
        for path in plugins:
            command += ["--plugin", str(path)]
        command += flags
        self._log = log.open("w")
        # One hash seed for every gateway: string hashing (and so dict layout) differs between processes
        # otherwise, one source of the per-process differences the control row below shows. No OTEL_*
        # variable of the caller's reaches a gateway: only the traced scenario traces.
        environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        environment.update({"PYTHONHASHSEED": "0", **(env or {})})
        if tree != REPO:
            environment["PYTHONPATH"] = str(tree)
        self.process = subprocess.Popen(command, cwd=tree, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=environment)

    async def ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited at start-up:\n{self.log_path.read_text()}")
            try:
                async with httpx.AsyncClient() as client:
                    if (await client.get(f"{self.config_url}/v1/status", timeout=1)).status_code == 200:
                        return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"gateway not ready after {timeout}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


async def _load(url: str, concurrency: int, duration: float,
                warmup: float) -> tuple[int, dict[int, int], list[float], float]:
    event = {"specversion": "1.0", "type": "bench.event", "source": "/bench", "id": "0",
             "datacontenttype": "application/json", "data": {"n": 1, "text": "x" * 64}}
    headers = {"content-type": "application/cloudevents+json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    counts = {"ok": 0}
    errors: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + duration

        async def worker(index: int) -> None:
            n = 0
            while True:
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                n += 1
                body = json.dumps(dict(event, id=f"{index}-{n}"))
                response = await client.post("/bench", content=body, headers=headers)
                done = time.perf_counter()
                if sent >= measure_from:
                    if response.status_code == 200:
                        counts["ok"] += 1
                        latencies.append(done - sent)
                    else:
                        errors[response.status_code] = errors.get(response.status_code, 0) + 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return counts["ok"], errors, latencies, duration


async def _configure(gateway: Gateway, function_url: str) -> None:
    await gateway.ready()
    async with httpx.AsyncClient(base_url=gateway.config_url) as config:
        base = "/v1/spaces/default"
        for path, body in ((f"{base}/functions", {"functionId": "bench", "type": "http",
                                                  "provider": {"url": function_url}}),
                           (f"{base}/eventtypes", {"name": "bench.event"}),
                           (f"{base}/subscriptions", {"type": "sync", "eventType": "bench.event",
                                                      "functionId": "bench", "path": "/bench"})):
            response = await config.post(path, json=body)
            response.raise_for_status()


async def run(args: argparse.Namespace) -> list[Result]:
    """All three gateways run side by side (idle ones cost nothing measurable) and are measured in
    interleaved rounds, rotating the order, so the load of a shared machine drifting during the run
    falls on every scenario alike."""
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        workdir = Path(tmp)
        stage = [workdir / f"stage{i}.wasm" for i in range(3)]
        wasm = stage_plugin()
        for path in stage:
            path.write_bytes(wasm)
        port = _free_port()
        function = subprocess.Popen(  # noqa: ASYNC220 - start-up, before anything is measured
            [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "bench.bench_gateway:function_app"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sink_port = _free_port()
        sink = subprocess.Popen(  # noqa: ASYNC220 - start-up, before anything is measured
            [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{sink_port}", "--workers", "1",
             "bench.bench_gateway:otlp_sink"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        traced = (("--otel-endpoint", f"http://127.0.0.1:{sink_port}"), {"OTEL_TRACES_SAMPLER": "always_on"})
        # the example guard is a sync event.received plugin (no rules configured: every event passes)
        # The control is a second gateway identical to the baseline: how far apart two identical
        # processes land in this run is the noise floor every other ratio must be read against.
        scenarios: list[tuple[str, list[Path], tuple[str, ...], dict[str, str], Path]] = [
            ("no plugin", [], (), {}, REPO), ("1 sync event.received plugin", [GUARD], (), {}, REPO),
            ("3 plugins on all stages", stage, (), {}, REPO),
            ("no plugin (control: a 2nd identical process)", [], (), {}, REPO),
            ("1 sync event.received plugin, traced (100 % sampled, OTLP/HTTP)", [GUARD], *traced, REPO)]
        if args.split:  # where the three-plugin cost goes: per stage or per reaction
            received = [workdir / f"received{i}.wasm" for i in range(3)]
            for path in received:
                path.write_bytes(stage_plugin(STAGES[:1]))
            scenarios += [("3 plugins on event.received only (3 reactions, 1 stage)", received, (), {}, REPO),
                          ("1 plugin on all stages (3 reactions, 3 stages)", stage[:1], (), {}, REPO)]
        if args.sampler_off:  # traces configured, none sampled: what the trace context's propagation costs
            sampler_off = (traced[0], {"OTEL_TRACES_SAMPLER": "always_off"})
            scenarios.append((SAMPLER_OFF, [GUARD], *sampler_off, REPO))
            if args.compare_tree is not None:
                scenarios.append((f"{SAMPLER_OFF}, tree {args.compare_tree}", [GUARD], *sampler_off,
                                  Path(args.compare_tree).resolve()))
        if args.compare_tree is not None:
            tree = Path(args.compare_tree).resolve()
            scenarios += [(f"no plugin, tree {args.compare_tree}", [], (), {}, tree),
                          (f"3 plugins on all stages, tree {args.compare_tree}", stage, (), {}, tree)]
        if args.only:  # the baseline stays first: every ratio is against it
            scenarios = [scenarios[0]] + [s for s in scenarios[1:] if any(word in s[0] for word in args.only)]
        gateways = [Gateway(plugins, workdir / f"gateway{i}.log", flags=flags, env=env, tree=tree)
                    for i, (_, plugins, flags, env, tree) in enumerate(scenarios)]
        try:
            function_url = f"http://127.0.0.1:{port}/"
            async with httpx.AsyncClient() as client:
                for _ in range(100):
                    try:
                        await client.post(function_url, timeout=1)
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
            for gateway in gateways:
                await _configure(gateway, function_url)
            results = [Result(name, 0, {}, 0.0, []) for name, *_ in scenarios]
            script = workdir / "events.lua"
            script.write_text(cloudevents_wrk_script("/bench"))
            for gateway in gateways:  # warm-up: connections, caches, plugin instances
                if args.client == "wrk":
                    await asyncio.to_thread(run_wrk, gateway.events_url, args.concurrency, max(args.warmup, 1.0),
                                            "warm", script)
                else:
                    await _load(gateway.events_url, args.concurrency, args.warmup, 0.0)
            slice_seconds = args.duration / args.rounds
            for round_index in range(args.rounds):
                order = list(range(len(scenarios)))
                order = order[round_index % len(order):] + order[:round_index % len(order)]
                for index in order:
                    cpu_before = process_cpu_seconds(gateways[index].process.pid)
                    result = results[index]
                    if args.client == "wrk":  # a C client: the gateway, not the client, is the bottleneck
                        ok, failed, p50, p99 = await asyncio.to_thread(
                            run_wrk, gateways[index].events_url, args.concurrency, slice_seconds,
                            f"r{round_index}", script)
                        errors, latencies, seconds = ({"non-2xx or socket": failed} if failed else {}), [], slice_seconds
                        result.wrk_percentiles = (result.wrk_percentiles or []) + [(p50, p99)]
                    else:
                        ok, errors, latencies, seconds = await _load(
                            gateways[index].events_url, args.concurrency, slice_seconds, 0.0)
                    result.cpu += process_cpu_seconds(gateways[index].process.pid) - cpu_before
                    result.requests += ok
                    result.seconds += seconds
                    result.latencies.extend(latencies)
                    for status, count in errors.items():
                        result.errors[status] = result.errors.get(status, 0) + count
            return results
        finally:
            for gateway in gateways:
                gateway.stop()
            for server in (function, sink):
                server.send_signal(signal.SIGTERM)
                server.wait(10)


def _cpu_per_event(result: Result) -> float:
    return result.cpu / result.requests if result.requests else float("nan")


def _plugin_rows(results: list[Result]) -> list[tuple[Result, Result]]:
    """Each three-plugin row with the no-plugin row of the same tree."""
    by_name = {r.name: r for r in results}
    pairs = []
    for r in results:
        if r.name.startswith("3 plugins on all stages"):
            without = by_name.get(r.name.replace("3 plugins on all stages", "no plugin"))
            if without is not None:
                pairs.append((r, without))
    return pairs


def report(results: list[Result], args: argparse.Namespace) -> str:
    base = results[0]
    client = ("wrk (-t2; p50: median of the rounds', p99: the worst round's)" if args.client == "wrk"
              else "httpx")
    lines = [(f"Events API, sync subscription to an HTTP function; {args.concurrency} concurrent {client} clients; "
              f"{args.duration:g}s measured per scenario in {args.rounds} interleaved rounds after "
              f"{args.warmup:g}s warm-up each; {os.cpu_count()} CPUs"),
             "",
             "| scenario | events/s | vs baseline | p50 ms | p99 ms | p50 vs baseline | gateway CPU per event | "
             "vs baseline | errors (status: count) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        errors = ", ".join(f"{status}: {count}" for status, count in sorted(r.errors.items())) or "none"
        ratio = r.rate / base.rate if base.rate else float("nan")
        p50_ratio = r.percentile(50) / base.percentile(50) if base.latencies or base.wrk_percentiles else float("nan")
        cpu = r.cpu / r.requests if r.requests else float("nan")
        base_cpu = base.cpu / base.requests if base.requests else float("nan")
        lines.append(f"| {r.name} | {r.rate:,.1f} | {ratio:.2f}x | {r.percentile(50):.2f} | "
                     f"{r.percentile(99):.2f} | {p50_ratio:.2f}x | {cpu * 1e3:.2f} ms | {cpu / base_cpu:.2f}x | "
                     f"{errors} |")
    traced = next((r for r in results if r.name.startswith("1 sync event.received plugin, traced")), None)
    untraced = next((r for r in results if r.name == "1 sync event.received plugin"), None)
    plugin_cpu = [(r.name, _cpu_per_event(r) - _cpu_per_event(without)) for r, without in _plugin_rows(results)]
    if plugin_cpu:
        lines += ["", "Plugin CPU per event (the gateway's CPU per event with 3 plugins minus without, same tree): " +
                  "; ".join(f"{name}: {extra * 1e6:.0f} µs" for name, extra in plugin_cpu)]
    if traced is not None and untraced is not None and traced.requests and untraced.requests:
        lines += ["", (f"Tracing on (every event sampled) vs the same scenario untraced: throughput "
                       f"{traced.rate / untraced.rate:.2f}x, p50 {traced.percentile(50) / untraced.percentile(50):.2f}x, "
                       f"gateway CPU per event {(traced.cpu / traced.requests) / (untraced.cpu / untraced.requests):.2f}x")]
    for r in results:
        if r.name.startswith(SAMPLER_OFF) and untraced is not None and r.requests and untraced.requests:
            lines += ["", (f"{r.name} vs untraced: throughput {r.rate / untraced.rate:.2f}x, "
                           f"gateway CPU per event {_cpu_per_event(r) / _cpu_per_event(untraced):.2f}x")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", "6")),
                        help="seconds measured per scenario (split over the rounds)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--compare-tree", metavar="DIR", default=None,
                        help="also run a no-plugin gateway from this source tree (e.g. the commit before a change)")
    parser.add_argument("--only", action="append", metavar="WORDS", default=[],
                        help="run only the scenarios whose name contains WORDS (repeatable; the no-plugin "
                             "baseline always runs), e.g. --only '3 plugins' --only control")
    parser.add_argument("--client", choices=("httpx", "wrk"), default="httpx",
                        help="the load generator: httpx (Python, in this process: it shares the 2 cores with the "
                             "gateway, which dilutes every ratio) or wrk (C: the gateway is the bottleneck)")
    parser.add_argument("--split", action="store_true",
                        help="also run 3 plugins on event.received only and 1 plugin on all stages: how the "
                             "three-plugin cost splits between stages and reactions")
    parser.add_argument("--sampler-off", action="store_true",
                        help="also run the one-plugin scenario with traces configured and OTEL_TRACES_SAMPLER="
                             "always_off (with --compare-tree: from that tree too)")
    args = parser.parse_args(argv if argv is not None else [])
    results = asyncio.run(run(args))
    print(report(results, args))


if __name__ == "__main__":
    main(sys.argv[1:])
