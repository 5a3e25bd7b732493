"""One real server process for the tests (Redis, NATS, ...): started on a free loopback port in its own
temporary directory, killed (a crash), paused (SIGSTOP: a server that answers nothing), resumed, stopped,
and started again on the same port and directory. Each kind says its command line and how to ping it;
`server_fixtures` makes its session fixture (one server for the whole run) and factory fixture (private
servers, stopped at the end of the test). A missing binary fails the test with the command that installs
it; it never skips."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest


#: The ports `free_port` hands out lie below the kernel's ephemeral range (Linux: 32768-60999), where no
#: client connection's local port and no ``bind(0)`` elsewhere can land: a server stopped and started
#: again on its port (a crash test) finds it still free. Each xdist worker (and a run without xdist) has
#: its own slice, so two workers never pick the same port; within a slice the search starts at random
#: (another suite run on the machine at the same time).
PORTS_FROM = 20000
PORTS_PER_SLICE = 1500
_SLICES = 8
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...; unset without xdist
    index = int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0
    start = PORTS_FROM + (index % _SLICES) * PORTS_PER_SLICE
    return range(start, start + PORTS_PER_SLICE)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port nothing listens on now (see `PORTS_FROM`); falls back to one the kernel picks when
    the ephemeral range starts too low for the slices."""
    ports = _slice()
    if _ephemeral_low() >= PORTS_FROM + _SLICES * PORTS_PER_SLICE:
        offset = random.randrange(len(ports))
        for i in range(len(ports)):
            port = ports[(offset + i) % len(ports)]
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str, missing: str, *also: str) -> str:
    """The path of `name` on PATH (or one of the absolute paths `also`); RuntimeError(`missing`) if none."""
    path = shutil.which(name) or next((p for p in also if os.access(p, os.X_OK)), None)
    if path is None:
        raise RuntimeError(missing)
    return path


@dataclass
class ServerProcess:
    """A server on 127.0.0.1:`port`, its files in `directory`. Subclasses give `command()`, `ping()`,
    `name` and `log_path`."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    name = "server"

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ping(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {log}")
            if self.ping():
                return
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not answer on port {self.port} within {timeout}s")

    def kill(self) -> None:
        """SIGKILL, as a crash: what the server wrote to disk is what survives."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP: a server that holds its connections and answers nothing (returns once it is stopped)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        stat = Path(f"/proc/{self.process.pid}/stat")
        deadline = time.monotonic() + 5
        while stat.read_text().rpartition(")")[2].split()[0] != "T":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not stop on SIGSTOP")
            time.sleep(0.005)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


S = TypeVar("S", bound=ServerProcess)


def new_server(kind: type[S]) -> S:
    server = kind(Path(tempfile.mkdtemp(prefix=f"eg-{kind.name}-")))
    server.start()
    return server


def remove_server(server: ServerProcess) -> None:
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


def server_fixtures(kind: type[S], check_binary: Callable[[], Any]) -> tuple[Any, Any]:
    """(session fixture, factory fixture) for `kind`; both check the binary first (failing loudly)."""

    def session() -> Iterator[S]:
        check_binary()
        server = new_server(kind)
        yield server
        remove_server(server)

    def factory() -> Iterator[Callable[[], S]]:
        check_binary()
        servers: list[S] = []

        def make() -> S:
            server = new_server(kind)
            servers.append(server)
            return server

        yield make
        for server in servers:
            remove_server(server)

    return pytest.fixture(scope="session")(session), pytest.fixture(factory)
