"""A small pool of instances of one plugin.

`wasmtime.Store` is not thread-safe, and the gateway calls one plugin from its event-loop
thread (sync reactions) and from a thread pool (async reactions) at once.  So each instance
owns its Store and is checked out by exactly one thread per call; at most `size` instances
exist, and a caller that finds none idle waits for one.  Faulted instances are discarded, and
the slot is refilled lazily by the next caller.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class InstancePool(Generic[T]):
    def __init__(self, factory: Callable[[], T], size: int) -> None:
        self._factory = factory
        self._size = size
        self._idle: list[T] = []
        self._count = 0
        self._cond = threading.Condition(threading.Lock())

    def add(self, item: T) -> None:
        """Put an instance made outside the pool (the one made at load) into it."""
        with self._cond:
            self._count += 1
            self._idle.append(item)

    def acquire(self) -> T:
        with self._cond:
            while not self._idle:
                if self._count < self._size:
                    self._count += 1
                    break
                self._cond.wait()
            else:
                return self._idle.pop()
        try:
            return self._factory()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def release(self, item: T) -> None:
        with self._cond:
            self._idle.append(item)
            self._cond.notify()

    def discard(self, item: T) -> None:
        with self._cond:
            self._count -= 1
            self._cond.notify()

    @property
    def size(self) -> int:
        return self._count
