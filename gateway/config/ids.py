"""Deterministic ids, computed exactly as upstream did so existing clients can predict them.

A subscription's id is derived from what makes it unique, so creating the same subscription twice is a
409 rather than a duplicate, and a client can address it without listing first.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

__all__ = ["cors_id", "path_escape", "subscription_id"]

# Go's url.PathEscape leaves RFC 3986 unreserved characters and these sub-delimiters alone.
_PATH_SEGMENT_SAFE = "$&+,:;=@"


def path_escape(path: str) -> str:
    """Go's ``url.PathEscape``: escapes ``/`` and ``?`` (and non-ASCII) but keeps ``:`` or ``@``."""
    return quote(path, safe=_PATH_SEGMENT_SAFE)


def subscription_id(type: str, event_type: str, function_id: str, path: str, method: str) -> str:
    """base64url (no padding) of ``async,<eventType>,<functionId>,<path>,<method>`` for async
    subscriptions and ``sync,<eventType>,<path>,<method>`` for sync ones (one sync subscriber per
    method, path and event type, whatever the function)."""
    if type == "sync":
        raw = f"sync,{event_type},{path_escape(path)},{method}"
    else:
        raw = f"{type},{event_type},{function_id},{path_escape(path)},{method}"
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def cors_id(method: str, path: str) -> str:
    """``<METHOD><PathEscape(path)>``, e.g. ``GET%2Fusers``."""
    return method + path_escape(path)
