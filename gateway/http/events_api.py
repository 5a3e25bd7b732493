"""The Events API (:4000): turns a request into a ``RawRequest`` for the event pipeline and its ``Reply``
into a response.

:func:`create_app` returns an :class:`EventsApp`: an ASGI app that serves the common request itself, without
Quart's request and app contexts, routing, ``Request``/``Response`` objects and the task Quart runs to
watch for a disconnect (issue 16: skipping it took an accepted event's CPU from 471 to 266 µs), and hands every
other request to the Quart app it wraps (:attr:`EventsApp.quart`), whose answers are the reference the
fast path matches. The fast path takes a request when: it is HTTP, its method is not ``HEAD`` (Quart drops a
HEAD answer's body), it has no ``Transfer-Encoding`` and no ``Expect`` header, its ``Content-Length`` (if
any) is decimal digits within ``MAX_BODY_BYTES`` (over HTTP/2 and 3, where a body needs no ``Content-Length``,
there is one), and the API has no bearer token (``--events-token``: the
Quart app checks it). Everything else -- a body over the limit (413), a chunked body, ``Expect:
100-continue``, an unknown method (405) -- is Quart's, as before. The body is read within Quart's own body
timeout (``BODY_TIMEOUT``, 60 s): a client that never sends it does not hold the request forever. A request
still being handled after ``_WATCH_AFTER`` (a sync call waiting on its function) is cancelled when its
client leaves, as Quart cancels it: a client cannot pile up requests in flight without holding connections.

Every answer the app itself gives (draining, a body over the limit, a method no subscription can use, a
path that is not valid percent-encoding, an unexpected error) has the upstream error shape
``{"errors":[{"message":...}]}``, never an HTML page: clients of the upstream gateway parse that shape.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol

from quart import Quart, Response, request
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import RequestTimeout
from werkzeug.sansio.utils import get_host
from urllib.parse import parse_qsl

from gateway.common import DEFAULT_SPACE, MAX_PAYLOAD_BYTES, error_json, space_problem
from gateway.events.parse import DEFAULT_MAX_BATCH_EVENTS, RawRequest
from gateway.http.auth import install_bearer_auth
from gateway.http.errors import describe_error, install_error_handlers
from gateway.pipeline.reply import Reply

__all__ = ["DEFAULT_SPACE", "MAX_BODY_BYTES", "SPACE_HEADER", "EventHandler", "EventsApp", "create_app"]

SPACE_HEADER = "Space"
#: What Lambda accepts as a payload: a larger event could not reach an ``awslambda`` function anyway.
MAX_BODY_BYTES = MAX_PAYLOAD_BYTES
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# A '%' not followed by two hex digits: Go's net/http (upstream) refused such a request line with 400.
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Statuses whose answers carry no body and no Content-Length (RFC 9110 sections 8.6, 15.3.5, 15.4.5).
_NO_BODY = (204, 304)


class EventHandler(Protocol):
    """What the app serves: the event pipeline (``gateway.pipeline.EventPlane``)."""

    @property
    def draining(self) -> bool: ...

    async def handle(self, request: RawRequest, space: str) -> Reply: ...


def create_app(plane: EventHandler, *, max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS,
               events_token: str | None = None) -> EventsApp:
    """The Events API: the fast path in front of the Quart app (see the module's doc). ``events_token``:
    the bearer token every request but a CORS preflight needs (``--events-token``; ``None``: open)."""
    app = Quart("gateway.events_api")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["MAX_BATCH_EVENTS"] = max_batch_events
    install_error_handlers(app)
    install_bearer_auth(app, events_token, api="Events", methods=None)

    async def handle(path: str = "") -> Response:
        reply = await _event_reply(
            plane,
            method=request.method,
            target=_target(request.scope),
            host=request.host,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]],
            query={key: request.args.getlist(key) for key in request.args},
            space=request.headers.get(SPACE_HEADER),
            read_body=lambda: request.get_data(cache=False, as_text=False, parse_form_data=False),
            max_batch_events=app.config.get("MAX_BATCH_EVENTS", DEFAULT_MAX_BATCH_EVENTS),
        )
        no_body = reply.status in _NO_BODY
        response = Response(b"" if no_body else reply.body, status=reply.status)
        # Only the reply's headers: no default Content-Type for a body the function typed (or left untyped).
        response.headers.clear()
        for name, value in reply.headers.items():
            response.headers[name] = value
        if not no_body:
            # Framed by length rather than chunked, as upstream's Go server did for these small bodies.
            response.headers["Content-Length"] = str(len(reply.body))
        return response

    app.add_url_rule("/", "root", handle, methods=_METHODS, provide_automatic_options=False)
    app.add_url_rule("/<path:path>", "path", handle, methods=_METHODS, provide_automatic_options=False)
    return EventsApp(app, plane, max_batch_events=max_batch_events, fast=not events_token)


async def _event_reply(plane: EventHandler, *, method: str, target: str, host: str,
                       headers: list[tuple[str, str]], query: dict[str, list[str]], space: str | None,
                       read_body: Callable[[], Awaitable[bytes]], max_batch_events: int) -> Reply:
    """The reply to one request, the same steps on both paths (the fast path and the Quart app's handler),
    in this order: draining -> 503; a path (``target``, as sent) that is not valid percent-encoding -> 400;
    only then the body is read (``read_body``: a client announcing a body it never sends gets these answers
    at once, not the body timeout's 408); a ``Space`` header (``space``: its first value, None when absent)
    no configuration can live in -> 400; else what the event pipeline replies."""
    if plane.draining:
        return _error(503, "Service Unavailable")
    if "%" in target and _BAD_ESCAPE.search(target):
        return _error(400, _bad_escape_message(target))
    raw = RawRequest(method=method, path=target, host=host, headers=headers, query=query, body=await read_body(),
                     max_batch_events=max_batch_events)
    space = space or DEFAULT_SPACE
    problem = space_problem(space)
    if problem is not None:
        # No configuration can live in such a space: accepting the event would lose it silently.
        return _error(400, _space_message(space, problem))
    return await plane.handle(raw, space)


def _target(scope: Any) -> str:
    """The request's path as the client sent it (percent-escapes kept), without the query."""
    raw_path = scope.get("raw_path")
    return raw_path.decode("latin-1").split("?", 1)[0] if raw_path else scope["path"]


def _query(scope: Any) -> dict[str, list[str]]:
    """The request's query as Quart's ``request.args`` (werkzeug) makes it: each name's values in order."""
    query_string = scope.get("query_string", b"")
    if not query_string:
        return {}
    args = ImmutableMultiDict(parse_qsl(query_string.decode(), keep_blank_values=True, errors="werkzeug.url_quote"))
    return {key: args.getlist(key) for key in args}


def _bad_escape_message(target: str) -> str:
    return f"request path {target!r} is not valid percent-encoding ('%' must be followed by two hex digits)"


def _space_message(space: str, problem: str) -> str:
    return f"{SPACE_HEADER} header {space!r} is invalid: {problem}"


#: Methods the fast path serves (HEAD is Quart's: it drops the body of the answer).
_FAST_METHODS = frozenset(_METHODS) - {"HEAD"}
#: Request headers that send a request to Quart (chunked bodies, ``Expect: 100-continue``).
_QUART_HEADERS = frozenset({b"transfer-encoding", b"expect"})
#: HTTP versions whose requests without ``Content-Length`` (and without ``Transfer-Encoding``) have no body.
_FRAMED_BY_HEADERS = frozenset({"1.0", "1.1"})
_SPACE_KEY = SPACE_HEADER.lower().encode("latin-1")
#: Seconds a request is handled (once its body is in) before the fast path watches for its client leaving (a
#: timer per request, not a task: the common request is answered sooner; one that waits on a function gets
#: the watcher).
_WATCH_AFTER = 0.05


class _Unframeable(ValueError):
    """A reply header that HTTP cannot carry (a newline in a value)."""


class EventsApp:
    """The Events API as an ASGI app: the fast path for the common request, the Quart app (:attr:`quart`)
    for the rest (see the module's doc). Both give the same answers."""

    def __init__(self, quart: Quart, plane: EventHandler, *, max_batch_events: int, fast: bool = True) -> None:
        self.quart = quart
        self._plane = plane
        self._max_batch_events = max_batch_events
        self._fast = fast
        #: Seconds a request's body may take to arrive (Quart's ``BODY_TIMEOUT``); past it: 408, as Quart.
        self.body_timeout = float(quart.config["BODY_TIMEOUT"])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self._fast or scope["type"] != "http" or scope["method"] not in _FAST_METHODS:
            return await self.quart(scope, receive, send)
        length = 0
        space = host = None
        headers: list[tuple[str, str]] = []
        for name, value in scope["headers"]:  # one walk: what sends the request to Quart, Space, Host, all
            if name in _QUART_HEADERS:
                return await self.quart(scope, receive, send)
            text = value.decode("latin-1")
            headers.append((name.decode("latin-1"), text))
            if name == b"content-length":
                if not value.isdigit() or int(value) > MAX_BODY_BYTES:
                    return await self.quart(scope, receive, send)  # Quart's 400/413
                length = int(value)
            elif name == b"host":
                if host is None:
                    host = text
            elif name == _SPACE_KEY and space is None:
                space = text
        if not length and scope.get("http_version") not in _FRAMED_BY_HEADERS:
            # HTTP/2 and 3 frame a body without Content-Length: Quart reads (and bounds) it.
            return await self.quart(scope, receive, send)
        if host is None and scope.get("http_version") not in ("1.1", "2", "3"):
            host = ""  # as Quart: an HTTP/1.0 request without Host gets SERVER_NAME (unset)
        task = asyncio.current_task()
        assert task is not None
        watch = _DisconnectWatch(receive, task)
        try:
            reply = await _event_reply(
                self._plane, method=scope["method"], target=_target(scope),
                host=get_host(scope["scheme"], host, scope.get("server")), headers=headers, query=_query(scope),
                space=space, read_body=partial(self._body, receive, length, watch),
                max_batch_events=self._max_batch_events)
            start = _response_start(reply)
        except asyncio.CancelledError:
            if watch.saw_disconnect() and task.uncancel() == 0:
                return  # the client went away: nobody to answer
            raise
        except _ClientLeft:
            return  # nobody to answer
        except _BodyTimedOut:
            reply = _error(408, RequestTimeout.description or "Request Timeout")
            start = _response_start(reply)
        except Exception as exc:  # what Quart's error handlers answer (and log)
            status, message, headers_ = describe_error(exc)
            reply = Reply(status, {**headers_, "Content-Type": "application/json"}, error_json(message))
            start = _response_start(reply)
        finally:
            watch.stop()
        await send(start)
        await send({"type": "http.response.body", "body": b"" if reply.status in _NO_BODY else reply.body})

    async def _body(self, receive: Any, length: int, watch: _DisconnectWatch) -> bytes:
        """The request's body (``length``: its Content-Length; Hypercorn holds the body to it) for
        :func:`_event_reply`; then ``watch`` starts (it reads ``receive`` too: only once the body is in).
        Raises :class:`_BodyTimedOut` past :attr:`body_timeout`, :class:`_ClientLeft` when the client
        disconnected. A body in several pieces is gathered in one ``bytearray`` (a list of the pieces would
        cost a Python object each: ~40 bytes per piece of a body sent a byte at a time)."""
        body = b""
        if length:
            try:
                async with asyncio.timeout(self.body_timeout):
                    message = await receive()
                    if message["type"] != "http.request":
                        raise _ClientLeft
                    body = message.get("body", b"")
                    if message.get("more_body", False):  # not the whole body at once (the common case)
                        pieces = bytearray(body)
                        while True:
                            message = await receive()
                            if message["type"] != "http.request":
                                raise _ClientLeft
                            pieces += message.get("body", b"")
                            if not message.get("more_body", False):
                                break
                        body = bytes(pieces)
            except TimeoutError:
                raise _BodyTimedOut from None
        watch.start()
        return body


class _BodyTimedOut(Exception):
    """The request's body did not arrive within the body timeout (answered 408, as Quart answers it)."""


class _ClientLeft(Exception):
    """The client disconnected before its request's body was in: nobody to answer."""


class _DisconnectWatch:
    """Cancels the request's task if its client leaves, once the request has been handled for
    ``_WATCH_AFTER`` after its body was read (a timer per request, not a task: the common request is
    answered sooner; one that waits on a function gets the watcher), as Quart's receiver task does."""

    __slots__ = ("_receive", "_task", "_timer", "_watcher")

    def __init__(self, receive: Any, task: asyncio.Task[Any]) -> None:
        self._receive = receive
        self._task = task
        self._timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Future[None] | None = None

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(_WATCH_AFTER, self._watch)

    def _watch(self) -> None:
        self._watcher = asyncio.ensure_future(_cancel_at_disconnect(self._receive, self._task))

    def saw_disconnect(self) -> bool:
        """Whether the task was cancelled because the client left."""
        watcher = self._watcher
        return watcher is not None and watcher.done() and not watcher.cancelled()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()


async def _cancel_at_disconnect(receive: Any, task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` when the client disconnects (what Quart's receiver task does for its handler)."""
    while (await receive())["type"] != "http.disconnect":
        pass  # the end of a body the request had already (a GET's empty one)
    task.cancel()


def _response_start(reply: Reply) -> dict[str, Any]:
    """The ``http.response.start`` message of ``reply``: its headers only (as the Quart path: no default
    Content-Type), one per name in any case (the last wins, as werkzeug's ``Headers`` set them), UTF-8 as Quart sends them, and a
    Content-Length unless the status has no body."""
    no_body = reply.status in _NO_BODY
    by_name: dict[bytes, bytes] = {}
    try:
        for name, value in reply.headers.items():
            by_name[name.lower().encode()] = _header_value(value)
    except (UnicodeEncodeError, _Unframeable) as exc:
        raise RuntimeError(f"reply header not sendable over HTTP: {exc}") from None
    if not no_body:
        # Framed by length rather than chunked, as upstream's Go server did for these small bodies.
        by_name[b"content-length"] = str(len(reply.body)).encode()
    return {"type": "http.response.start", "status": reply.status, "headers": list(by_name.items())}


def _header_value(value: str) -> bytes:
    """As Quart sends it (UTF-8), refused as werkzeug's ``Headers`` refuse it (a newline)."""
    if "\n" in value or "\r" in value:
        raise _Unframeable("a header value holds a newline")
    return value.encode()


def _error(status: int, message: str) -> Reply:
    return Reply(status, {"Content-Type": "application/json"}, error_json(message))
