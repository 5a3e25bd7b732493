"""Async delivery queues (issue 14): events/s accepted (202) and delivered with ``--queue memory``, ``sqlite``
and ``nats``, in one run, against the same function server.

Three ``python -m gateway serve`` processes (memory config store, the same flags; only ``--queue`` differs:
``memory``, ``sqlite:<tmp>/queue.db``, ``nats://`` a ``nats-server -js`` started here with its file store in a
temporary directory) each with one http function behind an *async* subscription. They run side by side and
are loaded in interleaved rounds, rotating the order: ``--concurrency`` connections (wrk when it is on PATH
-- Debian package ``wrk`` --, else an httpx client in its own process) send CloudEvents for ``--duration /
--rounds`` seconds; then the round waits until the function server (a minimal ASGI app in its own process
that counts the calls) has received every accepted event. Per queue:

- *accepted/s*: 202 answers per second of load; p50/p99 accept latency (wrk: the median over the rounds of
  each round's percentile; the Python client: over every request);
- *delivered/s*: accepted events / (time from the round's first request to the last event's delivery): the
  rate at which events go all the way through when the queue keeps up, lower when it falls behind;
- gateway CPU per event (user + system, all threads, accept and delivery).

Ratios are to ``memory`` measured in the same run (goals: sqlite >= 0.7x, nats >= 0.5x). Absolute numbers
depend on the machine: wrk, the gateways, nats-server and the function share its CPUs.

    python -m bench.bench_queue [--duration 16] [--rounds 4] [--concurrency 32] [--queues memory,sqlite,nats]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.bench_gateway import REPO, _free_port, process_cpu_seconds
from bench.workload import cloudevents_wrk_script, read_body, run_wrk, stop_process

QUEUES = ("memory", "sqlite", "nats")
GOALS = {"sqlite": 0.7, "nats": 0.5}

_calls = 0


async def function_app(scope, receive, send) -> None:
    """The benchmark's function: counts the calls (``GET /count`` reads the count) and answers 200."""
    global _calls
    if scope["type"] != "http":
        return
    await read_body(receive)
    if scope["method"] == "GET":
        body = str(_calls).encode()
    else:
        _calls += 1
        body = b'{"ok":true}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


WRK_SCRIPT = cloudevents_wrk_script("/")


@dataclass
class Round:
    accepted: int
    refused: int
    seconds: float
    #: Seconds from the first request until the function had every accepted event.
    through: float
    p50: float
    p99: float
    cpu: float
    latencies: list[float] = field(default_factory=list)


@dataclass
class Result:
    queue: str
    rounds: list[Round] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(r.accepted for r in self.rounds)

    @property
    def accept_rate(self) -> float:
        return self.accepted / sum(r.seconds for r in self.rounds)

    @property
    def delivery_rate(self) -> float:
        return self.accepted / sum(r.through for r in self.rounds)

    def percentile(self, p: int) -> float:
        latencies = [x for r in self.rounds for x in r.latencies]
        if latencies:  # the Python client: every request
            latencies.sort()
            return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000
        return statistics.median(r.p50 if p == 50 else r.p99 for r in self.rounds)

    @property
    def cpu_per_event(self) -> float:
        return sum(r.cpu for r in self.rounds) / self.accepted if self.accepted else float("nan")


# -- load ----------------------------------------------------------------------------------------------------


