"""The sync response object a function returns: ``{statusCode, headers, body, isBase64Encoded}``.

Upstream required this shape (else 500 "HTTP response object malformed"). ``isBase64Encoded`` is new:
it lets a function return a binary body (upstream issue #289).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

__all__ = ["MalformedResponse", "SyncResponse", "parse_sync_response"]


class MalformedResponse(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SyncResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def parse_sync_response(raw: bytes) -> SyncResponse:
    try:
        value = json.loads(raw)
    except ValueError:
        raise MalformedResponse("response is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedResponse("response is not a JSON object")
    status = value.get("statusCode", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise MalformedResponse("statusCode must be an integer HTTP status")
    headers = value.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise MalformedResponse("headers must be an object of strings")
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
    return SyncResponse(status, {str(k): v for k, v in headers.items()}, data)
