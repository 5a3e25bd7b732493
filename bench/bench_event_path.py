"""The gateway's event path against the least a Quart app must do for it (issue 16), in one run:

- *bare accept*: a Quart app that reads a POSTed CloudEvents 1.0 structured event and answers 202;
- *gateway accept*: ``python -m gateway serve --db memory`` accepting that event, no subscription (202);
- *bare proxy*: a Quart app that reads the event, POSTs it with aiohttp (one session kept open) to an http
  function and answers the function's body;
- *gateway sync*: the gateway delivering that event to the same function through one sync subscription
  (configured through the Config API).

The function is a bare ASGI app in its own Hypercorn process, shared by both proxies. Every scenario runs
once on uvloop and once on asyncio's own loop (``--loop``), so the table says what uvloop gives each. The
bare apps are served the way the gateway serves its Events API: ``hypercorn.asyncio.serve`` in a process of
their own, on the same event loop, with the gateway's Hypercorn settings (no access log, 75 s keep-alive).
All processes run side by side and are loaded by wrk (``--concurrency`` connections, 2 threads, a Lua script
giving every event its own id) in interleaved rounds, the order rotating each round, so a shared machine's
changing load falls on every scenario alike. Python processes run with PYTHONHASHSEED=0. CPU per event is
the server process's user + system time from /proc over its rounds (the function's is not counted).

Reported: events/s, p50/p99 (the median over the rounds of wrk's per-round percentiles), CPU per event, and
the ratios the issue's targets are stated in: gateway accept / bare accept (target >= 0.90x) and gateway
sync / bare proxy (target >= 0.95x), per loop; and uvloop / asyncio per scenario. ``--scaling`` adds the
gateway on ``--processes 1`` and ``--processes 2`` (a SQLite store: several processes need a shared one),
uvloop, accept and sync. ``--compare-tree DIR`` adds both gateway scenarios (uvloop) run from another
source tree (e.g. ``git archive`` of the commit before a change): a change's effect, side by side.

    python -m bench.bench_event_path [--duration 4] [--rounds 4] [--concurrency 32] [--loops uvloop,asyncio]
                                     [--scaling] [--compare-tree DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.workload import cloudevents_wrk_script, run_wrk, stop_process, sync_function_app

REPO = Path(__file__).resolve().parent.parent
EVENT_TYPE = "bench.event"

LUA = cloudevents_wrk_script("/bench")

# -- the servers (each `python -m bench.bench_event_path serve KIND ...` in its own process) -------------------


function_app = sync_function_app


def bare_accept_app() -> Any:
    """Reads the POSTed event and answers 202 with no body: what the gateway answers with no subscriber."""
    from quart import Quart, Response, request

    app = Quart("bare_accept")

    @app.route("/<path:path>", methods=["POST"])
    async def accept(path: str) -> Response:
        await request.get_data(cache=False, as_text=False, parse_form_data=False)
        return Response(b"", status=202)

    return app


def bare_proxy_app(function_url: str) -> Any:
    """Reads the event, POSTs it to the function on a kept-open aiohttp session, answers the function's body."""
    import aiohttp
    from quart import Quart, Response, request

    app = Quart("bare_proxy")
    session: dict[str, aiohttp.ClientSession] = {}

    @app.before_serving
    async def open_session() -> None:
        session["s"] = aiohttp.ClientSession()

    @app.after_serving
    async def close_session() -> None:
        await session["s"].close()

    @app.route("/<path:path>", methods=["POST"])
    async def proxy(path: str) -> Response:
        body = await request.get_data(cache=False, as_text=False, parse_form_data=False)
        async with session["s"].post(function_url, data=body,
                                     headers={"Content-Type": "application/cloudevents+json"}) as answer:
            data = await answer.read()
            return Response(data, status=answer.status, content_type=answer.headers.get("Content-Type"))

    return app


