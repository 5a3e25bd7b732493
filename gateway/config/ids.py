"""Deterministic ids, computed exactly as upstream did so existing clients can predict them.

A subscription's id is derived from what makes it unique, so creating the same subscription twice is a
409 rather than a duplicate, and a client can address it without listing first.

Before issue 12 the path was escaped without escaping ``,`` and ``;`` (Go's ``url.PathEscape`` escapes
both). :func:`canonical_id` turns an id of either form into today's, so a client holding an old-form id
still reaches its document, and :mod:`gateway.config.migrate` re-keys documents stored under the old form.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import quote, unquote

__all__ = ["canonical_id", "cors_id", "legacy_path_escape", "path_escape", "subscription_id"]

# Go's url.PathEscape (encodePathSegment) leaves RFC 3986 unreserved characters and these alone; it
# escapes '/', ';', ',' and '?' (and everything else).
_PATH_SEGMENT_SAFE = "$&+:=@"
# The rule before issue 12, which also kept ',' and ';'.
_LEGACY_SAFE = "$&+,:;=@"


def path_escape(path: str) -> str:
    """Go's ``url.PathEscape``: ``/a,b;c`` -> ``%2Fa%2Cb%3Bc``; keeps ``:``, ``@``, ``$``, ``&``, ``+``, ``=``."""
    return quote(path, safe=_PATH_SEGMENT_SAFE)


def legacy_path_escape(path: str) -> str:
    """The escaping of ids stored before issue 12 (``,`` and ``;`` kept as they are)."""
    return quote(path, safe=_LEGACY_SAFE)


def subscription_id(type: str, event_type: str, function_id: str, path: str, method: str, *,
                    legacy: bool = False) -> str:
    """base64url (no padding) of ``async,<eventType>,<functionId>,<path>,<method>`` for async
    subscriptions and ``sync,<eventType>,<path>,<method>`` for sync ones (one sync subscriber per
    method, path and event type, whatever the function)."""
    escaped = legacy_path_escape(path) if legacy else path_escape(path)
    if type == "sync":
        raw = f"sync,{event_type},{escaped},{method}"
    else:
        raw = f"{type},{event_type},{function_id},{escaped},{method}"
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def cors_id(method: str, path: str, *, legacy: bool = False) -> str:
    """``<METHOD><PathEscape(path)>``, e.g. ``GET%2Fusers``."""
    return method + (legacy_path_escape(path) if legacy else path_escape(path))


def canonical_id(kind: str, id: str) -> str:
    """``id`` of a subscription (``kind`` ``"subscriptions"``) or CORS configuration (``"cors"``) in
    today's form, whether it was made under the old escaping rule or the current one; any other id,
    or one that is not an id this gateway makes, is returned unchanged."""
    if kind == "cors":
        method, slash, rest = id.partition("%2F")
        if not slash or not method.isalpha():
            return id
        return method + path_escape(unquote("%2F" + rest))
    if kind != "subscriptions":
        return id
    try:
        raw = base64.urlsafe_b64decode(id + "=" * (-len(id) % 4)).decode()
    except (binascii.Error, ValueError):
        return id
    parts = raw.split(",")
    # Event types, function ids and methods have no ',': everything between them is the path.
    fixed = {"sync": 2, "async": 3}.get(parts[0])
    if fixed is None or len(parts) < fixed + 2:
        return id
    path = unquote(",".join(parts[fixed:-1]))
    if not path.startswith("/"):
        return id
    if parts[0] == "sync":
        return subscription_id("sync", parts[1], "", path, parts[-1])
    return subscription_id("async", parts[1], parts[2], path, parts[-1])
