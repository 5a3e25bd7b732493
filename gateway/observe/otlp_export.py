"""The bounded export queue of the traces (issue 15): finished spans in, batches out on one thread.

:meth:`SpanQueue.add` is what ending a span costs on the calling thread (the event loop): a length test, the
``prepare`` hook -- the OTLP exporter encodes the span to its protobuf bytes there, so the queue holds bytes
and no span objects wait for the garbage collector -- and a ``deque.append`` (the thread is woken once per
full batch, not per span). The export thread takes up to ``batch_size`` spans every ``delay`` seconds
(sooner when a batch is full), hands them to ``send`` (joining them into a request and POSTing it: off the
event loop) and counts what went out and what did not.

Bounded: at most ``max_queued`` spans wait. When the collector is slow, down or never answers, the queue
fills and further spans are dropped and counted (``queue_full``); a batch ``send`` fails is dropped and
counted too (``export_failed``): memory stays bounded and the event path does not wait for the collector.
:class:`SendDeadline` gives each ``send`` one hard deadline, whatever the collector does (an HTTP client's
timeout is per read: a collector trickling its answer a byte at a time would hold it for ever): at the
deadline the export's sockets are shut down, its thread returns, and the next batch goes on a new connection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .export_sockets import SocketWatch

__all__ = ["SendDeadline", "SpanQueue"]

log = logging.getLogger("gateway.tracing")


class SpanQueue:
    """Finished spans waiting for export, and the thread exporting them (started at construction)."""

    def __init__(self, send: Callable[[Sequence[Any]], bool], *, max_queued: int = 2048, batch_size: int = 512,
                 delay: float = 5.0, name: str = "otlp", prepare: Callable[[Any], Any] | None = None) -> None:
        self._send = send
        #: What a span becomes as it is queued, on the thread that ended it (the OTLP exporter: its bytes).
        self._prepare = prepare
        self._queue: deque[Any] = deque()
        self.max_queued = max_queued
        self.batch_size = min(batch_size, max_queued)
        self.delay = delay
        self._wake = threading.Event()
        self._flushed = threading.Condition()
        self._flush_asked = 0
        self._flush_done = 0
        self._stopping = False
        self._drop_lock = threading.Lock()
        #: Spans sent (the collector accepted the request), and dropped: queue full, or their export failed.
        self.exported = 0
        self.dropped_queue_full = 0
        self.dropped_export_failed = 0
        self._thread = threading.Thread(target=self._run, name=f"eventgateway-trace-export-{name}", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, span: Any) -> None:
        """Queue one finished span (any thread); dropped and counted when the queue is full."""
        queued = len(self._queue)
        if queued >= self.batch_size:
            if queued >= self.max_queued or self._stopping:
                with self._drop_lock:
                    self.dropped_queue_full += 1
                return
            if not self._wake.is_set():
                self._wake.set()
        elif self._stopping:
            with self._drop_lock:
                self.dropped_queue_full += 1
            return
        prepare = self._prepare
        if prepare is not None:
            try:
                span = prepare(span)
            except Exception:
                log.exception("tracing: encoding a span failed; it is dropped")
                with self._drop_lock:
                    self.dropped_export_failed += 1
                return
        self._queue.append(span)

    def _export_all(self) -> None:
        queue = self._queue
        while queue:
            batch = []
            popleft = queue.popleft
            try:
                for _ in range(self.batch_size):
                    batch.append(popleft())
            except IndexError:
                pass
            try:
                ok = self._send(batch)
            except Exception:
                log.exception("tracing: exporting %d spans failed", len(batch))
                ok = False
            if ok:
                self.exported += len(batch)
            else:
                with self._drop_lock:
                    self.dropped_export_failed += len(batch)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.delay)
            self._wake.clear()
            with self._flushed:
                asked = self._flush_asked
            self._export_all()
            if asked:
                with self._flushed:
                    self._flush_done = asked
                    self._flushed.notify_all()
            if self._stopping:
                return

    def flush(self, timeout: float) -> bool:
        """Export what is queued now; whether that finished within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._flushed:
            self._flush_asked += 1
            wanted = self._flush_asked
            self._wake.set()
            while self._flush_done < wanted and self._thread.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._flushed.wait(remaining)
        return self._flush_done >= wanted

    def shutdown(self, timeout: float) -> None:
        """Export what is queued (within ``timeout`` seconds) and stop the thread; spans added later are
        dropped."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)


class SendDeadline:
    """``send`` with one hard deadline per call: each call runs on a thread of its own, watched by a
    :class:`~gateway.observe.export_sockets.SocketWatch`; at ``seconds`` the call is given up (the batch
    counts as failed) and the sockets it opened are shut down, so the thread, blocked in a read or a write of
    a collector trickling its answer or never reading, returns (within ``grace`` seconds) and the next call
    starts on a fresh connection. A call that still runs after the grace (a transport whose sockets are not
    watched, or a wait that is not on a socket) cannot be interrupted: while it lingers, further calls fail
    at once instead of starting another thread, so at most one stuck call (one thread) exists at any time."""

    def __init__(self, send: Callable[[Sequence[Any]], bool], seconds: float, *, grace: float = 1.0) -> None:
        self._send = send
        self.seconds = seconds
        self.grace = grace
        self._stuck: threading.Thread | None = None
        #: Calls given up at their deadline, calls still running after the grace (left lingering), and calls
        #: refused because a lingering one was still running.
        self.given_up = 0
        self.lingered = 0
        self.refused = 0

    def __call__(self, batch: Sequence[Any]) -> bool:
        stuck = self._stuck
        if stuck is not None:
            if stuck.is_alive():
                self.refused += 1
                return False
            self._stuck = None
        result: list[bool] = []
        watch = SocketWatch()

        def attempt() -> None:
            with watch:
                try:
                    result.append(bool(self._send(batch)))
                except Exception:
                    log.exception("tracing: exporting %d spans failed", len(batch))

        thread = threading.Thread(target=attempt, name="eventgateway-trace-export-attempt", daemon=True)
        thread.start()
        thread.join(self.seconds)
        if not thread.is_alive():
            return bool(result and result[0])
        self.given_up += 1
        watch.expire()
        thread.join(self.grace)
        if thread.is_alive():
            self._stuck = thread
            self.lingered += 1
            log.warning("tracing: exporting %d spans took longer than %.1f s; given up (the batch is dropped); "
                        "its thread did not end when its sockets were shut down: no other export starts until "
                        "it ends", len(batch), self.seconds)
        else:
            log.warning("tracing: exporting %d spans took longer than %.1f s; given up (the batch is dropped, "
                        "its connection shut down)", len(batch), self.seconds)
        return False