def serve(kind: str, port: int, loop: str, function_url: str) -> None:
    """Serve one bare app (or the function) the way gateway.server serves the Events API."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config as HypercornConfig

    from gateway.server import event_loop

    app = {"accept": bare_accept_app, "proxy": lambda: bare_proxy_app(function_url),
           "function": lambda: function_app}[kind]()
    config = HypercornConfig()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = 75
    _, new_loop = event_loop(loop)
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(hypercorn_serve(app, config))


# -- the bench ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its direct children (a gateway's ``--processes N`` workers)."""
    total = process_cpu_seconds(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            try:
                total += process_cpu_seconds(int(child))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return total


def environment(tree: Path = REPO) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "EVENT_GATEWAY_"))}
    env["PYTHONHASHSEED"] = "0"
    if tree != REPO:
        env["PYTHONPATH"] = str(tree)
    return env


@dataclass
class Scenario:
    name: str
    #: "accept" or "sync": which bare scenario it is compared with.
    path: str
    loop: str
    command: list[str]
    url: str
    config_url: str | None = None
    tree: Path = REPO
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    rounds: list[tuple[int, int, float, float, float, float]] = field(default_factory=list)

    @property
    def bare(self) -> bool:
        return self.config_url is None

    def start(self, workdir: Path, index: int) -> None:
        self.log = workdir / f"server{index}.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(self.command, cwd=self.tree, stdout=out, stderr=subprocess.STDOUT,
                                            env=environment(self.tree))

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    # one round: (ok, errors, seconds, p50 ms, p99 ms, cpu s)
    @property
    def ok(self) -> int:
        return sum(r[0] for r in self.rounds)

    @property
    def errors(self) -> int:
        return sum(r[1] for r in self.rounds)

    @property
    def rate(self) -> float:
        seconds = sum(r[2] for r in self.rounds)
        return self.ok / seconds if seconds else float("nan")

    def percentile(self, p: int) -> float:
        return statistics.median(r[3] if p == 50 else r[4] for r in self.rounds) if self.rounds else float("nan")

    @property
    def cpu_per_event(self) -> float:
        return sum(r[5] for r in self.rounds) / self.ok if self.ok else float("nan")


