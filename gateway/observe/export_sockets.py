"""The sockets of one trace export, shut down at its deadline (issue 16).

An HTTP client's timeout bounds each read, not a whole exchange: a collector trickling its answer a byte at
a time holds the export's thread in ``recv`` for ever, and a thread cannot be interrupted. What can be
interrupted is the socket: :class:`SocketWatch` keeps a duplicate of every socket its thread connects (or
takes from the pool) while the watch is that thread's current one, and :meth:`SocketWatch.expire` shuts
them all down (``SHUT_RDWR``): the blocked ``recv``/``send`` returns at once, the client fails the request
(a connection error), and the thread goes on. A socket connected after the expiry is shut down as it is
made (the client's immediate retry of a connection error finds the connection dead too). The dead
connection is not reused: urllib3 drops a connection whose request failed, and checks a pooled one before
reusing it, so the next export connects anew.

:func:`watch_transport` installs the watch in the SDK exporter's HTTP transport: its urllib3 pool managers
(the ``requests`` session's adapters, HTTP(S) proxies included, or the urllib3 transport's own; not a
SOCKS proxy's, which has pools of its own kind) make their pools with the connection classes below, which
report each socket they create or reuse to the current watch.
A duplicate of its descriptor (``socket.fromfd``) is kept rather than the socket itself: a TLS connection
detaches its plain socket while it wraps it (and a TLS socket has no ``dup``), and a duplicate's descriptor is
ours, so shutting it down can never reach a socket that reused a closed descriptor. The duplicates are closed
when the attempt ends.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["SocketWatch", "watch_transport"]

_local = threading.local()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed, or not connected


class SocketWatch:
    """The sockets one export attempt uses (on the thread it is current on); :meth:`expire` shuts them down.
    Use it as a context manager on the attempt's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._expired = False
        #: Sockets shut down by :meth:`expire` or, after it, as they were made.
        self.shut = 0

    def __enter__(self) -> SocketWatch:
        _local.watch = self
        return self

    def __exit__(self, *exc: object) -> None:
        _local.watch = None
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            sock.close()

    def add(self, sock: socket.socket) -> None:
        """A socket the attempt connected or took from the pool (its thread)."""
        try:  # a duplicate of its descriptor (a TLS socket has no dup(), its descriptor is the connection's)
            dup = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except (OSError, ValueError):
            return  # closed meanwhile: nothing to wait on
        with self._lock:
            if not self._expired:
                self._socks.append(dup)
                return
            self.shut += 1
        _shut(dup)
        dup.close()

    def expire(self) -> None:
        """The attempt's deadline passed: shut down its sockets, now and as it makes more (any thread)."""
        with self._lock:
            self._expired = True
            for sock in self._socks:
                _shut(sock)
                self.shut += 1


def _report(sock: socket.socket | None) -> None:
    watch: SocketWatch | None = getattr(_local, "watch", None)
    if watch is not None and sock is not None:
        watch.add(sock)


def _pool_classes() -> dict[str, type[Any]]:
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class WatchedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            _report(sock)
            return sock

    class WatchedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            _report(sock)
            return sock

    class WatchedHTTPConnectionPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

        def _get_conn(self, timeout: float | None = None) -> Any:
            conn = super()._get_conn(timeout)
            _report(getattr(conn, "sock", None))
            return conn

    class WatchedHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

        def _get_conn(self, timeout: float | None = None) -> Any:
            conn = super()._get_conn(timeout)
            _report(getattr(conn, "sock", None))
            return conn

    return {"http": WatchedHTTPConnectionPool, "https": WatchedHTTPSConnectionPool}


def watch_transport(transport: Any) -> bool:
    """Make the SDK exporter's HTTP transport report its sockets to the current :class:`SocketWatch`;
    whether it could (a transport of another kind: no, and a given-up export's thread may linger)."""
    classes = _pool_classes()
    managers: list[Any] = []
    adapters = getattr(getattr(transport, "_session", None), "adapters", None)
    if isinstance(adapters, dict):
        for adapter in adapters.values():
            managers.append(getattr(adapter, "poolmanager", None))
            proxied = getattr(adapter, "proxy_manager_for", None)
            if callable(proxied):
                adapter.proxy_manager_for = _watching_proxies(proxied, classes)
    managers.append(getattr(transport, "_pool", None))
    watched = False
    for manager in managers:
        watched = _install(manager, classes) or watched
    return watched


def _install(manager: Any, classes: dict[str, type[Any]]) -> bool:
    """Give ``manager`` the watched pool classes, unless it has pools of its own kind (SOCKS)."""
    from urllib3 import PoolManager, poolmanager

    if not isinstance(manager, PoolManager):
        return False
    if manager.pool_classes_by_scheme is classes:
        return True
    if manager.pool_classes_by_scheme != poolmanager.pool_classes_by_scheme:
        return False
    manager.pool_classes_by_scheme = classes
    return True


def _watching_proxies(proxy_manager_for: Callable[..., Any], classes: dict[str, type[Any]]) -> Callable[..., Any]:
    def watched(proxy: str, **kwargs: Any) -> Any:
        manager = proxy_manager_for(proxy, **kwargs)
        _install(manager, classes)
        return manager

    return watched
