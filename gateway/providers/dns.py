"""The resolver of the gateway's outgoing function calls: c-ares (aiodns), not threads.

aiohttp's default resolver runs glibc's ``getaddrinfo`` on the event loop's default executor (a few threads;
uvloop: libuv's 4-thread pool), and a thread stays blocked until glibc gives up on the name. A handful of
concurrent calls to functions whose host names never resolve (anyone who can register a function can make
those) used to hold every thread, and the calls of every other function addressed by host name waited
behind them until their own timeout. c-ares keeps all lookups on sockets served by one event thread per
channel: a hanging name holds one query, never a thread others need. Each lookup is bounded by
`LOOKUP_TIMEOUT_SECONDS` per try and `LOOKUP_TRIES` tries (these override ``resolv.conf``'s ``options
timeout/attempts``), so a lookup abandoned by its call's timeout is not kept past that bound either. c-ares
reads ``/etc/hosts`` (``localhost`` and friends resolve as before) and ``/etc/resolv.conf``.

``aiodns`` is a dependency and is imported here, when the gateway starts: without it the gateway does not
start, rather than fall back to the threaded resolver.
"""

from __future__ import annotations

import socket

import aiodns
import aiohttp
from aiohttp.abc import ResolveResult

__all__ = ["LOOKUP_TIMEOUT_SECONDS", "LOOKUP_TRIES", "FunctionResolver"]

#: Seconds c-ares waits for a name server's answer on the first try (later tries back off, doubling).
LOOKUP_TIMEOUT_SECONDS = 1.0
#: Tries per name server before a lookup fails: at most about 1 + 2 = 3 s for a name that never answers.
LOOKUP_TRIES = 2

#: c-ares's errors that glibc reports too, with glibc's words: the error a function call shows for a name
#: that does not exist reads as it did with the threaded resolver.
_GLIBC_WORDS = {
    aiodns.error.ARES_ENOTFOUND: "Name or service not known",
    aiodns.error.ARES_ENODATA: "No address associated with hostname",
}


class FunctionResolver(aiohttp.AsyncResolver):
    """aiohttp's c-ares resolver with the gateway's lookup bounds and glibc's words for a missing name.

    Made on the running event loop; the session that uses it closes it (`aiohttp.TCPConnector` does not
    close a resolver it was given).
    """

    def __init__(self) -> None:
        super().__init__(timeout=LOOKUP_TIMEOUT_SECONDS, tries=LOOKUP_TRIES)

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        try:
            return await super().resolve(host, port, family)
        except OSError as exc:
            cause = exc.__cause__
            if isinstance(cause, aiodns.error.DNSError) and cause.args and cause.args[0] in _GLIBC_WORDS:
                raise OSError(None, _GLIBC_WORDS[cause.args[0]]) from cause
            raise