async def wait_ready(scenario: Scenario, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    probe = scenario.url if scenario.bare else f"{scenario.config_url}/v1/status"
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            assert scenario.process is not None
            if scenario.process.poll() is not None:
                raise RuntimeError(f"{scenario.name} exited at start-up:\n{scenario.log.read_text()}")  # type: ignore[union-attr]
            try:
                if scenario.bare:
                    await client.post(probe, timeout=1)
                    return
                if (await client.get(probe, timeout=1)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{scenario.name} not ready after {timeout}s:\n{scenario.log.read_text()}")  # type: ignore[union-attr]


async def configure_sync(scenario: Scenario, function_url: str) -> None:
    """One http function, the event type and a sync subscription on POST /bench; then wait until every
    process of the gateway answers events with the function's body."""
    base = f"{scenario.config_url}/v1/spaces/default"
    async with httpx.AsyncClient() as client:
        for path, body in (("functions", {"functionId": "bench", "type": "http", "provider": {"url": function_url}}),
                           ("eventtypes", {"name": EVENT_TYPE}),
                           ("subscriptions", {"type": "sync", "eventType": EVENT_TYPE, "functionId": "bench",
                                              "path": "/bench"})):
            (await client.post(f"{base}/{path}", json=body)).raise_for_status()
        event = {"specversion": "1.0", "type": EVENT_TYPE, "source": "/bench", "id": "probe", "data": {}}
        deadline, in_a_row = time.monotonic() + 30, 0
        while in_a_row < 20:  # 20 answers in a row on fresh connections: every process has the subscription
            if time.monotonic() > deadline:
                raise RuntimeError(f"{scenario.name}: the sync subscription never answered")
            async with httpx.AsyncClient() as fresh:
                answer = await fresh.post(f"{scenario.url}/bench", json=event,
                                          headers={"content-type": "application/cloudevents+json"})
            in_a_row = in_a_row + 1 if answer.status_code == 200 and answer.content == b"ok" else 0
            if not in_a_row:
                await asyncio.sleep(0.1)


def build(args: argparse.Namespace, workdir: Path, function_url: str) -> list[Scenario]:
    me = [sys.executable, "-m", "bench.bench_event_path", "serve"]
    scenarios: list[Scenario] = []

    def gateway(name: str, path: str, loop: str, *flags: str, tree: Path = REPO) -> Scenario:
        port, config_port = free_port(), free_port()
        command = [sys.executable, "-m", "gateway", "serve", "--events-port", str(port),
                   "--config-port", str(config_port), "--log-level", "warn", "--loop", loop, *flags]
        if "--db" not in flags:
            command += ["--db", "memory"]
        return Scenario(name, path, loop, command, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{config_port}",
                        tree=tree)

    for loop in args.loops:
        port_a, port_c = free_port(), free_port()
        scenarios += [
            Scenario(f"bare Quart accept ({loop})", "accept", loop,
                     [*me, "accept", "--port", str(port_a), "--loop", loop], f"http://127.0.0.1:{port_a}"),
            gateway(f"gateway accept ({loop})", "accept", loop),
            Scenario(f"bare Quart proxy ({loop})", "sync", loop,
                     [*me, "proxy", "--port", str(port_c), "--loop", loop, "--function-url", function_url],
                     f"http://127.0.0.1:{port_c}"),
            gateway(f"gateway sync ({loop})", "sync", loop)]
    if args.compare_tree:
        tree = Path(args.compare_tree).resolve()
        scenarios += [gateway(f"gateway accept (uvloop), tree {args.compare_tree}", "accept", "uvloop", tree=tree),
                      gateway(f"gateway sync (uvloop), tree {args.compare_tree}", "sync", "uvloop", tree=tree)]
    if args.scaling:
        for processes in (1, 2):
            for path in ("accept", "sync"):
                db = f"sqlite:{workdir / f'scaling-{processes}-{path}.db'}"
                scenarios.append(gateway(f"gateway {path} (uvloop), SQLite store, --processes {processes}", path,
                                         "uvloop", "--db", db, "--queue", "memory", "--processes", str(processes)))
    return scenarios


async def run(args: argparse.Namespace) -> list[Scenario]:
    with tempfile.TemporaryDirectory(prefix="bench-event-path-") as tmp:
        workdir = Path(tmp)
        script = workdir / "events.lua"
        script.write_text(LUA)
        function_port = free_port()
        function_url = f"http://127.0.0.1:{function_port}/"
        function = Scenario("function", "-", "uvloop",
                            [sys.executable, "-m", "bench.bench_event_path", "serve", "function", "--port",
                             str(function_port), "--loop", "auto"], function_url)
        scenarios = build(args, workdir, function_url)
        try:
            function.start(workdir, 99)
            for index, scenario in enumerate(scenarios):
                scenario.start(workdir, index)
            await wait_ready(function)
            for scenario in scenarios:
                await wait_ready(scenario)
                if not scenario.bare and scenario.path == "sync":
                    await configure_sync(scenario, function_url)
            for scenario in scenarios:  # warm-up: connections, caches
                await asyncio.to_thread(run_wrk, f"{scenario.url}/bench", args.concurrency, max(1, round(args.warmup)),
                                        "w", script)
            slice_seconds = max(1, round(args.duration / args.rounds))  # wrk takes whole seconds
            for round_index in range(args.rounds):
                order = list(range(len(scenarios)))
                shift = round_index % len(order)
                for index in order[shift:] + order[:shift]:
                    scenario = scenarios[index]
                    assert scenario.process is not None
                    cpu_before = tree_cpu_seconds(scenario.process.pid)
                    ok, errors, p50, p99 = await asyncio.to_thread(
                        run_wrk, f"{scenario.url}/bench", args.concurrency, slice_seconds, f"r{round_index}", script)
                    cpu = tree_cpu_seconds(scenario.process.pid) - cpu_before
                    scenario.rounds.append((ok, errors, slice_seconds, p50, p99, cpu))
            return scenarios
        finally:
            for scenario in scenarios:
                scenario.stop()
            function.stop()


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and a == a and b == b else "n/a"


def report(scenarios: list[Scenario], args: argparse.Namespace, load: str) -> str:
    lines = [(f"CloudEvents 1.0 structured POSTs, {args.concurrency} connections (wrk, 2 threads); "
              f"{args.duration:g}s per scenario in {args.rounds} interleaved rounds after {args.warmup:g}s warm-up "
              f"each; {os.cpu_count()} CPUs; load average before the run {load}"),
             "",
             "| scenario | events/s | p50 ms | p99 ms | server CPU per event | errors |",
             "|---|---:|---:|---:|---:|---:|"]
    for s in scenarios:
        lines.append(f"| {s.name} | {s.rate:,.0f} | {s.percentile(50):.2f} | {s.percentile(99):.2f} | "
                     f"{s.cpu_per_event * 1e6:,.0f} µs | {s.errors} |")
    by_name = {s.name: s for s in scenarios}
    lines += ["", "| loop | gateway accept / bare accept (target >= 0.90x) | p99 gateway / bare | "
                  "gateway sync / bare proxy (target >= 0.95x) | p99 gateway / bare |", "|---|---:|---:|---:|---:|"]
    for loop in args.loops:
        a, b = by_name[f"bare Quart accept ({loop})"], by_name[f"gateway accept ({loop})"]
        c, d = by_name[f"bare Quart proxy ({loop})"], by_name[f"gateway sync ({loop})"]
        lines.append(f"| {loop} | {_ratio(b.rate, a.rate)} | {_ratio(b.percentile(99), a.percentile(99))} | "
                     f"{_ratio(d.rate, c.rate)} | {_ratio(d.percentile(99), c.percentile(99))} |")
    if "uvloop" in args.loops and "asyncio" in args.loops:
        lines += ["", "| scenario | uvloop / asyncio (events/s) | CPU per event uvloop / asyncio |", "|---|---:|---:|"]
        for kind in ("bare Quart accept", "gateway accept", "bare Quart proxy", "gateway sync"):
            u, a = by_name[f"{kind} (uvloop)"], by_name[f"{kind} (asyncio)"]
            lines.append(f"| {kind} | {_ratio(u.rate, a.rate)} | {_ratio(u.cpu_per_event, a.cpu_per_event)} |")
    if args.scaling:
        lines += ["", "| path | --processes 2 / --processes 1 (events/s) |", "|---|---:|"]
        for path in ("accept", "sync"):
            one = by_name[f"gateway {path} (uvloop), SQLite store, --processes 1"]
            two = by_name[f"gateway {path} (uvloop), SQLite store, --processes 2"]
            lines.append(f"| {path} | {_ratio(two.rate, one.rate)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(argv or [])  # `python -m bench` calls main() with no arguments: the defaults
    if argv[:1] == ["serve"]:
        parser = argparse.ArgumentParser(prog="bench_event_path serve")
        parser.add_argument("kind", choices=("accept", "proxy", "function"))
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--loop", default="auto")
        parser.add_argument("--function-url", default="")
        served = parser.parse_args(argv[1:])
        serve(served.kind, served.port, served.loop, served.function_url)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", "4")),
                        help="seconds measured per scenario, split over the rounds (whole seconds per round: wrk's unit)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--loops", type=lambda text: text.split(","), default=["uvloop", "asyncio"],
                        help="comma-separated: uvloop,asyncio")
    parser.add_argument("--scaling", action="store_true", help="also the gateway on --processes 1 and 2")
    parser.add_argument("--compare-tree", metavar="DIR", default=None,
                        help="also both gateway scenarios (uvloop) from this source tree")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("bench_event_path needs wrk on PATH (Debian package wrk)")
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    scenarios = asyncio.run(run(args))
    print(report(scenarios, args, load))


if __name__ == "__main__":
    main(sys.argv[1:])
