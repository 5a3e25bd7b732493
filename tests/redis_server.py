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

import socket

from tests.server_process import ServerProcess, find_binary, free_port, new_server, remove_server, server_fixtures

REDIS_MISSING = (
    "`redis-server` is not on PATH: the kv Redis backend's tests need a real Redis. "
    "Install it with `just toolchains` (Debian package redis-server)."
)


def redis_binary() -> str:
    return find_binary("redis-server", REDIS_MISSING)


class RedisServer(ServerProcess):
    """One ``redis-server`` on 127.0.0.1, no persistence, its log in ``directory``."""

    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.directory), "--logfile", str(self.log_path),
                "--protected-mode", "yes", "--maxmemory-policy", "noeviction"]

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def new_redis_server() -> RedisServer:
    return new_server(RedisServer)


def remove_redis_server(server: RedisServer) -> None:
    remove_server(server)


redis_server, redis_factory = server_fixtures(RedisServer, redis_binary)

__all__ = ["RedisServer", "free_port", "new_redis_server", "redis_factory", "redis_server", "remove_redis_server"]
