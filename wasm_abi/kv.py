"""The kv capability's backends (ABI.md section 7.1, "kv"): what a `KvStore` must do, and `MemoryKv`.

A backend holds one namespace per plugin (the plugin's name); every call names it. Sizes of keys and
values are checked by the host call before the backend sees them; the backend enforces the quotas of
the whole namespace (`Limits.max_kv_keys`, `Limits.max_kv_bytes`), atomically with the write, and
raises `CapabilityError` with the ABI's code for anything that is not a success.

`MemoryKv` is the embedded default: per process (with ``--processes N`` each process has its own, so a
rate limit of N per window becomes N per window per process), fast (no I/O: safe to call from a
reaction running inline on an event loop), thread-safe. A networked backend (Redis) sets
``blocking = True``: its plugins' sync reactions then run on their own threads.
"""

from __future__ import annotations

import heapq
import re
import threading
import time
from collections.abc import Callable
from typing import Protocol

from .capabilities import EG_NOT_A_NUMBER, EG_QUOTA, CapabilityError
from .limits import Limits

#: Longest TTL a kv call may set, in milliseconds (a year); 0 means "never expires".
MAX_TTL_MS = 31_536_000_000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_DECIMAL = re.compile(rb"-?[0-9]{1,19}")


def parse_counter(value: bytes) -> int:
    """The int64 a counter value holds (ASCII decimal); `EG_NOT_A_NUMBER` otherwise."""
    if not _DECIMAL.fullmatch(value):
        raise CapabilityError(EG_NOT_A_NUMBER, "the stored value is not a decimal integer")
    number = int(value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise CapabilityError(EG_NOT_A_NUMBER, "the stored value is outside int64")
    return number


def add_checked(current: int, delta: int) -> int:
    total = current + delta
    if not INT64_MIN <= total <= INT64_MAX:
        raise CapabilityError(EG_NOT_A_NUMBER, "the sum would overflow int64")
    return total


class KvStore(Protocol):
    """A kv backend. ``timeout`` is the most a call may wait, in seconds (a networked backend raises
    `EG_TIMEOUT` after it; an in-process one never waits). ``ttl_ms`` 0 means no expiry."""

    #: Whether a call may wait on the network (sync reactions of its plugins then run on threads).
    blocking: bool

    def get(self, namespace: str, key: bytes, timeout: float = 1.0) -> bytes | None: ...

    def set(self, namespace: str, key: bytes, value: bytes, ttl_ms: int = 0, limits: Limits | None = None,
            timeout: float = 1.0) -> None: ...

    def delete(self, namespace: str, key: bytes, timeout: float = 1.0) -> bool: ...

    def incr(self, namespace: str, key: bytes, delta: int, ttl_ms: int = 0, limits: Limits | None = None,
             timeout: float = 1.0) -> int: ...

    def cas(self, namespace: str, key: bytes, expected: bytes | None, value: bytes, ttl_ms: int = 0,
            limits: Limits | None = None, timeout: float = 1.0) -> bool: ...

    def clear(self, namespace: str) -> None:
        """Drop every key of a namespace (a plugin removed for good)."""
        ...

    def close(self) -> None: ...


_NEVER = float("inf")
_DEFAULT_LIMITS = Limits()


#: Bytes a counter (a value `incr` wrote, kept as an int) counts for in the quota: the longest int64.
COUNTER_BYTES = 20


def _size(value: bytes | int) -> int:
    return COUNTER_BYTES if isinstance(value, int) else len(value)


def _as_bytes(value: bytes | int) -> bytes:
    return b"%d" % value if isinstance(value, int) else value


class _Namespace:
    __slots__ = ("bytes", "data", "heap")

    def __init__(self) -> None:
        # key -> (value, expiry on the monotonic clock); a counter written by `incr` is kept as an
        # int (no parsing on the next increment) and read as its ASCII decimal
        self.data: dict[bytes, tuple[bytes | int, float]] = {}
        self.bytes = 0  # keys + values of the entries in data
        self.heap: list[tuple[float, bytes]] = []  # (expiry, key); stale entries are skipped

    def live(self, key: bytes, now: float) -> bytes | int | None:
        entry = self.data.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            self.remove(key, entry[0])
            return None
        return entry[0]

    def remove(self, key: bytes, value: bytes | int) -> None:
        del self.data[key]
        self.bytes -= len(key) + _size(value)

    def purge(self, now: float, most: int) -> None:
        """Look at up to `most` expired heap entries (oldest expiry first), dropping the keys still
        live with that expiry. Stale entries (of keys rewritten or deleted since) count too, so one
        call's work is bounded whatever a plugin piled up; each write pushes one, and looks at four."""
        heap, data = self.heap, self.data
        while heap and most > 0 and heap[0][0] <= now:
            expiry, key = heapq.heappop(heap)
            most -= 1
            entry = data.get(key)
            if entry is not None and entry[1] == expiry:
                self.remove(key, entry[0])
        if len(heap) > 2 * len(data) + 64:  # stale entries of keys rewritten or deleted
            self.heap = [(e, k) for k, (_, e) in data.items() if e != _NEVER]
            heapq.heapify(self.heap)

    def put(self, key: bytes, value: bytes | int, ttl_ms: int, now: float, limits: Limits) -> None:
        """Store `value` at `key` if the quotas allow it (`EG_QUOTA` otherwise, nothing changed)."""
        old = self.data.get(key)
        grows_keys = old is None
        new_bytes = self.bytes + _size(value) - (_size(old[0]) if old is not None else -len(key))
        if (grows_keys and len(self.data) >= limits.max_kv_keys) or new_bytes > limits.max_kv_bytes:
            self.purge(now, len(self.heap))  # expired keys do not count: drop them all, then look again
            old = self.data.get(key)
            grows_keys = old is None
            new_bytes = self.bytes + _size(value) - (_size(old[0]) if old is not None else -len(key))
            if grows_keys and len(self.data) >= limits.max_kv_keys:
                raise CapabilityError(EG_QUOTA, f"the namespace holds {len(self.data)} keys, the most "
                                      f"allowed (max_kv_keys {limits.max_kv_keys})")
            if new_bytes > limits.max_kv_bytes:
                raise CapabilityError(EG_QUOTA, f"the namespace would hold {new_bytes} bytes, over "
                                      f"max_kv_bytes {limits.max_kv_bytes}")
        expiry = now + ttl_ms / 1000 if ttl_ms else _NEVER
        self.data[key] = (value, expiry)
        self.bytes = new_bytes
        if ttl_ms:
            heapq.heappush(self.heap, (expiry, key))


class MemoryKv:
    """In-process kv backend: one dict per namespace under one lock; TTLs on the monotonic clock.

    Expired entries are dropped when read, a few at each write, and all at once when a write would
    otherwise go over a quota, so expired keys never count against it.
    """

    blocking = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._namespaces: dict[str, _Namespace] = {}
        self._clock = clock

    def _ns(self, namespace: str) -> _Namespace:
        ns = self._namespaces.get(namespace)
        if ns is None:
            ns = self._namespaces[namespace] = _Namespace()
        return ns

    def get(self, namespace: str, key: bytes, timeout: float = 1.0) -> bytes | None:
        with self._lock:
            ns = self._namespaces.get(namespace)
            value = None if ns is None else ns.live(key, self._clock())
        return None if value is None else _as_bytes(value)

    def set(self, namespace: str, key: bytes, value: bytes, ttl_ms: int = 0, limits: Limits | None = None,
            timeout: float = 1.0) -> None:
        now = self._clock()
        with self._lock:
            ns = self._ns(namespace)
            ns.purge(now, 4)
            ns.put(bytes(key), bytes(value), ttl_ms, now, limits or _DEFAULT_LIMITS)

    def delete(self, namespace: str, key: bytes, timeout: float = 1.0) -> bool:
        now = self._clock()
        with self._lock:
            ns = self._namespaces.get(namespace)
            if ns is None or ns.live(key, now) is None:
                return False
            ns.remove(key, ns.data[key][0])
            return True

    def incr(self, namespace: str, key: bytes, delta: int, ttl_ms: int = 0, limits: Limits | None = None,
             timeout: float = 1.0) -> int:
        now = self._clock()
        with self._lock:
            ns = self._ns(namespace)
            current = ns.live(key, now)
            if current is None:
                total = add_checked(0, delta)
                ns.purge(now, 4)
                ns.put(bytes(key), total, ttl_ms, now, limits or _DEFAULT_LIMITS)
                return total
            if isinstance(current, int):
                total = add_checked(current, delta)
                ns.data[key] = (total, ns.data[key][1])  # keeps its expiry (and its size)
                return total
            total = add_checked(parse_counter(current), delta)
            extra = COUNTER_BYTES - len(current)
            max_bytes = (limits or _DEFAULT_LIMITS).max_kv_bytes
            if extra > 0 and ns.bytes + extra > max_bytes:
                ns.purge(now, len(ns.heap))  # expired keys do not count: drop them, then look again
                if ns.bytes + extra > max_bytes:
                    raise CapabilityError(EG_QUOTA, "the counter's new value would go over max_kv_bytes")
            ns.data[key] = (total, ns.data[key][1])  # keeps its expiry
            ns.bytes += extra
            return total

    def cas(self, namespace: str, key: bytes, expected: bytes | None, value: bytes, ttl_ms: int = 0,
            limits: Limits | None = None, timeout: float = 1.0) -> bool:
        now = self._clock()
        with self._lock:
            ns = self._ns(namespace)
            current = ns.live(key, now)
            if (None if current is None else _as_bytes(current)) != expected:
                return False
            ns.purge(now, 4)
            ns.put(bytes(key), bytes(value), ttl_ms, now, limits or _DEFAULT_LIMITS)
            return True

    def clear(self, namespace: str) -> None:
        with self._lock:
            self._namespaces.pop(namespace, None)

    def close(self) -> None:
        with self._lock:
            self._namespaces.clear()

    # -- for operators and tests -------------------------------------------------------------

    def usage(self, namespace: str) -> tuple[int, int]:
        """(live keys, bytes) of a namespace."""
        with self._lock:
            ns = self._namespaces.get(namespace)
            if ns is None:
                return 0, 0
            ns.purge(self._clock(), len(ns.heap))
            return len(ns.data), ns.bytes
