"""Capabilities an operator grants a plugin (ABI.md section 7.1): kv, http and metrics.

A plugin gets none by default. `Grants` says which it has; `check_capability_import` refuses, at load,
a module importing a capability function it was not granted (kind ``not_granted``), naming the import
and the grant that would allow it. The host calls themselves are in `hostcalls`; the backends in `kv`,
`outbound_http` and `plugin_metrics`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .kv import KvStore
    from .plugin_metrics import PluginMetrics

Capability = Literal["kv", "http", "metrics"]

# -- the error codes every capability call returns (ABI.md section 7.1) ----------------------------
EG_OK = 0
EG_NOT_FOUND = -1
EG_INVALID = -2
EG_TOO_LARGE = -3
EG_QUOTA = -4
EG_UNAVAILABLE = -5
EG_DENIED = -6
EG_TIMEOUT = -7
EG_NOT_A_NUMBER = -8
EG_NO_FUEL = -9

ERROR_NAMES: dict[int, str] = {
    EG_OK: "EG_OK",
    EG_NOT_FOUND: "EG_NOT_FOUND",
    EG_INVALID: "EG_INVALID",
    EG_TOO_LARGE: "EG_TOO_LARGE",
    EG_QUOTA: "EG_QUOTA",
    EG_UNAVAILABLE: "EG_UNAVAILABLE",
    EG_DENIED: "EG_DENIED",
    EG_TIMEOUT: "EG_TIMEOUT",
    EG_NOT_A_NUMBER: "EG_NOT_A_NUMBER",
    EG_NO_FUEL: "EG_NO_FUEL",
}


class CapabilityError(Exception):
    """A capability call that fails with one of the ABI's error codes (never a trap)."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message or ERROR_NAMES.get(code, str(code)))
        self.code = code
        self.message = message


#: Each capability import: its capability and its type, as wasmtime prints value types.
CAPABILITY_IMPORTS: dict[str, tuple[Capability, list[str], list[str]]] = {
    "kv_get": ("kv", ["i32", "i32", "i32", "i32"], ["i32"]),
    "kv_set": ("kv", ["i32", "i32", "i32", "i32", "i64"], ["i32"]),
    "kv_delete": ("kv", ["i32", "i32"], ["i32"]),
    "kv_incr": ("kv", ["i32", "i32", "i64", "i64", "i32"], ["i32"]),
    "kv_cas": ("kv", ["i32", "i32", "i32", "i32", "i32", "i32", "i64"], ["i32"]),
    "http_request": ("http", ["i32", "i32"], ["i32"]),
    "http_response": ("http", ["i32", "i32"], ["i32"]),
    "metric": ("metrics", ["i32", "i32", "i32", "i32", "i32", "f64"], ["i32"]),
}

#: How an operator grants each capability in plugins.toml (quoted in load errors).
GRANT_SYNTAX: dict[Capability, str] = {
    "kv": "kv = true",
    "http": 'http = ["<URL prefix>"]',
    "metrics": "metrics = true",
}

#: Most URL prefixes one plugin may be granted, and the longest one.
MAX_HTTP_GRANTS = 100
MAX_GRANT_CHARS = 2048


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


