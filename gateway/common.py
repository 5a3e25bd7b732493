"""Rules every layer shares, defined once: the error body, the space-name rule, the 6 MiB payload
bound, the RFC 3339 timestamp, waiting with a timeout, and the secret in a URL.

It imports nothing from the gateway, so any module may use it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

__all__ = ["DEFAULT_SPACE", "FUNCTION_TYPES", "FunctionType", "MAX_PAYLOAD_BYTES", "NAME_PATTERN", "SECRET_MARKER", "error_body", "error_json", "go_json", "go_quote",
           "rfc3339",
           "space_problem", "url_password", "wait_with_timeout", "with_url_password"]

#: The function types (``type`` of a function): one provider each.
FunctionType = Literal["http", "awslambda", "awskinesis", "awsfirehose", "awssqs"]
FUNCTION_TYPES: tuple[str, ...] = get_args(FunctionType)

#: What Lambda accepts as a payload: the largest event body the Events API takes and the default
#: largest response an http function may answer.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024

DEFAULT_SPACE = "default"
#: Spaces, event type names and function ids share upstream's character set.
NAME_PATTERN = r"^[a-zA-Z0-9.\-_]+$"
_NAME = re.compile(NAME_PATTERN)
#: A space is at least this long (upstream's rule).
SPACE_MIN_LENGTH = 3

#: What responses show in place of a stored secret. Sending it back in a PUT keeps the stored secret.
SECRET_MARKER = "*****"


def url_password(url: str) -> str | None:
    """The password in a URL's userinfo (``https://user:PASSWORD@host/``), as written, or ``None``.
    It is a secret like ``awsSecretAccessKey``: stored, used, never echoed back."""
    netloc = urlsplit(url).netloc
    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        return None
    _, colon, password = userinfo.partition(":")
    return password if colon else None


def with_url_password(url: str, password: str) -> str:
    """``url`` with the password of its userinfo replaced (it must have one)."""
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}:{password}@{hostport}").geturl()


def space_problem(space: str) -> str | None:
    """Why ``space`` cannot name a space (None: it can)."""
    if len(space) < SPACE_MIN_LENGTH or not _NAME.match(space):
        return "a space is at least 3 characters of letters, digits, '.', '-' and '_'"
    return None


def error_body(*messages: str) -> dict[str, Any]:
    """The one error shape of both APIs, as upstream: ``{"errors": [{"message": ...}, ...]}``."""
    return {"errors": [{"message": m} for m in messages]}


def go_quote(text: str) -> str:
    """``text`` as Go's ``%q`` writes it (``strconv.Quote``): double quotes, backslash escapes for
    quotes, backslashes and control characters, printable characters (non-ASCII too) as they are.
    Upstream's error messages quote names and ids this way: ``Function "my.fn" not found.``"""
    out = ['"']
    for char in text:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable() or char == " ":
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n",
               "\r": "\\r", "\t": "\\t", "\v": "\\v"}

#: What Go's json.Encoder escapes that Python's json module (ensure_ascii=False) leaves alone.
_GO_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                                  "\u2028": "\\u2028", "\u2029": "\\u2029"})


def go_json(value: Any) -> bytes:
    """``value`` as Go's ``json.NewEncoder(w).Encode`` wrote it, which upstream used for every answer of
    both APIs: compact, UTF-8 (not ``\\u`` escapes), ``<``, ``>``, ``&``, U+2028 and U+2029 escaped
    (``SetEscapeHTML``'s default), then a newline."""
    return (json.dumps(value, separators=(",", ":"), ensure_ascii=False).translate(_GO_JSON_ESCAPES)
            + "\n").encode()


def error_json(*messages: str) -> bytes:
    """:func:`error_body` as the bytes both APIs answer (see :func:`go_json`)."""
    return go_json(error_body(*messages))


def rfc3339(moment: datetime | float | None = None, *, millis: bool = False) -> str:
    """``moment`` (a datetime, a Unix time, or now) as RFC 3339 UTC with a ``Z``: microseconds when it
    has any (or milliseconds with ``millis``), as ``datetime.isoformat`` writes them.

    With ``millis``, a Unix time (or now) is cut, not rounded, to the millisecond, exactly as the
    ``logging`` module's ``record.msecs`` and `wasm_abi.events.timestamp` (system events) do, e.g.
    ``2026-12-01T13:15:37.123Z``; so a log line's time and ``rfc3339(record.created, millis=True)`` agree."""
    if millis and not isinstance(moment, datetime):
        now = time.time() if moment is None else moment
        second = int(now)
        return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(second))}.{int((now - second) * 1000):03d}Z"
    if moment is None:
        moment = datetime.now(UTC)
    elif not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    text = moment.isoformat(timespec="milliseconds") if millis else moment.isoformat()
    return text.replace("+00:00", "Z")


async def wait_with_timeout(condition: asyncio.Condition, predicate: Callable[[], bool], timeout: float) -> bool:
    """Wait on ``condition`` until ``predicate()`` holds; False when ``timeout`` seconds ran out first."""
    async def reached() -> None:
        async with condition:
            await condition.wait_for(predicate)

    try:
        await asyncio.wait_for(reached(), timeout)
    except TimeoutError:
        return False
    return True
