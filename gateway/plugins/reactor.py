"""The async reactions' thread pool: fair between plugins and bounded in reactions and bytes.

Async reactions must never hold up the event loop and may use more fuel than sync ones, so they run
here, on a few threads shared by every plugin. Each plugin has its own queue and at most its share of
the threads, so a slow plugin delays only itself; the queues hold each event once, encoded, and are
bounded in reactions per plugin and in bytes, beyond which reactions are dropped and counted rather
than queued without limit.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["ASYNC_BACKLOG", "ASYNC_BACKLOG_BYTES", "ASYNC_SHARE", "ASYNC_THREADS", "AsyncReactor", "QueuedPayload"]

log = logging.getLogger("gateway.plugins")

MIB = 1024 * 1024

#: Threads running async reactions, for all plugins together.
ASYNC_THREADS = 4
#: Most async reactions of one plugin running at once (and never more than the plugin's instances allow):
#: a slow plugin holds at most this many of the threads, the others keep serving every other plugin.
ASYNC_SHARE = 2
#: Async reactions of one plugin waiting or running before its new ones are dropped.
ASYNC_BACKLOG = 1000
#: Bytes of encoded events the async queues may hold, all plugins together (an event queued for several
#: plugins is held and counted once); one plugin's queue may hold at most half of it. Beyond either,
#: new reactions are dropped and counted.
ASYNC_BACKLOG_BYTES = 64 * MIB


class QueuedPayload:
    """One encoded event waiting in the async queues, shared by every plugin it is queued for."""

    __slots__ = ("data", "refs")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.refs = 0  # queued or running jobs holding it (under the reactor's lock)


class _Lane:
    """One plugin's async queue: its jobs in order, how many run now, and what it holds."""

    __slots__ = ("bytes", "held", "jobs", "key", "ready", "running", "share")

    def __init__(self, key: Hashable, share: int) -> None:
        self.key = key
        self.share = share
        self.jobs: deque[tuple[Callable[..., None], tuple[Any, ...], QueuedPayload | None]] = deque()
        self.running = 0
        self.held = 0  # jobs queued or running
        self.bytes = 0  # payload bytes of those jobs
        self.ready = False  # in the reactor's round-robin ring


