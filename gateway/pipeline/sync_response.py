"""The sync response object a function returns: ``{statusCode, headers, body, isBase64Encoded}``.

Upstream required this shape (else 500 "HTTP response object malformed"). ``isBase64Encoded`` is new:
it lets a function return a binary body (upstream issue #289).

Headers that describe the function's own connection or message framing (``Content-Length``,
``Transfer-Encoding``, ``Connection`` and the other hop-by-hop headers of RFC 9110 section 7.6.1) are
dropped: the gateway frames the body it sends itself, and passing a function's ``Content-Length: 999``
through with a two-byte body left the client waiting for bytes that never came.

A response whose function set no ``Content-Type`` gets the one Go's ``net/http`` sniffed from the body
(:func:`typed_headers`, ``gateway/pipeline/sniff.py``), as the upstream gateway's clients got it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from gateway.events.json_body import loads

from .sniff import detect_content_type

__all__ = ["DROPPED_HEADERS", "MalformedResponse", "SyncResponse", "parse_sync_response", "typed_headers"]

#: Lower-case names of the function headers that never reach the client.
DROPPED_HEADERS = frozenset({
    "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te", "trailer",
    "upgrade", "proxy-authenticate", "proxy-authorization",
})
# RFC 9110 token characters for a field name; a value may not contain CR, LF or NUL (response splitting).
_FIELD_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\r\n\x00]")


class MalformedResponse(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SyncResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def parse_sync_response(raw: bytes) -> SyncResponse:
    try:
        value = loads(raw)
    except ValueError:
        raise MalformedResponse("response is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedResponse("response is not a JSON object")
    status = value.get("statusCode", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        # 1xx are interim answers that cannot end an HTTP exchange.
        raise MalformedResponse(f"statusCode must be an integer from 200 to 599, got {status!r}")
    headers = value.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise MalformedResponse("headers must be an object of strings")
    for name, header_value in headers.items():
        if not _FIELD_NAME.match(name):
            raise MalformedResponse(f"header name {name!r} is not a valid HTTP field name")
        if _BAD_VALUE.search(header_value):
            raise MalformedResponse(f"header {name!r} has a value with CR, LF or NUL")
    body = value.get("body")
    if body is None:
        data = b""
    elif isinstance(body, str):
        if value.get("isBase64Encoded") is True:
            try:
                data = base64.b64decode(body, validate=True)
            except binascii.Error:
                raise MalformedResponse("body is not valid base64 although isBase64Encoded is true") from None
        else:
            data = body.encode()
    else:
        raise MalformedResponse("body must be a string")
    return SyncResponse(status, {str(k): v for k, v in headers.items() if str(k).lower() not in DROPPED_HEADERS},
                        data)


#: Statuses whose answers carry no body (Go's ``bodyAllowedForStatus``): nothing to sniff.
_NO_BODY_STATUSES = frozenset({204, 304})


def typed_headers(response: SyncResponse) -> dict[str, str]:
    """The response's headers, with the ``Content-Type`` Go's server gave an untyped one: when the function
    set none (in any case; an empty value counts as set, as in Go) and the body is not empty, the type
    ``http.DetectContentType`` sniffs from its first 512 bytes (``text/html; charset=utf-8``,
    ``text/plain; charset=utf-8``, ``application/octet-stream``, ...). A function's own header always wins."""
    if (not response.body or response.status in _NO_BODY_STATUSES
            or any(name.lower() == "content-type" for name in response.headers)):
        return response.headers
    return {**response.headers, "Content-Type": detect_content_type(response.body)}
