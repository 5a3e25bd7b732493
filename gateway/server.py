"""Serving: both Quart apps on Hypercorn, in one process or ``--processes N``, with a graceful drain.

The listening sockets are bound *before* anything else (by the parent process when there are several
workers) and handed to Hypercorn as ``fd://`` binds. That gives three things: port 0 works (the bound
port is read back, which the tests use), every worker process accepts on the same sockets (the kernel
spreads connections), and a port clash fails at once with a clear message.

Shutdown (SIGTERM or SIGINT) is a drain in two phases, so that a client (a load balancer doing a rolling
restart) sees 503s or refused connections, never a request left waiting:

1. Draining: the listeners stay open and every new request on either API, ``/v1/status`` included, is
   answered at once with 503 ``{"errors":[{"message":"Service Unavailable"}]}`` and ``Connection: close``
   (by :class:`_DrainGate`, an ASGI layer in front of both apps, before any routing). Requests already in
   flight finish, then queued async deliveries, within ``--drain-timeout``.
2. Closing: this process stops accepting, answers (503) the connections already waiting in the kernel's
   accept queue, and drops its copies of the listening sockets; once every process has dropped them the
   port is closed and a new connection is refused. Then Hypercorn closes the idle keep-alive connections
   and every component closes.

Hypercorn's own shutdown is not started before phase 2: it stops accepting at once while the socket stays
open (the parent and our own copy hold it), so new clients would wait in the accept queue until the process
exits and then be reset. The parent of ``--processes N`` closes its copies as soon as the workers have
theirs, forwards the signal and waits for the workers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import signal
import socket
import ssl
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for_processes
from collections.abc import Callable
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.typing import ASGIFramework

from gateway.common import error_json
from gateway.http.auth import config_bind_host
from gateway.runtime import Gateway
from gateway.settings import Settings, SettingsError
from gateway.store.base import Store

__all__ = ["Listeners", "RunningGateway", "bind_listeners", "check_tls", "configure_logging", "event_loop", "run",
           "start_gateway"]

log = logging.getLogger("gateway.server")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


# -- logging ---------------------------------------------------------------------------------------


class _JSONFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (``--log-format json``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


#: C0 and C1 control characters (and DEL, and Unicode's line/paragraph separators) -> an escape
#: that shows them: a message may carry text from plugins and clients.
_CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c != 0x09}
_CONTROL_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"})


class _TextFormatter(logging.Formatter):
    """``--log-format text``: one record, one line. The message's control characters are escaped,
    so a plugin's log message (or a client's event type inside a gateway message) with "\\n2026-...
    INFO gateway ..." in it cannot forge a gateway log line; tracebacks still follow on their own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = record.message.translate(_CONTROL_ESCAPES)
        return super().formatMessage(record)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(_JSONFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)-7s %(name)s [%(process)d] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[settings.log_level])
    # Hypercorn's access log would drown the gateway's own lines at info level; it appears with
    # --log-level debug.
    quiet = max(logging.WARNING, _LEVELS[settings.log_level])
    logging.getLogger("hypercorn.access").setLevel(quiet)


# -- the event loop ---------------------------------------------------------------------------------


