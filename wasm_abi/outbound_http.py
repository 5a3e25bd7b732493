"""The http capability (ABI.md section 7.1, "http"): one outbound request under a plugin's grants.

What an untrusted plugin could do with an HTTP client, and what stops it here:

- reach a URL nobody granted: every URL (and every redirect target) must be under one of the plugin's
  `HttpGrant` prefixes, compared on the parsed scheme, host, port and path; URLs with user information,
  dot segments or backslashes are refused before that (they parse differently in different places);
- reach the gateway's own network (loopback, private ranges, link-local cloud metadata): the host
  resolves the name itself, refuses any address that is not globally routable unless the grant names
  it explicitly, and connects to the address it checked (a DNS answer cannot change in between);
- hold the thread: one hard deadline for the whole exchange (the least of the request's ``timeoutMs``,
  `Limits.http_timeout` and what is left of the reaction's deadline), enforced by a reaper thread
  that shuts the socket down at that moment, so a server trickling bytes cannot stretch it;
- bloat the host: the request is capped before anything is sent, the response is read only up to
  `Limits.max_http_response_bytes` (http.client also caps header lines and their number);
- smuggle headers: names must be tokens, values must not hold CR, LF or NUL, and the headers that
  frame the request (Host, Content-Length, Transfer-Encoding, ...) may not be set. Credentials
  (Authorization, Cookie, Proxy-Authorization) are dropped on a redirect to another origin.

One connection per request (no pooling): a request costs a connect (and a TLS handshake for https).
"""

from __future__ import annotations

import concurrent.futures
import heapq
import http.client
import ipaddress
import itertools
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

import msgpack

from .capabilities import (
    EG_DENIED,
    EG_INVALID,
    EG_TIMEOUT,
    EG_TOO_LARGE,
    EG_UNAVAILABLE,
    CapabilityError,
    HttpGrant,
    parse_url,
)
from .limits import Limits

MAX_URL_BYTES = 8192
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "upgrade", "te",
                                "trailer", "keep-alive"})
_CREDENTIALS = frozenset({"authorization", "cookie", "proxy-authorization"})
_BAD_VALUE = re.compile(r"[\r\n\0]")
_MAX_METHOD_CHARS = 16
_MAX_HEADERS = 100
_CHUNK = 64 * 1024
#: Bytes of msgpack framing counted for the response map besides its headers and body.
_RESPONSE_OVERHEAD = 64


def canonical_header(name: str) -> str:
    """Go's canonical MIME header form: ``x-api-key`` -> ``X-Api-Key``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


class _Reaper:
    """One thread that shuts sockets down at their deadlines: a hard bound on a whole exchange,
    whatever a server does between bytes (socket timeouts bound one recv each, not the sum)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, socket.socket]] = []
        self._live: set[int] = set()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, deadline: float) -> int:
        with self._cond:
            ident = next(self._ids)
            heapq.heappush(self._heap, (deadline, ident, sock))
            self._live.add(ident)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="wasm-http-reaper", daemon=True)
                self._thread.start()
            self._cond.notify()
            return ident

    def forget(self, ident: int) -> None:
        with self._cond:
            self._live.discard(ident)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait(5.0)
                    if not self._heap:
                        self._thread = None
                        return
                    continue
                deadline, ident, sock = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                self._live.discard(ident)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


_REAPER = _Reaper()
#: Threads resolving host names for every plugin. A look-up cannot be cancelled: one that hangs (a
#: granted name whose DNS server never answers) holds its thread until the system resolver gives up
#: (seconds). So look-ups of one name share one thread, and a plugin has at most
#: `MAX_LOOKUPS_PER_PLUGIN` in flight: it takes that many hostile plugins to hold every thread.
RESOLVER_THREADS = 16
MAX_LOOKUPS_PER_PLUGIN = 2
_RESOLVER = concurrent.futures.ThreadPoolExecutor(max_workers=RESOLVER_THREADS, thread_name_prefix="wasm-http-dns")
_lookups_lock = threading.Lock()
_lookups: dict[tuple[str, int], concurrent.futures.Future[Any]] = {}
_lookups_of: dict[str, int] = {}


def _lookup(plugin: str, host: str, port: int) -> concurrent.futures.Future[Any]:
    """The look-up of (host, port) in flight, or a new one if the plugin may start one."""
    key = (host, port)
    with _lookups_lock:
        future = _lookups.get(key)
        if future is not None:
            return future
        if _lookups_of.get(plugin, 0) >= MAX_LOOKUPS_PER_PLUGIN:
            raise CapabilityError(EG_UNAVAILABLE, f"{MAX_LOOKUPS_PER_PLUGIN} look-ups of this plugin are still "
                                  "in flight")
        _lookups_of[plugin] = _lookups_of.get(plugin, 0) + 1
        future = _lookups[key] = _RESOLVER.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)

    def done(_: concurrent.futures.Future[Any]) -> None:
        with _lookups_lock:
            if _lookups.get(key) is future:
                del _lookups[key]
            left = _lookups_of.get(plugin, 1) - 1
            if left > 0:
                _lookups_of[plugin] = left
            else:
                _lookups_of.pop(plugin, None)

    future.add_done_callback(done)
    return future


