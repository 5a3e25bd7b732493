"""Decoding a JSON request body so that every way it can be unusable is a ``ValueError`` with a reason.

``json.loads`` accepts two inputs the rest of the gateway cannot carry: nesting deeper than Python's
recursion limit (``RecursionError``, which would surface as a 500) and ``\\ud800``-style escapes of lone
UTF-16 surrogates, which decode to strings that are not valid Unicode and fail later, when the event is
encoded for a function, a plugin or the store. Both are refused here, where the client can be told.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack

__all__ = ["GO_EOF", "GO_UNEXPECTED_EOF", "loads", "loads_first_value", "non_json_value"]

#: Go's ``io.EOF`` and ``io.ErrUnexpectedEOF`` texts: what upstream's ``json.Decoder.Decode`` answered for
#: an empty body and for a body that ends inside its JSON value.
GO_EOF = "EOF"
GO_UNEXPECTED_EOF = "unexpected EOF"
_WHITESPACE = " \t\r\n"
_DECODER = json.JSONDecoder()


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


def loads_first_value(body: bytes | str) -> Any:
    """The first JSON value of ``body``, as upstream's Config API read a body (Go's ``json.Decoder.Decode``):
    what follows the value is not read. ``ValueError`` with Go's words for an empty body (``EOF``) and for
    a body that ends inside the value (``unexpected EOF``), else as :func:`loads` (its checks included)."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    start = len(text) - len(text.lstrip(_WHITESPACE))
    if start == len(text):
        raise ValueError(GO_EOF)
    try:
        _, end = _DECODER.raw_decode(text, start)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip(_WHITESPACE)) or exc.msg.startswith("Unterminated string"):
            raise ValueError(GO_UNEXPECTED_EOF) from None
        raise
    return loads(text[start:end])


def _has_lone_surrogate(raw: bytes) -> bool:
    """Cheap pre-check: a surrogate escape (``\\uD8xx``-``\\uDFxx``) appears at all."""
    lower = raw.lower()
    return any(f"\\ud{c}".encode() in lower for c in "89abcdef")


_JSON_SCALARS = (str, int, float, bool, type(None))


def non_json_value(value: Any) -> str | None:
    """Where ``value`` (a decoded map) holds something JSON cannot carry, and what it is, e.g.
    ``"data.blob is msgpack bin (bytes)"``; ``None`` when it is all maps, arrays, strings, numbers,
    booleans and nulls. A plugin's msgpack may decode to ``bytes`` (``bin``) or ``msgpack.ExtType`` /
    ``msgpack.Timestamp`` (``ext``), which json.dumps cannot encode. Iterative: no recursion to blow."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            # reversed, so that the first offending value in document order is the one named
            stack.extend((child, f"{where}.{key}" if where else str(key)) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((item[i], f"{where}[{i}]") for i in range(len(item) - 1, -1, -1))
        elif not isinstance(item, _JSON_SCALARS):
            return f"{where or 'the value'} is {_describe(item)}"
    return None


def _describe(item: Any) -> str:
    if isinstance(item, (bytes, bytearray, memoryview)):
        return "msgpack bin (bytes)"
    if isinstance(item, msgpack.ExtType):
        return f"msgpack ext (type {item.code})"
    if isinstance(item, msgpack.Timestamp):
        return "msgpack ext (type -1, a timestamp)"
    return f"a {type(item).__name__}"
