"""Crash tests of the durable default queue (``sqlite:<data dir>/queue.db``, issue 14), with real gateway
processes, real signals and a real function server that is down (connection refused) and comes back.

- ``kill -9``: 1,000 async events accepted (202) while the function is down, the gateway killed, the
  function brought up, the gateway restarted on the same data dir: every accepted event id reaches the
  function, the queue file ends empty, no dead letter. Duplicates are counted and printed; a duplicate
  may only be an event the function had already seen before the kill (a call in flight when the
  process died: made, never acked).
- the same under ``--processes 2`` (the workers share the listening sockets and the queue file), with
  the function up and slow at the kill so that deliveries are in flight in the processes, and every
  process of the gateway -- the supervisor first, then its workers -- killed with SIGKILL;
- a SIGTERM drain instead of a kill while deliveries are in flight: the calls in flight finish and are
  acked, the rest stays queued; after a restart every event is delivered exactly once.
- a queue file with a newer schema than the gateway knows: the gateway does not start (exit status 1,
  the message names the file), and the file is left as it was (no table created, the version kept).

``--queue-lease 2`` makes the killed process's leases expire quickly; the function's retry policy has
small backoffs. Each test prints what it saw (run with ``-s``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from tests.asgi_server import AsgiServer
from tests.gateway_fixtures import FunctionServer, GatewayProcess
from tests.server_process import free_port

pytestmark = pytest.mark.slow

CE = {"Content-Type": "application/cloudevents+json"}
EVENTS = 1000
#: Attempts 1..20, the first retry after 0.5 s, then 1 s, then every 2 s: no event dies in these tests,
#: and a down function costs the gateway about one call per delivery every 2 s.
RETRY = {"maxAttempts": 20, "initialBackoff": 0.5, "multiplier": 2.0, "maxBackoff": 2.0}


class PortFunction(FunctionServer):
    """The recording function server of the fixtures, on a port chosen in advance: before :meth:`start`
    a call to it is refused (the function is down); it can be stopped and started again on that port."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self._server = AsgiServer(self.app, port=port)
        self.url = self._server.url


@pytest.fixture
async def down_function() -> AsyncIterator[PortFunction]:
    function = PortFunction(free_port())
    yield function
    await function.stop()


async def configure(config_url: str, function_url: str) -> None:
    async with httpx.AsyncClient(base_url=config_url + "/v1/spaces/default", timeout=10) as api:
        for path, body in (
            ("/functions", {"functionId": "recorder", "type": "http", "retry": RETRY,
                            "provider": {"url": function_url, "timeout": 10}}),
            ("/eventtypes", {"name": "job.done"}),
            ("/subscriptions", {"type": "async", "eventType": "job.done", "functionId": "recorder"}),
        ):
            response = await api.post(path, json=body)
            assert response.status_code == 201, response.text


async def send_events(events_url: str, ids: list[str], concurrency: int = 32) -> Counter[int]:
    """POST one CloudEvent per id, ``concurrency`` at a time; the statuses counted."""
    statuses: Counter[int] = Counter()
    pending = iter(ids)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=20, limits=limits) as client:
        async def sender() -> None:
            for event_id in pending:
                response = await client.post(events_url + "/", headers=CE, json={
                    "specversion": "1.0", "type": "job.done", "source": "/crash-test", "id": event_id,
                    "data": {"n": event_id}})
                statuses[response.status_code] += 1
        await asyncio.gather(*(sender() for _ in range(concurrency)))
    return statuses


def delivered(function: FunctionServer) -> Counter[str]:
    return Counter(r.json["id"] for r in function.requests)


async def wait_until(predicate: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what()}")
        await asyncio.sleep(0.05)


def queue_rows(path: Path) -> tuple[int, int]:
    """(deliveries, dead letters) in the queue file, read after the gateway stopped."""
    with sqlite3.connect(path) as db:
        return (db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0],
                db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (the workers of ``--processes N`` and their helpers), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_all(gateway: GatewayProcess) -> list[int]:
    """SIGKILL the gateway's main process first (a supervisor that outlived a worker would SIGTERM the
    others: a drain, not a crash), then every process below it; wait until all are gone."""
    children = descendants(gateway.process.pid)
    gateway.signal(signal.SIGKILL)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert gateway.wait(10) == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children):
        assert time.monotonic() < deadline, f"processes {children} outlived SIGKILL"
        time.sleep(0.02)
    return children


def report(name: str, accepted: set[str], function: FunctionServer, seen_before: Counter[str]) -> Counter[str]:
    counts = delivered(function)
    duplicates = Counter({event_id: n - 1 for event_id, n in counts.items() if n > 1})
    print(f"\n{name}: accepted {len(accepted)}, calls {sum(counts.values())} ({len(seen_before)} before the "
          f"stop), duplicates {sum(duplicates.values())}"
          + (f": {sorted(duplicates.items())[:20]}{' ...' if len(duplicates) > 20 else ''}" if duplicates else ""))
    return duplicates


async def accept_while_down(gateway: GatewayProcess, function: PortFunction) -> set[str]:
    ids = [f"evt-{i:04d}" for i in range(EVENTS)]
    statuses = await send_events(gateway.events_url, ids)
    assert statuses == Counter({202: EVENTS}), statuses
    assert function.requests == []  # down: every attempt so far was refused
    return set(ids)


