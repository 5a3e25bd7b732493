"""The ``http`` provider: POST the CloudEvent to a URL.

Differences from upstream, both asked for by users: the timeout is the function's ``timeout`` (seconds,
default 5 as before), and any non-2xx answer is a failure (upstream only treated 500 as one), with the
status in the error message.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .base import ProviderConfigError, ProviderError, require

__all__ = ["DEFAULT_TIMEOUT", "HTTPProvider", "HTTPSession"]

DEFAULT_TIMEOUT = 5.0
_HEADERS = {"Content-Type": "application/cloudevents+json"}


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{userinfo.partition(':')[0]}:*****@{hostport}").geturl()


class HTTPSession:
    """One connection-pooling aiohttp session shared by every http function.

    aiohttp rather than httpx on this path: an outgoing call costs ~0.4 ms of CPU against ~1.6 ms
    (measured side by side against the same server), and every sync event makes one. The session
    is made on first use because aiohttp binds it to the running event loop.
    """

    def __init__(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections), auto_decompress=True)
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
            await asyncio.sleep(0)  # let the connector close its transports


class HTTPProvider:
    def __init__(self, config: dict[str, Any], session: HTTPSession) -> None:
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

    async def call(self, payload: bytes) -> bytes:
        try:
            async with self._session.get().post(
                self.url, data=payload, headers=_HEADERS, timeout=self._client_timeout, allow_redirects=False,
            ) as response:
                body = await response.read()
                status = response.status
        except TimeoutError:
            raise ProviderError(f"HTTP call to {self.display_url} timed out after {self.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise ProviderError(f"HTTP call to {self.display_url} failed: {type(exc).__name__}: "
                                f"{str(exc).replace(self.url, self.display_url)}") from None
        if not 200 <= status < 300:
            snippet = body[:200].decode("utf-8", errors="replace")
            raise ProviderError(f"HTTP call to {self.display_url} answered {status}: {snippet}")
        return body

    async def close(self) -> None:
        """The client is shared by the pool, which closes it."""
