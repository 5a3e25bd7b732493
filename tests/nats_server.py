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
import socket
from typing import Any

from tests.server_process import ServerProcess, find_binary, free_port, new_server, remove_server, server_fixtures

NATS_MISSING = (
    "`nats-server` is not on PATH: the NATS delivery queue's tests need a real NATS server with JetStream. "
    "Install it with `just toolchains` (Debian package nats-server)."
)

_names = itertools.count(1)


def nats_binary() -> str:
    return find_binary("nats-server", NATS_MISSING, "/usr/sbin/nats-server")


def queue_names(prefix: str = "T") -> dict[str, Any]:
    """NatsQueue keyword arguments naming a stream, subject, consumer and buckets no other test uses."""
    n = f"{prefix}{os.getpid()}x{next(_names)}"
    return {"stream": f"S_{n}", "subject": f"t.{n}.deliveries", "consumer": f"c-{n}",
            "deadletter_bucket": f"DL_{n}", "retry_bucket": f"RT_{n}"}


class NatsServer(ServerProcess):
    """One ``nats-server -js`` on 127.0.0.1 with its store in ``directory / "store"``."""

    name = "nats"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        config = self.directory / "nats.conf"
        config.write_text("max_payload: 8MB\n")
        return [nats_binary(), "-js", "-sd", str(self.directory / "store"), "-a", "127.0.0.1", "-p", str(self.port),
                "-c", str(config), "-l", str(self.log_path)]

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


def new_nats_server() -> NatsServer:
    return new_server(NatsServer)


def remove_nats_server(server: NatsServer) -> None:
    remove_server(server)


nats_server, nats_factory = server_fixtures(NatsServer, nats_binary)

__all__ = ["NatsServer", "free_port", "nats_factory", "nats_server", "new_nats_server", "queue_names",
           "remove_nats_server"]
