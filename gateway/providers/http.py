"""The ``http`` provider: POST the CloudEvent to a URL.

Differences from upstream, both asked for by users: the timeout is the function's ``timeout`` (seconds,
default 5 as before), and any non-2xx answer is a failure (upstream only treated 500 as one), with the
status in the error message. Upstream also read a function's answer whole, however big; here the body is
read chunk by chunk and a function answering more than ``--max-function-response-bytes`` (default 6 MiB,
what Lambda allows a synchronous answer) fails the call before the gateway holds more than that in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
import aiohttp

from gateway.common import MAX_PAYLOAD_BYTES, SECRET_MARKER, url_password, with_url_password
from gateway.observe.observation import current as current_observation

from .base import ProviderConfigError, ProviderError, require
from .dns import FunctionResolver

__all__ = ["ATTEMPT_HEADER", "DEFAULT_MAX_RESPONSE_BYTES", "DEFAULT_TIMEOUT", "HTTPProvider", "HTTPSession"]

DEFAULT_TIMEOUT = 5.0
#: AWS Lambda's limit on a synchronous invocation's response payload.
DEFAULT_MAX_RESPONSE_BYTES = MAX_PAYLOAD_BYTES
_HEADERS = {"Content-Type": "application/cloudevents+json"}
#: Sent on every async delivery: which attempt this is (1, 2, ...); sync calls and authorizers go without.
ATTEMPT_HEADER = "Event-Gateway-Delivery-Attempt"
_ATTEMPT_HEADERS = [{**_HEADERS, ATTEMPT_HEADER: str(n)} for n in range(0, 101)]


def _headers(attempt: int | None) -> dict[str, str]:
    if attempt is None:
        return _HEADERS
    if 0 <= attempt < len(_ATTEMPT_HEADERS):
        return _ATTEMPT_HEADERS[attempt]
    return {**_HEADERS, ATTEMPT_HEADER: str(attempt)}


def _without_password(url: str) -> str:
    """``url`` with its password (if any) masked as the Config API masks it."""
    return with_url_password(url, SECRET_MARKER) if url_password(url) is not None else url


#: Seconds a pooled connection to a function may stay idle before the gateway closes it.
KEEPALIVE_SECONDS = 4.0
#: Errors of a connection that died before any answer arrived: a pooled connection the function closed
#: while it was idle (its FIN raced the reuse). `HTTPProvider.call` retries those once on a new connection.
_STALE_CONNECTION = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


class _DiedBeforeAnswer(Exception):
    """One of the `_STALE_CONNECTION` errors (``error``) raised before any answer arrived: the only failure
    `HTTPProvider.call` sends again. Never leaves this module: `call` turns it into a `ProviderError`."""

    def __init__(self, error: aiohttp.ClientError) -> None:
        super().__init__(str(error))
        self.error = error


class HTTPSession:
    """One connection-pooling aiohttp session shared by every http function.

    aiohttp rather than httpx on this path: an outgoing call costs ~0.4 ms of CPU against ~1.6 ms
    (measured side by side against the same server), and every sync event makes one. The session
    is made on first use because aiohttp binds it to the running event loop. Host names are resolved by
    c-ares on the loop (`FunctionResolver`), never on the loop's few executor threads, which names that
    never resolve could all hold; aiohttp's DNS cache (10 s) is kept. The resolver is closed with the session.
    """

    def __init__(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._resolver: FunctionResolver | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Idle connections are dropped after KEEPALIVE_SECONDS, below the 5 s after which Node, Hypercorn
            # and uvicorn close theirs: a pooled connection the function closed is rarely picked up again
            # (and `call` retries once when it is).
            self._resolver = FunctionResolver()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=KEEPALIVE_SECONDS,
                                               resolver=self._resolver),
                auto_decompress=True)
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
            await asyncio.sleep(0)  # let the connector close its transports
        if self._resolver is not None:
            # The connector does not close a resolver it was given: cancels its pending lookups, frees c-ares.
            await self._resolver.close()
            self._resolver = None


def _size(limit: int) -> str:
    """``6291456 bytes (6 MiB)``: the exact number an operator sets, and a readable one."""
    if limit >= 1024 * 1024 and limit % (1024 * 1024) == 0:
        return f"{limit} bytes ({limit // (1024 * 1024)} MiB)"
    return f"{limit} bytes"


class HTTPProvider:
    def __init__(self, config: dict[str, Any], session: HTTPSession, *,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self.url = require(config, "url", "http")
        if not self.url.startswith(("http://", "https://")):
            raise ProviderConfigError(f"http provider: 'url' must be an http(s) URL, got {self.url!r}")
        timeout = config.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ProviderConfigError(f"http provider: 'timeout' must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        # What errors (and so logs and invocationFailed events) show: never the URL's password.
        self.display_url = _without_password(self.url)
        self._client_timeout = aiohttp.ClientTimeout(total=self.timeout)
        self._session = session
        self.max_response_bytes = max_response_bytes

    async def call(self, payload: bytes, *, attempt: int | None = None,
                   headers: Mapping[str, str] | None = None) -> bytes:
        """``headers``: sent besides the gateway's own (the trace's ``traceparent``)."""
        sent = _headers(attempt) if headers is None else {**_headers(attempt), **headers}
        try:
            try:
                status, body = await self._post(payload, sent)
            except _DiedBeforeAnswer:
                # Most likely a pooled connection the function had closed while idle. Once more, on a new
                # connection (the pool drops the dead one).
                status, body = await self._post(payload, sent)
        except _DiedBeforeAnswer as died:
            raise self._failed(died.error) from None
        except TimeoutError:
            raise ProviderError(f"HTTP call to {self.display_url} timed out after {self.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise self._failed(exc) from None
        if not 200 <= status < 300:
            snippet = body[:200].decode("utf-8", errors="replace")
            raise ProviderError(f"HTTP call to {self.display_url} answered {status}: {snippet}")
        return body

    def _failed(self, exc: aiohttp.ClientError) -> ProviderError:
        return ProviderError(f"HTTP call to {self.display_url} failed: {type(exc).__name__}: "
                             f"{str(exc).replace(self.url, self.display_url)}")

    async def _post(self, payload: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """One POST: the status and the bounded body. Raises `_DiedBeforeAnswer` when the connection died
        before any answer arrived (safe to send again), aiohttp's own error when it died after."""
        response_seen = False
        try:
            async with self._session.get().post(
                self.url, data=payload, headers=headers, timeout=self._client_timeout, allow_redirects=False,
            ) as response:
                response_seen = True
                status = response.status
                if (observation := current_observation()) is not None:
                    observation.call_status = status
                return status, await self._read_bounded(response)
        except _STALE_CONNECTION as exc:
            if response_seen or isinstance(exc, aiohttp.ClientConnectorDNSError):
                # An answer had begun (the function got the request), or the host name did not resolve (no
                # connection was ever made, stale or not; a second lookup would only double the wait): no retry.
                raise
            raise _DiedBeforeAnswer(exc) from exc

    async def _read_bounded(self, response: aiohttp.ClientResponse) -> bytes:
        """The response body, read chunk by chunk, failing as soon as it passes ``max_response_bytes``.

        Counted after decompression (the session decompresses), so a small gzip bomb is caught too. A
        ``Content-Length`` over the limit on an uncompressed body fails before reading anything; one within it
        is read in one call (the parser stops at the declared length). Leaving
        the body unread makes aiohttp close that connection rather than return it to the pool.
        """
        limit = self.max_response_bytes
        declared = response.content_length
        identity = response.headers.get("Content-Encoding", "identity") == "identity"
        if declared is not None and identity:
            if declared > limit:
                raise self._too_large(response.status, f"it declares Content-Length {declared}")
            # Framed by its declared length, within the limit: aiohttp's parser reads no further.
            return await response.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise self._too_large(response.status, f"{size} bytes had arrived when reading stopped")
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, status: int, detail: str) -> ProviderError:
        return ProviderError(
            f"HTTP call to {self.display_url} failed: the function's response (status {status}) is larger than "
            f"the limit of {_size(self.max_response_bytes)} ({detail}); raise --max-function-response-bytes "
            f"if the function must answer more")

    async def close(self) -> None:
        """The client is shared by the pool, which closes it."""