def _resolve(plugin: str, host: str, port: int, seconds: float) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    future = _lookup(plugin, host, port)
    try:
        infos = future.result(timeout=max(seconds, 0.001))
    except concurrent.futures.TimeoutError:
        raise CapabilityError(EG_TIMEOUT, f"resolving {host} took longer than the time left") from None
    except OSError as exc:
        raise CapabilityError(EG_UNAVAILABLE, f"cannot resolve {host}: {exc}") from None
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


#: IPv6 prefixes whose low 32 bits are an IPv4 address the network may take the packet to: IPv4-compatible
#: (::/96, deprecated), IPv4-mapped and -translated, NAT64 (well-known and local-use).
_IPV4_CARRIERS = tuple(ipaddress.IPv6Network(n) for n in ("::/96", "::ffff:0:0/96", "::ffff:0:0:0/96",
                                                          "64:ff9b::/96", "64:ff9b:1::/48"))
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")  # deprecated; Python 3.11 calls it global


def _not_global(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `ip`, or an IPv4 address it carries (NAT64, 6to4, Teredo, IPv4-compatible), is not
    globally routable."""
    if not ip.is_global:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _SITE_LOCAL:
            return True
        carried = [ip.sixtofour, *(ip.teredo or ())]
        if any(ip in net for net in _IPV4_CARRIERS):
            carried.append(ipaddress.IPv4Address(ip.packed[12:]))
        return any(v4 is not None and not v4.is_global for v4 in carried)
    return False


def _address_refusal(address: str, grant: HttpGrant) -> str | None:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified:
        return f"{address} is a multicast or unspecified address"
    if _not_global(ip) and not (grant.names_address or grant.private_addresses):
        return (f"{address} is not a globally routable address (loopback, private, link-local, ...); "
                f"a grant reaches it only if it names it (an IP literal or localhost) or says "
                f"privateAddresses = true")
    return None


def _suggested_grant(scheme: str, host: str, port: int) -> str:
    default = 443 if scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}{'' if port == default else f':{port}'}/"


def _checked_request(req: Any, limits: Limits) -> tuple[str, str, dict[str, str], bytes, float | None]:
    if not isinstance(req, dict):
        raise CapabilityError(EG_INVALID, "the request is not a msgpack map")
    url = req.get("url")
    if not isinstance(url, str) or not url:
        raise CapabilityError(EG_INVALID, "the request has no url string")
    if len(url.encode()) > MAX_URL_BYTES:
        raise CapabilityError(EG_TOO_LARGE, f"the url is over {MAX_URL_BYTES} bytes")
    method = req.get("method", "GET")
    if not isinstance(method, str) or len(method) > _MAX_METHOD_CHARS or not _TOKEN.fullmatch(method):
        raise CapabilityError(EG_INVALID, "method must be an HTTP token of at most 16 characters")
    method = method.upper()
    if method in ("CONNECT", "TRACE"):
        raise CapabilityError(EG_INVALID, f"method {method} is not allowed")
    headers_in = req.get("headers") or {}
    if not isinstance(headers_in, dict) or len(headers_in) > _MAX_HEADERS:
        raise CapabilityError(EG_INVALID, f"headers must be a map of at most {_MAX_HEADERS} str -> str")
    headers: dict[str, str] = {}
    for name, value in headers_in.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise CapabilityError(EG_INVALID, "header names and values must be strings")
        if not _TOKEN.fullmatch(name):
            raise CapabilityError(EG_INVALID, f"header name {name[:64]!r} is not an HTTP token")
        lowered = name.lower()
        if lowered in _FORBIDDEN_HEADERS or lowered.startswith("proxy-"):
            raise CapabilityError(EG_INVALID, f"header {name} may not be set by a plugin")
        if _BAD_VALUE.search(value):
            raise CapabilityError(EG_INVALID, f"header {name} has CR, LF or NUL in its value")
        headers[canonical_header(name)] = value
    body = req.get("body", b"")
    if body is None:
        body = b""
    if isinstance(body, str):
        body = body.encode()
    if not isinstance(body, (bytes, bytearray)):
        raise CapabilityError(EG_INVALID, "body must be bin or str")
    timeout_ms = req.get("timeoutMs")
    if timeout_ms is not None and (isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or timeout_ms <= 0):
        raise CapabilityError(EG_INVALID, "timeoutMs must be a positive integer")
    return url, method, headers, bytes(body), (timeout_ms / 1000 if timeout_ms else None)


def _send(method: str, scheme: str, host: str, port: int, address: str, target: str, headers: dict[str, str],
          body: bytes, deadline: float, room: int) -> tuple[int, dict[str, str], bytes]:
    """One exchange with the checked address; (status, headers, body) or `CapabilityError`."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise CapabilityError(EG_TIMEOUT, "no time left for the request")
    sock = socket.create_connection((address, port), timeout=remaining)
    ident = _REAPER.watch(sock, deadline)
    try:
        if scheme == "https":
            # The TLS socket takes the file descriptor over: the reaper must watch it instead, from
            # before the handshake (which a server could trickle too).
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
            _REAPER.forget(ident)
            ident = _REAPER.watch(sock, deadline)
            sock.do_handshake()
        conn = http.client.HTTPConnection(host, port, timeout=remaining)
        conn.sock = sock  # connected and checked by us: http.client must not connect again
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            if body or method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            merged: dict[str, str] = {}
            for name, value in response.getheaders():
                key = canonical_header(name)
                merged[key] = f"{merged[key]}, {value}" if key in merged else value
            room -= sum(len(k) + len(v) + 10 for k, v in merged.items())
            if room < 0:
                raise CapabilityError(EG_TOO_LARGE, "the response headers are over max_http_response_bytes")
            chunks: list[bytes] = []
            while True:
                chunk = response.read1(min(_CHUNK, room + 1))
                if not chunk:
                    break
                room -= len(chunk)
                if room < 0:
                    raise CapabilityError(EG_TOO_LARGE, "the response is over max_http_response_bytes")
                chunks.append(chunk)
            # The reaper shutting the socket down at the deadline ends the body like an EOF would:
            # an answer cut there (or short of its Content-Length) is no answer.
            if time.monotonic() >= deadline:
                raise CapabilityError(EG_TIMEOUT, "the answer did not arrive within the time")
            if response.length:
                raise CapabilityError(EG_UNAVAILABLE, "the connection closed before the whole answer arrived")
            return response.status, merged, b"".join(chunks)
        finally:
            conn.close()
    finally:
        _REAPER.forget(ident)
        sock.close()


def http_request(plugin: str, grants: tuple[HttpGrant, ...], raw_request: bytes, deadline: float, limits: Limits,
                 warn: Callable[[str], None]) -> bytes:
    """Run one `http_request` call: the encoded response map, or `CapabilityError` with its code.
    ``deadline`` is the reaction's own (monotonic clock); ``warn`` writes to the plugin's log."""
    try:
        req = msgpack.unpackb(raw_request, raw=False, strict_map_key=True)
    except Exception:  # noqa: BLE001 - msgpack raises several types for bad input
        raise CapabilityError(EG_INVALID, "the request is not valid msgpack") from None
    url, method, headers, body, timeout = _checked_request(req, limits)
    now = time.monotonic()
    deadline = min(deadline, now + limits.http_timeout, now + timeout if timeout else deadline)
    origin: tuple[str, str, int] | None = None
    for _hop in range(MAX_REDIRECTS + 1):
        parts = parse_url(url)
        if isinstance(parts, str):
            raise CapabilityError(EG_INVALID, f"{url[:200]}: {parts}")
        scheme, host, port, path = parts
        if origin is not None and (scheme, host, port) != origin:
            headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIALS}
        origin = (scheme, host, port)
        grant = next((g for g in grants if g.covers(scheme, host, port, path)), None)
        if grant is None:
            warn(f"http: {url[:500]} is denied: it is under no grant of plugin {plugin!r}; the grant "
                 f"http = [\"{_suggested_grant(scheme, host, port)}\"] would allow it")
            raise CapabilityError(EG_DENIED, "the URL is under no grant")
        addresses = _resolve(plugin, host, port, deadline - time.monotonic())
        for address in addresses:
            refusal = _address_refusal(address, grant)
            if refusal is not None:
                warn(f"http: {url[:500]} is denied: {host} resolves to {refusal}")
                raise CapabilityError(EG_DENIED, refusal)
        split = urlsplit(url)
        target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        room = limits.max_http_response_bytes - _RESPONSE_OVERHEAD
        try:
            status, response_headers, response_body = _send(method, scheme, host, port, addresses[0], target,
                                                            headers, body, deadline, room)
        except CapabilityError:
            raise
        except TimeoutError:
            raise CapabilityError(EG_TIMEOUT, "the request took longer than its time") from None
        except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as exc:
            if time.monotonic() >= deadline:
                raise CapabilityError(EG_TIMEOUT, "the request took longer than its time") from None
            raise CapabilityError(EG_UNAVAILABLE, f"{type(exc).__name__}: {exc}") from None
        location = response_headers.get("Location")
        if status in _REDIRECTS and location:
            url = urljoin(url, location)
            if status == 303:
                method, body = "GET", b""
            continue
        encoded: bytes = msgpack.packb({"status": status, "headers": response_headers, "body": response_body},
                                       use_bin_type=True)
        if len(encoded) > limits.max_http_response_bytes:
            raise CapabilityError(EG_TOO_LARGE, "the response is over max_http_response_bytes")
        return encoded
    raise CapabilityError(EG_UNAVAILABLE, f"more than {MAX_REDIRECTS} redirects")