@dataclass(frozen=True)
class HttpGrant:
    """One URL prefix a plugin may send requests to (ABI.md 7.1, "http").

    ``private_addresses`` lets the prefix's host name resolve to an address that is not globally
    routable (loopback, private, link-local, ...); a prefix whose host is an IP literal or
    ``localhost`` names its address explicitly and needs no such flag.
    """

    prefix: str
    private_addresses: bool = False
    scheme: str = field(init=False, repr=False, compare=False)
    host: str = field(init=False, repr=False, compare=False)
    port: int = field(init=False, repr=False, compare=False)
    path: str = field(init=False, repr=False, compare=False)
    names_address: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not self.prefix:
            raise ValueError("an http grant must be a non-empty URL prefix string")
        if len(self.prefix) > MAX_GRANT_CHARS:
            raise ValueError(f"http grant is {len(self.prefix)} characters, over {MAX_GRANT_CHARS}")
        if not isinstance(self.private_addresses, bool):
            raise ValueError("privateAddresses of an http grant must be true or false")
        parts = parse_url(self.prefix)
        if isinstance(parts, str):
            raise ValueError(f"http grant {self.prefix!r}: {parts}")
        scheme, host, port, path = parts
        if "?" in self.prefix or "#" in self.prefix:
            raise ValueError(f"http grant {self.prefix!r}: a prefix has no query or fragment")
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "names_address", host == "localhost" or _is_ip_literal(host))

    def covers(self, scheme: str, host: str, port: int, path: str) -> bool:
        """Whether a URL (as `parse_url` splits it) is under this prefix."""
        if (scheme, host, port) != (self.scheme, self.host, self.port):
            return False
        if self.path.endswith("/"):
            return path.startswith(self.path)
        # "/api" covers "/api" and "/api/...", not "/apiary"
        return path == self.path or path.startswith(self.path + "/")

    def to_json(self) -> str | dict[str, object]:
        if self.private_addresses:
            return {"prefix": self.prefix, "privateAddresses": True}
        return self.prefix


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


_DOT_SEGMENTS = ("/./", "/../")


def parse_url(url: str) -> tuple[str, str, int, str] | str:
    """``(scheme, host, port, path)`` of an http(s) URL, host lower-case; or a string saying why
    the URL is refused (user information, dot segments, backslashes, another scheme, no host)."""
    if any(c in url for c in "\\\r\n\t\0 "):
        return "a URL must not contain backslashes, whitespace or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return "only http and https URLs are allowed"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "a URL must not contain user information"
    host = (parts.hostname or "").lower()
    if not host:
        return "the URL has no host"
    path = parts.path or "/"
    lowered = path.lower().replace("%2e", ".").replace("%2f", "/")
    if any(seg in lowered + "/" for seg in _DOT_SEGMENTS) or lowered in (".", ".."):
        return "a URL must not contain dot segments (/./ or /../)"
    return scheme, host, port if port is not None else _default_port(scheme), path


@dataclass(frozen=True)
class Grants:
    """The capabilities one plugin is granted; nothing by default.

    - ``kv``: the kv backend its namespace lives in (`kv.MemoryKv`, or a networked one); the
      namespace is the plugin's name.
    - ``http``: the URL prefixes it may send requests to (empty: no http).
    - ``metrics``: the store of its metric series (`plugin_metrics.PluginMetrics`); keep the same
      object across reloads of the plugin to keep its series.
    """

    kv: KvStore | None = None
    http: tuple[HttpGrant, ...] = ()
    metrics: PluginMetrics | None = None

    def __post_init__(self) -> None:
        grants = tuple(HttpGrant(g) if isinstance(g, str) else g for g in self.http)
        for g in grants:
            if not isinstance(g, HttpGrant):
                raise TypeError(f"Grants.http holds URL prefixes (str or HttpGrant), got {type(g).__name__}")
        if len(grants) > MAX_HTTP_GRANTS:
            raise ValueError(f"{len(grants)} http grants, over the most of {MAX_HTTP_GRANTS}")
        object.__setattr__(self, "http", grants)

    def has(self, capability: Capability) -> bool:
        if capability == "kv":
            return self.kv is not None
        if capability == "http":
            return bool(self.http)
        return self.metrics is not None

    @property
    def names(self) -> list[Capability]:
        """The capabilities granted, in a fixed order."""
        order: tuple[Capability, ...] = ("kv", "http", "metrics")
        return [c for c in order if self.has(c)]

    @property
    def may_wait(self) -> bool:
        """Whether a host call of this plugin may wait on the network (http, or a networked kv):
        its sync reactions then run on its own threads, never inline on an event loop."""
        return bool(self.http) or (self.kv is not None and self.kv.blocking)


NO_GRANTS = Grants()