async def python_load(url: str, concurrency: int, seconds: float, prefix: str) -> dict[str, object]:
    """The fallback load generator (run in its own process): one httpx client, ``concurrency`` senders."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    counts = {"accepted": 0, "refused": 0}
    latencies: list[float] = []
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        stop_at = time.perf_counter() + seconds

        async def sender(index: int) -> None:
            n = 0
            while time.perf_counter() < stop_at:
                n += 1
                body = json.dumps({"specversion": "1.0", "type": "bench.event", "source": "/bench",
                                   "id": f"{prefix}-{index}-{n}", "datacontenttype": "application/json",
                                   "data": {"n": n, "text": "x" * 64}})
                sent = time.perf_counter()
                try:
                    response = await client.post(url + "/", content=body,
                                                 headers={"content-type": "application/cloudevents+json"})
                except httpx.HTTPError:
                    counts["refused"] += 1
                    continue
                if response.status_code == 202:
                    counts["accepted"] += 1
                    latencies.append(time.perf_counter() - sent)
                else:
                    counts["refused"] += 1

        await asyncio.gather(*(sender(i) for i in range(concurrency)))
    return {**counts, "latencies": latencies}


def load(url: str, concurrency: int, seconds: float, prefix: str, script: Path | None) -> Round:
    if script is not None:
        accepted, refused, p50, p99 = run_wrk(url, concurrency, seconds, prefix, script)
        return Round(accepted, refused, seconds, 0.0, p50, p99, 0.0)
    out = subprocess.run([sys.executable, "-m", "bench.bench_queue", "--load", url, str(concurrency), str(seconds),
                          prefix], cwd=REPO, capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    return Round(data["accepted"], data["refused"], seconds, 0.0, 0.0, 0.0, 0.0, data["latencies"])


# -- processes -----------------------------------------------------------------------------------------------


class Process:
    def __init__(self, command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        self._log = log.open("w")
        self.process = subprocess.Popen(command, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})})

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


class Gateway(Process):
    def __init__(self, queue: str, queue_url: str, workdir: Path) -> None:
        self.queue = queue
        events_port, config_port = _free_port(), _free_port()
        self.events_url = f"http://127.0.0.1:{events_port}"
        self.config_url = f"http://127.0.0.1:{config_port}"
        super().__init__([sys.executable, "-m", "gateway", "serve", "--db", "memory", "--queue", queue_url,
                          "--events-port", str(events_port), "--config-port", str(config_port),
                          "--data-dir", str(workdir / f"data-{queue}"), "--log-level", "warn", "--workers", "100"],
                         workdir / f"gateway-{queue}.log", env={"PYTHONHASHSEED": "0"})

    async def configure(self, function_url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.config_url) as config:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"gateway {self.queue} exited at start-up:\n{self.log_path.read_text()}")
                try:
                    if (await config.get("/v1/status", timeout=1)).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gateway {self.queue} not ready:\n{self.log_path.read_text()}")
                await asyncio.sleep(0.1)
            base = "/v1/spaces/default"
            for path, body in ((f"{base}/functions", {"functionId": "bench", "type": "http",
                                                      "provider": {"url": function_url}}),
                               (f"{base}/eventtypes", {"name": "bench.event"}),
                               (f"{base}/subscriptions", {"type": "async", "eventType": "bench.event",
                                                          "functionId": "bench"})):
                (await config.post(path, json=body)).raise_for_status()


async def wait_port(port: int, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} does not listen on {port}") from None
            await asyncio.sleep(0.05)


async def calls(client: httpx.AsyncClient, url: str) -> int:
    return int((await client.get(url + "count")).text)


async def run(args: argparse.Namespace) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        workdir = Path(tmp)
        script: Path | None = None
        if shutil.which("wrk") and not args.python_client:
            script = workdir / "events.lua"
            script.write_text(WRK_SCRIPT)
        processes: list[Process] = []
        try:
            port = _free_port()
            processes.append(Process([sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "--workers",
                                      "1", "bench.bench_queue:function_app"], workdir / "function.log"))
            await wait_port(port, "the function server")
            function_url = f"http://127.0.0.1:{port}/"
            gateways = []
            for queue in args.queues:
                if queue == "nats":
                    nats_port = _free_port()
                    nats = shutil.which("nats-server") or "/usr/sbin/nats-server"
                    processes.append(Process([nats, "-js", "-sd", str(workdir / "nats"), "-a", "127.0.0.1",
                                              "-p", str(nats_port)], workdir / "nats.log"))
                    await wait_port(nats_port, "nats-server")
                    url = f"nats://127.0.0.1:{nats_port}"
                else:
                    url = "memory" if queue == "memory" else f"sqlite:{workdir / 'queue.db'}"
                gateway = Gateway(queue, url, workdir)
                processes.append(gateway)
                gateways.append(gateway)
            for gateway in gateways:
                await gateway.configure(function_url)
            results = [Result(g.queue) for g in gateways]
            async with httpx.AsyncClient(timeout=10) as client:
                async def one(index: int, seconds: float, prefix: str) -> Round:
                    gateway = gateways[index]
                    before = await calls(client, function_url)
                    cpu_before = process_cpu_seconds(gateway.process.pid)
                    started = time.monotonic()
                    result = await asyncio.to_thread(load, gateway.events_url, args.concurrency, seconds, prefix,
                                                     script)
                    deadline = time.monotonic() + 300
                    while await calls(client, function_url) - before < result.accepted:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"{gateway.queue}: accepted events not delivered within 300 s")
                        await asyncio.sleep(0.01)
                    result.through = time.monotonic() - started
                    result.cpu = process_cpu_seconds(gateway.process.pid) - cpu_before
                    return result

                for index in range(len(gateways)):  # warm-up
                    await one(index, args.warmup, f"w{index}")
                slice_seconds = args.duration / args.rounds
                for round_index in range(args.rounds):
                    order = list(range(len(gateways)))
                    order = order[round_index % len(order):] + order[:round_index % len(order)]
                    for index in order:
                        results[index].rounds.append(await one(index, slice_seconds, f"r{round_index}q{index}"))
            return results
        finally:
            for process in reversed(processes):
                process.stop()


def report(results: list[Result], args: argparse.Namespace, client: str) -> str:
    base = results[0]
    lines = [(f"Events API, one async subscription to an HTTP function; {args.concurrency} connections ({client}); "
              f"{args.duration:g}s of load per queue in {args.rounds} interleaved rounds after {args.warmup:g}s "
              f"warm-up each, every accepted event delivered before the next round; {os.cpu_count()} CPUs"),
             "",
             "| queue | accepted/s | vs memory | delivered/s | vs memory | goal | accept p50 ms | accept p99 ms | "
             "gateway CPU per event | refused |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in results:
        accept_ratio = r.accept_rate / base.accept_rate
        delivery_ratio = r.delivery_rate / base.delivery_rate
        goal = GOALS.get(r.queue)
        verdict = "" if goal is None else (f">= {goal}x: " + ("met" if min(accept_ratio, delivery_ratio) >= goal
                                                               else "missed"))
        lines.append(f"| {r.queue} | {r.accept_rate:,.0f} | {accept_ratio:.2f}x | {r.delivery_rate:,.0f} | "
                     f"{delivery_ratio:.2f}x | {verdict} | {r.percentile(50):.1f} | {r.percentile(99):.1f} | "
                     f"{r.cpu_per_event * 1e3:.2f} ms | {sum(x.refused for x in r.rounds)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(argv if argv is not None else [])
    if argv[:1] == ["--load"]:  # the fallback load generator's process
        url, concurrency, seconds, prefix = argv[1:5]
        print(json.dumps(asyncio.run(python_load(url, int(concurrency), float(seconds), prefix))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", "16")),
                        help="seconds of load per queue (split over the rounds)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--queues", type=lambda v: [q for q in v.split(",") if q], default=list(QUEUES),
                        help="comma-separated, the first is the baseline (default memory,sqlite,nats)")
    parser.add_argument("--python-client", action="store_true", help="the httpx load generator even if wrk is there")
    args = parser.parse_args(argv)
    unknown = set(args.queues) - set(QUEUES)
    if unknown:
        parser.error(f"--queues: unknown {sorted(unknown)}; known: {', '.join(QUEUES)}")
    if "nats" in args.queues and not (shutil.which("nats-server") or os.access("/usr/sbin/nats-server", os.X_OK)):
        print("nats-server not found (just toolchains installs it): the nats queue is left out", file=sys.stderr)
        args.queues.remove("nats")
    client = "wrk" if shutil.which("wrk") and not args.python_client else "httpx client process"
    results = asyncio.run(run(args))
    print(report(results, args, client))


if __name__ == "__main__":
    main(sys.argv[1:])
