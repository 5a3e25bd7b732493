"""Decoding a JSON request body so that every way it can be unusable is a ``ValueError`` with a reason.

``json.loads`` accepts two inputs the rest of the gateway cannot carry: nesting deeper than Python's
recursion limit (``RecursionError``, which would surface as a 500) and ``\\ud800``-style escapes of lone
UTF-16 surrogates, which decode to strings that are not valid Unicode and fail later, when the event is
encoded for a function, a plugin or the store. Both are refused here, where the client can be told.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["loads"]


def loads(body: bytes | str) -> Any:
    """The decoded JSON value; ``ValueError`` (``json.JSONDecodeError`` for syntax) on any problem."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    raw = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
    if b"\\u" in raw and _has_lone_surrogate(raw):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("JSON contains an escaped lone UTF-16 surrogate (\\ud800-\\udfff), "
                             "which is not a Unicode character") from None
    return value


def _has_lone_surrogate(raw: bytes) -> bool:
    """Cheap pre-check: a surrogate escape (``\\uD8xx``-``\\uDFxx``) appears at all."""
    lower = raw.lower()
    return any(f"\\ud{c}".encode() in lower for c in "89abcdef")
