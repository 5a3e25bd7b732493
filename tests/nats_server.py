"""Real NATS servers with JetStream for the tests of the NATS delivery queue (``--queue nats://...``).

A :class:`NatsServer` is a ``nats-server -js`` process (Debian's ``nats-server``, installed by ``just
toolchains``) on a free loopback port, its JetStream file store in its own temporary directory and
``max_payload: 8MB`` (the gateway takes events up to 6 MiB). It can be stopped or killed and started again
on the same port and store, which is how the tests take NATS away from running queues and gateways and
give it back with what it had stored. Registered for the whole suite through ``pytest_plugins`` in
``tests/conftest.py``:

- ``nats_server``: one server for the session (tests use their own stream, consumer and bucket names:
  :func:`queue_names`);
- ``nats_factory``: ``nats_factory()`` makes private servers (for tests that stop them), all stopped at
  the end of the test.

Both imply the ``nats`` marker (``tests/conftest.py``). A missing ``nats-server`` fails the test with the
command that installs it; it never skips.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

NATS_MISSING = (
    "`nats-server` is not on PATH: the NATS delivery queue's tests need a real NATS server with JetStream. "
    "Install it with `just toolchains` (Debian package nats-server)."
)

_names = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nats_binary() -> str:
    path = shutil.which("nats-server") or ("/usr/sbin/nats-server" if os.access("/usr/sbin/nats-server", os.X_OK)
                                           else None)
    if path is None:
        raise RuntimeError(NATS_MISSING)
    return path


def queue_names(prefix: str = "T") -> dict[str, Any]:
    """NatsQueue keyword arguments naming a stream, subject, consumer and buckets no other test uses."""
    n = f"{prefix}{os.getpid()}x{next(_names)}"
    return {"stream": f"S_{n}", "subject": f"t.{n}.deliveries", "consumer": f"c-{n}",
            "deadletter_bucket": f"DL_{n}", "retry_bucket": f"RT_{n}"}


@dataclass
class NatsServer:
    """One ``nats-server -js`` on 127.0.0.1 with its store in ``directory / "store"``."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "nats.log"

    def start(self, timeout: float = 10.0) -> None:
        config = self.directory / "nats.conf"
        config.write_text("max_payload: 8MB\n")
        self.process = subprocess.Popen(
            [nats_binary(), "-js", "-sd", str(self.directory / "store"), "-a", "127.0.0.1", "-p", str(self.port),
             "-c", str(config), "-l", str(self.log_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
                raise RuntimeError(f"nats-server exited with {self.process.returncode}: {log}")
            if self.ping():
                return
            time.sleep(0.02)
        raise RuntimeError(f"nats-server did not answer on port {self.port} within {timeout}s")

    def ping(self) -> bool:
        """The server answers INFO, then PONG to a PING: it is listening (JetStream starts before that)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                data = b""
                while b"\r\n" not in data:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return False
                    data += chunk
                if not data.startswith(b"INFO"):
                    return False
                sock.sendall(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
                reply = b""
                while b"PONG" not in reply:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return False
                    reply += chunk
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash (JetStream's file store is what survives)."""
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
                raise RuntimeError("nats-server did not stop on SIGSTOP")
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


def new_nats_server() -> NatsServer:
    server = NatsServer(Path(tempfile.mkdtemp(prefix="eg-nats-")))
    server.start()
    return server


def remove_nats_server(server: NatsServer) -> None:
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    nats_binary()
    server = new_nats_server()
    yield server
    remove_nats_server(server)


@pytest.fixture
def nats_factory() -> Iterator[Callable[[], NatsServer]]:
    nats_binary()
    servers: list[NatsServer] = []

    def make() -> NatsServer:
        server = new_nats_server()
        servers.append(server)
        return server

    yield make
    for server in servers:
        remove_nats_server(server)