async def test_kill_9_with_the_function_down_loses_no_accepted_event(
        gateway_process: Callable[..., GatewayProcess], down_function: PortFunction, tmp_path: Path) -> None:
    data = tmp_path / "data"
    flags = ("--data-dir", str(data), "--queue-lease", "2")
    gateway = gateway_process(*flags)
    await configure(gateway.config_url, down_function.url)
    accepted = await accept_while_down(gateway, down_function)
    await asyncio.sleep(0.5)  # first attempts refused, retries due: deliveries leased, retried, waiting
    kill_all(gateway)

    await down_function.start()
    restarted = gateway_process(*flags)
    await wait_until(lambda: accepted <= set(delivered(down_function)), 30,
                     lambda: f"{len(accepted - set(delivered(down_function)))} accepted events not delivered")
    assert await asyncio.to_thread(restarted.stop) == 0
    duplicates = report("kill -9, function down", accepted, down_function, Counter())
    assert set(delivered(down_function)) == accepted
    assert not duplicates  # the function saw nothing before the kill: nothing can be made twice
    assert queue_rows(data / "queue.db") == (0, 0)
    attempts = Counter(r.headers.get("Event-Gateway-Delivery-Attempt") for r in down_function.requests)
    # the deliveries had been tried (refused) and were waiting on a retry at the kill
    assert attempts["1"] < EVENTS // 10, attempts


async def test_kill_9_of_every_process_of_processes_2_loses_no_accepted_event(
        gateway_process: Callable[..., GatewayProcess], down_function: PortFunction, tmp_path: Path) -> None:
    data = tmp_path / "data"
    flags = ("--data-dir", str(data), "--queue-lease", "2", "--processes", "2")
    gateway = gateway_process(*flags)
    assert len(descendants(gateway.process.pid)) >= 2  # the supervisor's two workers
    await configure(gateway.config_url, down_function.url)
    await asyncio.sleep(1.0)  # the other process's view polls the config store every 0.1 s
    accepted = await accept_while_down(gateway, down_function)

    down_function.respond(200, {"ok": True}, delay=1.0)  # up, but slow: calls in flight at the kill
    await down_function.start()
    await down_function.wait_for_requests(50, timeout=15)
    kill_all(gateway)
    down_function.respond(200, {"ok": True})
    await asyncio.sleep(0.5)  # calls the dead processes sent before the kill, still in the socket buffers
    seen_before = delivered(down_function)  # every call so far was made by the killed gateway

    restarted = gateway_process(*flags)
    await wait_until(lambda: accepted <= set(delivered(down_function)), 30,
                     lambda: f"{len(accepted - set(delivered(down_function)))} accepted events not delivered")
    assert await asyncio.to_thread(restarted.stop) == 0
    duplicates = report("kill -9 of --processes 2", accepted, down_function, seen_before)
    assert set(delivered(down_function)) == accepted
    # A duplicate is a call made before the kill and never acked: at most one more call per event.
    assert set(duplicates) <= set(seen_before) and set(duplicates.values()) <= {1}, duplicates
    assert queue_rows(data / "queue.db") == (0, 0)


async def test_sigterm_drain_with_deliveries_in_flight_delivers_each_event_exactly_once(
        gateway_process: Callable[..., GatewayProcess], down_function: PortFunction, tmp_path: Path) -> None:
    data = tmp_path / "data"
    flags = ("--data-dir", str(data), "--queue-lease", "2", "--drain-timeout", "15")
    down_function.respond(200, {"ok": True}, delay=1.0)  # slow: 100 workers make ~100 calls a second
    await down_function.start()
    gateway = gateway_process(*flags)
    await configure(gateway.config_url, down_function.url)
    ids = [f"evt-{i:04d}" for i in range(EVENTS)]
    statuses = await send_events(gateway.events_url, ids)
    assert statuses == Counter({202: EVENTS}), statuses
    accepted = set(ids)
    await down_function.wait_for_requests(100, timeout=15)

    gateway.signal(signal.SIGTERM)  # the drain lets the calls in flight finish (and acks them)
    # waited for off the loop: the function server answering the calls in flight runs on it
    assert await asyncio.to_thread(gateway.wait, 30) == 0
    seen_before = delivered(down_function)
    with sqlite3.connect(data / "queue.db") as db:
        leased = db.execute("SELECT COUNT(*) FROM deliveries WHERE lease_owner IS NOT NULL AND "
                            "lease_until > ?", (time.time(),)).fetchone()[0]
    assert leased == 0  # nothing left leased by the stopped gateway: all in flight were acked
    assert queue_rows(data / "queue.db") == (EVENTS - len(seen_before), 0)
    assert 0 < len(seen_before) < EVENTS  # some were in flight at the stop, some still queued

    down_function.respond(200, {"ok": True})
    restarted = gateway_process(*flags)
    await wait_until(lambda: accepted <= set(delivered(down_function)), 30,
                     lambda: f"{len(accepted - set(delivered(down_function)))} accepted events not delivered")
    assert await asyncio.to_thread(restarted.stop) == 0
    duplicates = report("SIGTERM drain", accepted, down_function, seen_before)
    assert set(delivered(down_function)) == accepted
    assert not duplicates
    assert queue_rows(data / "queue.db") == (0, 0)


def test_a_queue_file_with_a_newer_schema_stops_the_start_up(
        gateway_process: Callable[..., GatewayProcess], tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    path = data / "queue.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE kept (x)")
        db.execute("PRAGMA user_version = 7")
    gateway = gateway_process("--data-dir", str(data), "--queue-lease", "2", wait=False)
    assert gateway.wait(60) == 1
    log = gateway.log()
    assert f"the SQLite queue {str(path)!r} has schema version 7, newer than this gateway's 1" in log, log
    assert "listening" not in log
    with sqlite3.connect(path) as db:  # left as it was (WAL mode aside): no table of ours, the version kept
        assert db.execute("PRAGMA user_version").fetchone()[0] == 7
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["kept"]
