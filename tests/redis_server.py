"""Real Redis servers for the tests of the kv capability's Redis backend (``--plugin-kv redis://...``).

A :class:`RedisServer` is a ``redis-server`` process (Debian's ``redis-server``, installed by ``just
toolchains``) on a free loopback port with its own temporary directory, nothing persisted. It can be
killed and started again on the same port, which is how the tests take Redis away from running gateways
and give it back. Registered for the whole suite through ``pytest_plugins`` in ``tests/conftest.py``:

- ``redis_server``: one server for the session (tests use their own namespaces, i.e. plugin names);
- ``redis_factory``: ``redis_factory()`` makes private servers (for tests that kill them), all stopped
  at the end of the test.

Both imply the ``redis`` marker (``tests/conftest.py``). A missing ``redis-server`` fails the test with
the command that installs it; it never skips.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REDIS_MISSING = (
    "`redis-server` is not on PATH: the kv Redis backend's tests need a real Redis. "
    "Install it with `just toolchains` (Debian package redis-server)."
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError(REDIS_MISSING)
    return path


@dataclass
class RedisServer:
    """One ``redis-server`` on 127.0.0.1, no persistence, its log in ``directory``."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--logfile", str(self.directory / "redis.log"),
             "--protected-mode", "yes", "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {log}")
            if self.ping():
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is flushed (nothing is kept anyway)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


def new_redis_server() -> RedisServer:
    server = RedisServer(Path(tempfile.mkdtemp(prefix="eg-redis-")))
    server.start()
    return server


def remove_redis_server(server: RedisServer) -> None:
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    redis_binary()
    server = new_redis_server()
    yield server
    remove_redis_server(server)


@pytest.fixture
def redis_factory() -> Iterator[Callable[[], RedisServer]]:
    redis_binary()
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        server = new_redis_server()
        servers.append(server)
        return server

    yield make
    for server in servers:
        remove_redis_server(server)
