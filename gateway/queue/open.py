"""``--queue URL`` -> a delivery queue backend.

- ``memory``: :class:`gateway.queue.memory.MemoryQueue` (this process's memory; not durable);
- ``sqlite:PATH``: :class:`gateway.queue.sqlite.SqliteQueue` (a file; ``PATH`` relative to the working
  directory); the default, as ``sqlite:<data dir>/queue.db`` next to the SQLite config store;
- ``nats://host:port[,host:port...]``: :class:`gateway.queue.nats.NatsQueue` (a JetStream stream shared by
  every gateway pointed at it). ``nats://`` may be repeated before each server, and a server may be
  written ``tls://host:port``.

The SQLite and NATS modules are imported only when chosen (nats-py is loaded only by a gateway using it).
:func:`check_queue_url` checks a URL without opening or importing anything, for the settings.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from gateway.queue.base import DEFAULT_LEASE_SECONDS, DEFAULT_MAX_EVENTS, DeliveryQueue

__all__ = ["QueueConfigError", "check_queue_url", "default_queue_url", "open_queue"]

#: The longest ``--queue`` value taken (a path or a list of servers is far shorter).
MAX_URL_LENGTH = 4096
_EXPECTED = "expected memory, sqlite:PATH or nats://host:port[,host:port]"


class QueueConfigError(ValueError):
    """A ``--queue`` value that cannot name a queue; the message names the flag."""


def default_queue_url(data_dir: str | Path) -> str:
    """The default queue: ``sqlite:<data dir>/queue.db``, next to the SQLite config store."""
    return f"sqlite:{Path(data_dir) / 'queue.db'}"


def _shown(url: str) -> str:
    """``url`` for an error message: cut when long, passwords and tokens masked."""
    shown = url if len(url) <= 200 else url[:200] + "..."
    if "@" in shown:
        parts = []
        for server in shown.split(","):
            head, at, tail = server.rpartition("@")
            if at:
                scheme, sep, userinfo = head.rpartition("://")  # a server may come without its scheme
                # user:password -> user:***; a bare token (nats://TOKEN@host) -> ***
                head = f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***" if ":" in userinfo else f"{scheme}{sep}***"
            parts.append(f"{head}{at}{tail}")
        shown = ",".join(parts)
    return repr(shown)


def _nats_servers(url: str) -> list[str]:
    """``nats://a:4222,b:4222`` -> ``["nats://a:4222", "nats://b:4222"]``, each checked."""
    rest = url[len("nats://"):]
    servers: list[str] = []
    for part in rest.split(","):
        part = part.strip()
        if not part:
            raise QueueConfigError(f"--queue {_shown(url)}: an empty server in the list ({_EXPECTED})")
        server = part if "://" in part else f"nats://{part}"
        try:
            parts = urlsplit(server)
            port = parts.port
        except ValueError:
            raise QueueConfigError(f"--queue {_shown(url)}: {_shown(part)} is not host:port ({_EXPECTED})") from None
        if parts.scheme not in ("nats", "tls") or not parts.hostname or port is None or parts.path not in ("", "/") \
                or parts.query or parts.fragment:
            raise QueueConfigError(f"--queue {_shown(url)}: {_shown(part)} is not host:port ({_EXPECTED})")
        servers.append(server)
    return servers


def _sqlite_path(url: str) -> Path:
    path = url[len("sqlite:"):]
    if not path or "\x00" in path:
        raise QueueConfigError(f"--queue {_shown(url)}: sqlite: needs a file path ({_EXPECTED})")
    return Path(path)


def check_queue_url(url: str | None) -> None:
    """Raise `QueueConfigError` (naming ``--queue``) when ``url`` cannot name a queue; None is the default."""
    if url is None:
        return
    if len(url) > MAX_URL_LENGTH:
        raise QueueConfigError(f"--queue {_shown(url)}: longer than {MAX_URL_LENGTH} characters")
    if url == "memory":
        return
    if url.startswith("sqlite:"):
        _sqlite_path(url)
        return
    if url.startswith("nats://"):
        _nats_servers(url)
        return
    raise QueueConfigError(f"--queue {_shown(url)}: {_EXPECTED}")


def open_queue(url: str | None, *, data_dir: str | Path, max_events: int = DEFAULT_MAX_EVENTS,
               lease_seconds: float = DEFAULT_LEASE_SECONDS, fsync: bool = False) -> DeliveryQueue:
    """The queue ``url`` names (None: :func:`default_queue_url`), not started (no I/O here: the gateway
    calls ``start()``). ``fsync`` applies to SQLite only."""
    url = default_queue_url(data_dir) if url is None else url
    check_queue_url(url)
    try:
        if url == "memory":
            from gateway.queue.memory import MemoryQueue
            return MemoryQueue(max_events, lease_seconds=lease_seconds)
        if url.startswith("sqlite:"):
            from gateway.queue.sqlite import SqliteQueue
            return SqliteQueue(_sqlite_path(url), max_events=max_events, lease_seconds=lease_seconds, fsync=fsync)
        from gateway.queue.nats import NatsQueue
        return NatsQueue(_nats_servers(url), max_events=max_events, lease_seconds=lease_seconds)
    except ValueError as exc:
        if isinstance(exc, QueueConfigError):
            raise
        raise QueueConfigError(f"--queue {_shown(url)}: {exc}") from None
