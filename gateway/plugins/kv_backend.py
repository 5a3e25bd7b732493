"""``--plugin-kv URL``: which backend holds the plugins' kv namespaces (ABI.md 7.1, "kv").

- none or ``memory``: `wasm_abi.MemoryKv`, in this process (with ``--processes N`` each process has its
  own: a limit of 5 per window becomes 5 per window per process);
- ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS) or ``unix:///path/redis.sock``:
  `gateway.plugins.kv_redis.RedisKv`, shared by every process and gateway pointed at the same Redis.

See docs/operations.md, "Plugin kv backends".
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from wasm_abi import KvStore

__all__ = ["KvBackendError", "check_kv_url", "open_kv", "redacted_url"]

#: The longest URL accepted (a host, credentials and a few query options fit many times over).
MAX_URL_CHARS = 2048


class KvBackendError(ValueError):
    """The ``--plugin-kv`` value is wrong; the message names the flag."""


def redacted_url(url: str) -> str:
    """`url` with its password (if any) written ``***``: what logs and errors may show."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return url.split("://", 1)[0] + "://***"  # unreadable: show nothing that could be a secret
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_kv_url(url: str | None) -> None:
    """Refuse a ``--plugin-kv`` value that no backend can use (`KvBackendError` naming the flag); opens
    nothing."""
    if url is None or url == "memory":
        return
    if len(url) > MAX_URL_CHARS:
        raise KvBackendError(f"--plugin-kv {url[:40] + '...'!r}: longer than {MAX_URL_CHARS} characters")
    shown = redacted_url(url)
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise KvBackendError(f"--plugin-kv {shown!r}: holds whitespace or control characters")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in ("redis", "rediss", "unix"):
        raise KvBackendError(f"--plugin-kv {shown!r}: expected memory, redis://host:port/db, "
                             f"rediss://host:port/db or unix:///path/to/redis.sock")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not 0-65535
    except ValueError as exc:
        raise KvBackendError(f"--plugin-kv {shown!r}: {exc}") from None
    if scheme != "unix":
        if not parts.hostname:
            raise KvBackendError(f"--plugin-kv {shown!r}: no host (expected {scheme}://host:port/db)")
        if port == 0:
            raise KvBackendError(f"--plugin-kv {shown!r}: port 0")
        db = parts.path.lstrip("/")
        if db and not (db.isascii() and db.isdigit() and int(db) < 1 << 31):
            raise KvBackendError(f"--plugin-kv {shown!r}: the database {db!r} is not a number "
                                 f"(expected {scheme}://host:port/0)")
    elif not parts.path:
        raise KvBackendError(f"--plugin-kv {shown!r}: no socket path (expected unix:///path/to/redis.sock)")


def open_kv(url: str | None) -> KvStore:
    """The kv backend for ``--plugin-kv URL`` (no network I/O: a Redis that is down makes the kv calls
    answer ``EG_UNAVAILABLE`` until it is back, it does not stop the gateway)."""
    check_kv_url(url)
    if url is None or url == "memory":
        from wasm_abi import MemoryKv
        return MemoryKv()
    from .kv_redis import RedisKv  # redis-py is imported only when a Redis is used

    try:
        return RedisKv(url)
    except ValueError as exc:  # redis-py refusing a query option
        shown = redacted_url(url)
        raise KvBackendError(f"--plugin-kv {shown!r}: {str(exc).replace(url, shown)}") from None