class AsyncReactor:
    """The thread pool of async reactions, fair between plugins and bounded in memory.

    Every plugin (``key``) has its own queue. A fixed set of threads takes jobs round-robin from the
    queues of plugins that are below their share of running jobs (``ASYNC_SHARE``, and the plugin's own
    ``share``), so a plugin whose reactions all run to their deadline holds at most its share of the
    threads and every other plugin's reactions keep running on the rest. A job's payload (the event,
    encoded once) is counted while any job holding it is queued or running: once in
    ``queued_bytes``, and in each plugin's own bytes. ``offer`` never blocks; a job over the plugin's
    backlog, its half of the bytes, or the total bytes is refused (the caller counts the drop)."""

    def __init__(self, threads: int = ASYNC_THREADS, backlog: int = ASYNC_BACKLOG,
                 backlog_bytes: int = ASYNC_BACKLOG_BYTES, share: int | None = None) -> None:
        self.threads = threads
        self.share = share if share is not None else max(1, min(ASYNC_SHARE, threads // 2))
        self.backlog = backlog
        self.backlog_bytes = backlog_bytes
        self.lane_bytes = max(1, backlog_bytes // 2)
        self._cond = threading.Condition(threading.Lock())
        self._lanes: dict[Hashable, _Lane] = {}
        self._ready: deque[_Lane] = deque()
        self._workers: list[threading.Thread] = []
        self._closed = False
        self._dropped = 0
        #: Bytes of payloads queued or running now (each payload once), and the most ever.
        self.queued_bytes = 0
        self.peak_bytes = 0

    def dropped(self) -> int:
        """Reactions refused so far (for rate-limiting the drop warning)."""
        return self._dropped

    def submit(self, fn: Callable[..., None], *args: Any, key: Hashable = None,
               payload: QueuedPayload | None = None, share: int | None = None) -> bool:
        """Queue ``fn(*args)``; False means dropped."""
        return self.offer(fn, *args, key=key, payload=payload, share=share) is None

    def offer(self, fn: Callable[..., None], *args: Any, key: Hashable = None,
              payload: QueuedPayload | None = None, share: int | None = None) -> str | None:
        """Queue ``fn(*args)`` in ``key``'s queue (``payload`` is what it holds); None when queued, else
        why it was dropped."""
        size = len(payload.data) if payload is not None else 0
        with self._cond:
            lane = self._lanes.get(key)
            if lane is None:
                lane = _Lane(key, self.share if share is None else max(1, min(share, self.share)))
            problem = self._refusal(lane, size, payload)
            if problem is not None:
                self._dropped += 1
                return problem
            self._lanes[key] = lane
            lane.jobs.append((fn, args, payload))
            lane.held += 1
            lane.bytes += size
            if payload is not None:
                if not payload.refs:
                    self.queued_bytes += size
                    self.peak_bytes = max(self.peak_bytes, self.queued_bytes)
                payload.refs += 1
            self._make_ready(lane)
            if len(self._workers) < self.threads:
                self._start_worker()
            return None

    def _refusal(self, lane: _Lane, size: int, payload: QueuedPayload | None) -> str | None:
        if self._closed:
            return "the gateway is shutting down"
        if lane.held >= self.backlog:
            return f"the plugin's async backlog is full ({lane.held} reactions waiting or running)"
        if lane.bytes + size > self.lane_bytes:
            return (f"the plugin's waiting async reactions hold {lane.bytes} bytes of events and this one "
                    f"{size} more (one plugin's share of the async backlog is {self.lane_bytes} bytes)")
        if (payload is None or not payload.refs) and self.queued_bytes + size > self.backlog_bytes:
            return (f"the async backlog holds {self.queued_bytes} bytes of events and this one {size} more "
                    f"(its bound is {self.backlog_bytes} bytes)")
        return None

    def _make_ready(self, lane: _Lane) -> None:
        """Put a lane with work and a free share at the back of the ring (the lock is held)."""
        if lane.jobs and not lane.ready and lane.running < lane.share:
            lane.ready = True
            self._ready.append(lane)
            self._cond.notify()

    def _start_worker(self) -> None:
        worker = threading.Thread(target=self._work, name=f"plugin-async-{len(self._workers)}", daemon=True)
        self._workers.append(worker)
        worker.start()

    def _work(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._ready:
                    if self._closed:
                        return
                    cond.wait()
                lane = self._ready.popleft()
                lane.ready = False
                fn, args, payload = lane.jobs.popleft()
                lane.running += 1
                self._make_ready(lane)  # more of its jobs may run: behind every other waiting plugin
            try:
                fn(*args)
            except Exception:
                log.exception("async plugin job %r failed", fn)
            finally:
                with cond:
                    lane.running -= 1
                    self._release(lane, payload)
                    self._make_ready(lane)
                # An idle thread must not keep the last job's plugin (and its Stores) alive.
                del lane, fn, args, payload

    def _release(self, lane: _Lane, payload: QueuedPayload | None) -> None:
        """A job of ``lane`` is done or dropped: release what it held (the lock is held)."""
        size = len(payload.data) if payload is not None else 0
        lane.held -= 1
        lane.bytes -= size
        if payload is not None:
            payload.refs -= 1
            if not payload.refs:
                self.queued_bytes -= size
        if not lane.held and self._lanes.get(lane.key) is lane:
            del self._lanes[lane.key]

    def close(self, wait: bool = True) -> None:
        """Refuse new jobs and drop the queued ones (a backlog of slow reactions could otherwise hold a
        shutdown for minutes); with ``wait``, wait for the running ones, each bounded by its deadline."""
        with self._cond:
            self._closed = True
            dropped = 0
            for lane in list(self._lanes.values()):
                while lane.jobs:
                    _, _, payload = lane.jobs.popleft()
                    self._release(lane, payload)
                    dropped += 1
            self._ready.clear()
            self._dropped += dropped
            self._cond.notify_all()
            workers = list(self._workers)
        if dropped:
            log.info("%d queued async plugin reactions dropped at shutdown", dropped)
        if wait:
            for worker in workers:
                if worker is not threading.current_thread():
                    worker.join()
