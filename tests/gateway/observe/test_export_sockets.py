"""SocketWatch on real sockets: a thread blocked reading a connection is released when the watch expires,
a TLS socket (which has no dup) is watched too, and a socket made after the expiry is shut at once."""

from __future__ import annotations

import socket
import ssl
import threading

from gateway.observe.export_sockets import SocketWatch


def _blocked_read(sock: socket.socket, watch: SocketWatch, got: list[bytes]) -> threading.Thread:
    def read() -> None:
        with watch:
            watch.add(sock)
            try:
                got.append(sock.recv(1))  # the peer never writes
            except OSError as exc:
                got.append(repr(exc).encode())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_expiring_releases_a_thread_blocked_in_recv() -> None:
    ours, peer = socket.socketpair()
    with ours, peer:
        watch, got = SocketWatch(), []
        thread = _blocked_read(ours, watch, got)
        thread.join(0.2)
        assert thread.is_alive()  # blocked: nothing to read
        watch.expire()
        thread.join(10)
        assert not thread.is_alive() and got == [b""] and watch.shut == 1
        assert peer.recv(1) == b""  # the connection itself was shut down, not just our descriptor


def test_a_tls_socket_is_watched_through_its_descriptor() -> None:
    ours, peer = socket.socketpair()
    with peer:
        wrapped = ssl.create_default_context().wrap_socket(ours, server_hostname="x", do_handshake_on_connect=False)
        with wrapped:
            watch = SocketWatch()
            with watch:
                watch.add(wrapped)  # SSLSocket.dup() raises NotImplementedError: the descriptor is duplicated
                watch.expire()
            assert watch.shut == 1 and peer.recv(1) == b""


def test_a_socket_added_after_the_expiry_is_shut_at_once_and_duplicates_are_closed() -> None:
    ours, peer = socket.socketpair()
    with ours, peer:
        watch = SocketWatch()
        with watch:
            watch.expire()
            watch.add(ours)  # the client's immediate retry, after the deadline
        assert watch.shut == 1 and peer.recv(1) == b""
        assert ours.fileno() != -1  # our own socket is the client's to close; only the duplicate is closed
