"""A small pool of instances of one plugin.

`wasmtime.Store` is not thread-safe, and the gateway calls one plugin from its event-loop
thread (sync reactions) and from a thread pool (async reactions) at once.  So each instance
owns its Store and is checked out by exactly one thread per call; at most `size` instances
exist, and a caller that finds none idle waits for one.  Faulted instances are discarded, and
the slot is refilled lazily by the next caller.

`close()` ends the pool: it hands back the idle instances (dropping them frees their Stores), and
an instance still checked out is dropped, not kept, when its caller releases or discards it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Placeholder:
    """Holds a slot in `live` while an instance is being made outside the lock."""


class _ClosedIdle(list):  # type: ignore[type-arg]  # holds nothing: list only for the hot path's calls
    """The idle list of a closed pool: always empty; an instance appended (released) is dropped."""

    def __init__(self, drop: Callable[[Any], None]) -> None:
        super().__init__()
        self._drop = drop

    def append(self, item: Any) -> None:
        self._drop(item)


class PoolClosed(Exception):
    """The pool was closed: it hands out no instance and makes none."""


class InstancePool(Generic[T]):
    """Idle instances are a plain list: `list.pop`/`list.append` are atomic under the GIL, so
    the uncontended path takes no lock; only creating an instance or waiting for one does."""

    def __init__(self, factory: Callable[[], T], size: int, on_discard: Callable[[T], None] | None = None) -> None:
        self._factory = factory
        self._size = size
        self._on_discard = on_discard
        self._idle: list[T] = []
        self.live: set[T] = set()  # every instance in existence, idle or busy
        self._waiters = 0
        self._closed = False
        self._cond = threading.Condition(threading.Lock())

    def add(self, item: T) -> None:
        """Put an instance made outside the pool (the one made at load) into it."""
        with self._cond:
            self.live.add(item)
            self._idle.append(item)

    def acquire(self) -> T:
        try:
            return self._idle.pop()
        except IndexError:
            return self._acquire_slow()

    def try_acquire(self) -> T | None:
        """An idle instance, or None at once: never makes one, never waits."""
        try:
            return self._idle.pop()
        except IndexError:
            return None

    def _acquire_slow(self) -> T:
        with self._cond:
            while True:
                if self._closed:
                    raise PoolClosed
                if self._idle:
                    return self._idle.pop()
                if len(self.live) < self._size:
                    placeholder = _Placeholder()
                    self.live.add(placeholder)  # type: ignore[arg-type]
                    break
                self._waiters += 1
                # A release that raced past our check is picked up at the next timeout.
                self._cond.wait(0.01)
                self._waiters -= 1
        try:
            item = self._factory()
        except BaseException:
            with self._cond:
                self.live.discard(placeholder)
                self._cond.notify()
            raise
        with self._cond:
            self.live.discard(placeholder)
            if not self._closed:  # made while the pool closed: its caller uses it once, then it goes
                self.live.add(item)
        return item

    def release(self, item: T) -> None:
        # After close(), `_idle` is a `_ClosedIdle` whose append drops the instance: the hot path
        # checks nothing more. (An append that raced with close() lands in the old list, which
        # close() emptied and nothing references any more: the instance is freed with it.)
        self._idle.append(item)
        if self._waiters:
            with self._cond:
                self._cond.notify()

    def _dropped(self, item: T) -> None:
        """An instance released after close(): never kept."""
        if self._on_discard is not None:
            self._on_discard(item)

    def discard(self, item: T) -> None:
        with self._cond:
            self.live.discard(item)
            self._cond.notify()
        if self._on_discard is not None:
            self._on_discard(item)

    def close(self) -> list[T]:
        """End the pool: returns the idle instances (dropping the list frees them) and forgets the
        busy ones, which their callers drop when they release them. Later `acquire` calls that
        find no idle instance raise `PoolClosed`. Idempotent: a second call returns []."""
        with self._cond:
            if self._closed:
                return []
            self._closed = True
            idle, self._idle = self._idle, _ClosedIdle(self._dropped)
            items = list(idle)
            idle.clear()
            self.live.clear()
            self._cond.notify_all()
        return items

    @property
    def closed(self) -> bool:
        return self._closed

    def snapshot(self) -> list[T]:
        with self._cond:
            return list(self.live)

    @property
    def size(self) -> int:
        return len(self.live)

    @property
    def has_idle(self) -> bool:
        """An instance is ready now: `acquire` will neither make one nor wait (unless another
        thread takes it first)."""
        return bool(self._idle)