def event_loop(choice: str) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """``--loop`` -> (its name for the log, e.g. ``uvloop 0.23.0``, and the factory of the loop every process
    runs on). ``auto`` is uvloop where it imports (it is a dependency, absent on Windows), else asyncio's
    own loop; ``uvloop`` without uvloop installed is a :class:`SettingsError`."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise SettingsError("--loop uvloop: uvloop is not installed (pip install uvloop), "
                                    "or use --loop asyncio") from None
        else:
            return f"uvloop {uvloop.__version__}", uvloop.new_event_loop
    return "asyncio", asyncio.new_event_loop


# -- sockets -----------------------------------------------------------------------------------


@dataclass
class Listeners:
    """The two listening sockets of a gateway (shared by every worker process)."""

    events: socket.socket
    config: socket.socket

    @property
    def events_address(self) -> tuple[str, int]:
        return self.events.getsockname()[:2]

    @property
    def config_address(self) -> tuple[str, int]:
        return self.config.getsockname()[:2]

    def close(self) -> None:
        self.events.close()
        self.config.close()


def _listen(host: str, port: int, what: str) -> socket.socket:
    try:
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                    backlog=1024)
    except OSError as exc:
        raise SystemExit(f"error: cannot listen on {host}:{port} for the {what}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def bind_listeners(settings: Settings) -> Listeners:
    events = _listen(settings.events_host, settings.events_port, "Events API (--events-host/--events-port)")
    config_host = config_bind_host(settings.host, settings.config_token)
    try:
        config = _listen(config_host, settings.config_port, "Config API (--host/--config-port)")
    except BaseException:
        events.close()
        raise
    return Listeners(events, config)


def check_tls(settings: Settings) -> None:
    """Load each API's certificate and key once before serving, so that a missing file, a wrong
    password-protected key or a key that does not match its certificate stops start-up with the flag and
    the file named, instead of a Hypercorn task dying with ``SSLError('[SSL] PEM lib')`` after the
    gateway said it was listening."""
    for api in ("events", "config"):
        cert, key = getattr(settings, f"{api}_tls_cert"), getattr(settings, f"{api}_tls_key")
        if not cert:
            continue
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            if isinstance(exc, ssl.SSLError):
                reason = f"{exc.reason or exc} (expected a PEM certificate and its matching PEM private key)"
            else:
                reason = exc.strerror or str(exc)
            raise SettingsError(f"--{api}-tls-cert {cert} / --{api}-tls-key {key}: cannot load the certificate "
                                f"and key: {reason}") from None


def _hypercorn_config(fd: int, cert: str | None, key: str | None, settings: Settings) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [f"fd://{fd}"]
    config.certfile = cert
    config.keyfile = key
    config.graceful_timeout = settings.drain_timeout
    # Hypercorn formats every access-log line before the logger's level is checked, a few percent
    # of a request's CPU: only hand it a logger when the line would be written.
    config.accesslog = logging.getLogger("hypercorn.access") if settings.log_level == "debug" else None
    config.errorlog = logging.getLogger("hypercorn.error")
    # Upstream's Events API allowed long-running sync functions (540 s write timeout).
    config.keep_alive_timeout = 75
    return config


# -- the drain ---------------------------------------------------------------------------------------

#: The answer to every request that arrives while the gateway drains, upstream's error shape.
_UNAVAILABLE_BODY = error_json("Service Unavailable")
#: Between closing the listeners and Hypercorn's shutdown (which closes idle connections): see ``stop``.
_CLOSE_GRACE = 0.5
#: What a 503 reads of a request body before answering: the rest is left unread (a reset may follow).
_DISCARD_LIMIT = 1 << 20


class _DrainGate:
    """An ASGI layer in front of both apps: counts the requests in flight and, once the gateway drains,
    answers every new request 503 at once (``/v1/status`` too) without handing it to the app, with
    ``Connection: close`` so that no kept-alive connection outlives the drain."""

    def __init__(self, draining: Callable[[], bool]) -> None:
        self._draining = draining
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def wrap(self, app: Any) -> ASGIFramework:
        async def gate(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
            elif self._draining():
                await _asgi_unavailable(scope, receive, send)
            else:
                self.in_flight += 1
                self._idle.clear()
                try:
                    await app(scope, receive, send)
                finally:
                    self.in_flight -= 1
                    if not self.in_flight:
                        self._idle.set()
        return gate

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False when ``timeout`` ran out first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


async def _asgi_unavailable(scope: dict[str, Any], receive: Any, send: Any) -> None:
    async def discard_body() -> None:
        read = 0
        while read < _DISCARD_LIMIT:
            message = await receive()
            read += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                return
    try:
        # Read what the client sent, so that closing the connection does not reset it before it reads
        # the answer.
        await asyncio.wait_for(discard_body(), 1.0)
    except TimeoutError:
        pass
    body = b"" if scope.get("method") == "HEAD" else _UNAVAILABLE_BODY
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_UNAVAILABLE_BODY)).encode())]
    if scope.get("http_version") in ("1.0", "1.1"):
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _answer_waiting_connection(conn: socket.socket, tls: ssl.SSLContext | None) -> None:
    """Answer 503 on a connection taken from the accept queue after Hypercorn stopped accepting (HTTP/1.1:
    the TLS context offers nothing else)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024)
    writer: asyncio.StreamWriter | None = None
    try:
        transport, protocol = await asyncio.wait_for(loop.connect_accepted_socket(
            lambda: asyncio.StreamReaderProtocol(reader), conn, ssl=tls), 2.0)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 1.0)
        method = head.split(b" ", 1)[0].upper()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value)
        if length:
            await asyncio.wait_for(reader.readexactly(min(length, _DISCARD_LIMIT)), 1.0)
        body = b"" if method == b"HEAD" else _UNAVAILABLE_BODY
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                     b"content-length: %d\r\nconnection: close\r\n\r\n" % len(_UNAVAILABLE_BODY) + body)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        await asyncio.wait_for(reader.read(), 1.0)  # until the client closes: no reset under its answer
    except (OSError, TimeoutError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        if writer is not None:
            writer.close()
        else:
            conn.close()


def _same_socket(fd: int, sock: socket.socket) -> bool:
    try:
        mine, theirs = os.fstat(fd), os.fstat(sock.fileno())
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


# -- one process ---------------------------------------------------------------------------------


@dataclass
class _Server:
    """One API's Hypercorn server: its task, its config, and the duplicate of the listening socket it got."""

    task: asyncio.Task[None]
    config: HypercornConfig
    fd: int
    listener: socket.socket
    tls: ssl.SSLContext | None


@dataclass
class RunningGateway:
    """A started gateway serving both APIs in the current event loop (see :func:`start_gateway`)."""

    gateway: Gateway
    listeners: Listeners
    _shutdown: asyncio.Event
    _gate: _DrainGate
    _server_list: list[_Server] = field(default_factory=list)
    _waiting: set[asyncio.Task[None]] = field(default_factory=set)
    _stopped: bool = False
    #: Seconds between closing the listeners and Hypercorn's shutdown (see ``stop``).
    close_grace: float = _CLOSE_GRACE

    @property
    def _servers(self) -> list[asyncio.Task[None]]:
        return [server.task for server in self._server_list]

    @property
    def events_port(self) -> int:
        return self.listeners.events_address[1]

    @property
    def config_port(self) -> int:
        return self.listeners.config_address[1]

    @property
    def events_url(self) -> str:
        return _url(self.listeners.events_address, self.gateway.settings.events_tls_cert)

    @property
    def config_url(self) -> str:
        return _url(self.listeners.config_address, self.gateway.settings.config_tls_cert)

    async def wait_closed(self) -> None:
        """Return when a server stops on its own (it crashed), re-raising its error."""
        done, _ = await asyncio.wait(self._servers, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()

    async def stop(self) -> None:
        """Drain and stop (see the module's doc): new requests get 503 while in-flight requests and then
        queued deliveries finish, within the drain timeout; then the listeners close and everything stops."""
        if self._stopped:
            return
        self._stopped = True
        settings = self.gateway.settings
        deadline = time.monotonic() + settings.drain_timeout

        def remaining() -> float:
            return max(0.0, deadline - time.monotonic())

        self.gateway.events.draining = True  # from now on: 503 (the gate reads this flag)
        if not await self._gate.wait_idle(remaining()):
            log.warning("drain timeout (%.1fs) reached with %d requests still in flight", settings.drain_timeout,
                        self._gate.in_flight)
        await self.gateway.drain(remaining())
        self._stop_listening()
        # Hypercorn's shutdown closes every connection without a request in progress, also one accepted a
        # moment ago whose request is on its way, and a kept-alive one whose client is about to send:
        # give those a moment to send it (each gets a 503 with "Connection: close") before it starts.
        await asyncio.sleep(min(self.close_grace, remaining()))
        for server in self._server_list:
            # Hypercorn waits this long for the connections still open (idle ones close at once).
            server.config.graceful_timeout = max(1.0, remaining())
        self._shutdown.set()
        results = await asyncio.gather(*self._servers, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("server stopped with an error: %r", result)
        if self._waiting:
            await asyncio.wait(self._waiting, timeout=5.0)
        await self.gateway.stop()
        self.listeners.close()

    def _stop_listening(self) -> None:
        """Stop accepting, answer what waits in the accept queue, drop this process's copies of the
        listening sockets. No await in here: no connection can slip in between the steps."""
        loop = asyncio.get_running_loop()
        live = [server for server in self._server_list
                if not server.task.done() and _same_socket(server.fd, server.listener)]
        for server in live:
            loop.remove_reader(server.fd)  # Hypercorn's accept callback
        for server in self._server_list:
            sock = server.listener
            if sock.fileno() < 0:
                continue
            sock.setblocking(False)
            while True:
                try:
                    conn, _ = sock.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except ConnectionAbortedError:
                    continue
                except OSError:
                    break
                task = loop.create_task(_answer_waiting_connection(conn, server.tls))
                self._waiting.add(task)
                task.add_done_callback(self._waiting.discard)
        if self._waiting:
            log.debug("listeners closed: %d connections from the accept queue get 503", len(self._waiting))
        # Hypercorn closes its copy only later, in its own shutdown: put a socket that listens nowhere
        # under its descriptor now (it closes that one instead), so that the port closes with ours.
        placeholder = socket.socket()
        try:
            for server in live:
                os.dup2(placeholder.fileno(), server.fd, inheritable=False)
        finally:
            placeholder.close()
        self.listeners.close()


def _url(address: tuple[str, int], tls: str | None) -> str:
    host, port = address
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{host}:{port}"


def _plain_tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context


async def start_gateway(settings: Settings, *, store: Store | None = None,
                        listeners: Listeners | None = None, close_grace: float = _CLOSE_GRACE) -> RunningGateway:
    """Start a gateway and both servers in the running loop; returns once both accept connections.

    ``close_grace`` is the pause of the shutdown between closing the listeners and closing the
    connections still open (0.5 s: a kept-alive client about to send gets its 503); an embedding with
    no such clients (a test's own gateway) may pass 0."""
    check_tls(settings)
    own_listeners = listeners is None
    listeners = listeners or bind_listeners(settings)
    gateway = Gateway(settings, store=store)
    try:
        await gateway.start()
    except BaseException:
        if own_listeners:
            listeners.close()
        raise
    shutdown = asyncio.Event()
    gate = _DrainGate(lambda: gateway.draining)
    running = RunningGateway(gateway, listeners, shutdown, gate, close_grace=close_grace)
    s = settings
    for name, app, sock, cert, key in (
            ("events-api", gateway.events_app, listeners.events, s.events_tls_cert, s.events_tls_key),
            ("config-api", gateway.config_app, listeners.config, s.config_tls_cert, s.config_tls_key)):
        # Hypercorn takes ownership of the fd it is given: give it a duplicate so ours stays valid.
        fd = os.dup(sock.fileno())
        config = _hypercorn_config(fd, cert, key, s)
        task = asyncio.create_task(hypercorn_serve(gate.wrap(app), config, shutdown_trigger=shutdown.wait),
                                   name=name)
        running._server_list.append(_Server(task, config, fd, sock, _plain_tls_context(cert, key)))
    await asyncio.sleep(0)  # let Hypercorn start listening
    log.info("events API listening on %s", running.events_url)
    log.info("config API listening on %s", running.config_url)
    return running


async def _serve_until_signal(settings: Settings, listeners: Listeners, loop_name: str) -> None:
    loop = asyncio.get_running_loop()
    log.info("event loop: %s, %s.%s (--loop %s)", loop_name, type(loop).__module__, type(loop).__qualname__,
             settings.loop)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running = await start_gateway(settings, listeners=listeners)
    crashed = asyncio.create_task(running.wait_closed())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([crashed, stopping], return_when=asyncio.FIRST_COMPLETED)
    failure = crashed.exception() if crashed.done() else None
    if failure is not None:
        log.error("a server failed: %r; shutting down", failure)
    else:
        crashed.cancel()
    log.info("shutting down: new requests get 503 while in-flight work finishes (up to %.1fs)",
             settings.drain_timeout)
    stopping.cancel()
    await running.stop()
    log.info("stopped")
    if failure is not None:
        raise failure  # a crashed server is a failed run: exit non-zero, not 0


def _process_main(settings: Settings, listeners: Listeners) -> None:
    """Entry point of one worker process (also used in-process when ``--processes 1``)."""
    configure_logging(settings)
    try:
        loop_name, new_loop = event_loop(settings.loop)
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(_serve_until_signal(settings, listeners, loop_name))
    except Exception as exc:
        logging.getLogger("gateway").error("gateway failed: %s", exc, exc_info=settings.log_level == "debug")
        raise SystemExit(1) from None


# -- several processes ------------------------------------------------------------------------------


def run(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT; the process exit status."""
    configure_logging(settings)
    try:
        check_tls(settings)
        event_loop(settings.loop)  # --loop uvloop without uvloop: refused before any process starts
    except SettingsError as exc:
        log.error("%s", exc)
        return 2
    listeners = bind_listeners(settings)
    if settings.processes == 1:
        try:
            _process_main(settings, listeners)
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0
    return _supervise(settings, listeners)


def _supervise(settings: Settings, listeners: Listeners) -> int:
    """Start ``settings.processes`` workers on the shared sockets and stop them together."""
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_process_main, args=(settings, listeners), name=f"gateway-worker-{i}")
               for i in range(settings.processes)]
    stopping = False

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for worker in workers:
        worker.start()
    log.info("events API listening on %s, config API on %s, %d processes",
             _url(listeners.events_address, settings.events_tls_cert),
             _url(listeners.config_address, settings.config_tls_cert), settings.processes)
    # Every worker got its copies of the listening sockets when it was spawned: the parent's would keep the
    # ports open (new clients waiting in the accept queue) after the last worker stopped listening.
    listeners.close()
    status = 0
    while any(w.is_alive() for w in workers):
        wait_for_processes([w.sentinel for w in workers if w.is_alive()], timeout=1.0)
        exited = [w for w in workers if not w.is_alive()]
        if exited and not stopping:
            # A worker that stops on its own (start-up failure, crash) takes the gateway down: serving on
            # fewer processes than asked would hide the problem.
            log.error("worker process %s exited (%s); stopping the others", exited[0].name,
                      ", ".join(f"{w.name}: {w.exitcode}" for w in exited))
            status = 1
            forward(signal.SIGTERM, None)
    deadline = time.monotonic() + settings.drain_timeout + 10
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            log.error("%s did not stop in time: killing it", worker.name)
            worker.kill()
            worker.join()
            status = 1
        elif worker.exitcode not in (0, -signal.SIGTERM):
            status = status or 1
    listeners.close()
    return status
