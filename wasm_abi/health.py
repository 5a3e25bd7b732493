"""A plugin's health: counters for metrics, the last fault, and quarantine with backoff.

A plugin that faults `Limits.quarantine_after` times in a row is quarantined: calls fail
fast with a `quarantined` fault (no Wasm runs) until the retry time.  The first call after it
is a probe; if it faults too, the quarantine starts again with twice the backoff (up to
`Limits.quarantine_max_backoff`).  One success clears everything.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import PluginFault
from .limits import Limits


@dataclass(frozen=True)
class PluginState:
    """A snapshot of a plugin's health and counters (safe to hand to other threads)."""

    status: str  # "active" | "quarantined"
    consecutive_faults: int
    last_fault_kind: str | None
    last_fault_message: str | None
    last_fault_at: float | None  # time.time()
    retry_at: float | None  # time.time() when a quarantined plugin is tried again
    reactions: dict[str, int] = field(default_factory=dict)  # successful reactions by mode
    faults: dict[str, int] = field(default_factory=dict)  # faults by kind

    @property
    def quarantined(self) -> bool:
        return self.status == "quarantined"

    @property
    def active(self) -> bool:
        return self.status == "active"


class PluginHealth:
    def __init__(self, name: str, limits: Limits) -> None:
        self.name = name
        self.limits = limits
        self._lock = threading.Lock()
        self.consecutive = 0
        self.backoff = limits.quarantine_backoff
        self.retry_at_monotonic = 0.0  # read without the lock on the hot path
        self.retry_at_wall: float | None = None
        self.last_kind: str | None = None
        self.last_message: str | None = None
        self.last_at: float | None = None
        self.reactions: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    def check(self) -> None:
        """Raise a `quarantined` fault if the plugin is serving a quarantine."""
        if self.retry_at_monotonic and time.monotonic() < self.retry_at_monotonic:
            with self._lock:
                self.faults["quarantined"] += 1
            raise PluginFault(
                self.name, "quarantined",
                f"quarantined after {self.consecutive} consecutive faults (last: {self.last_kind}: "
                f"{self.last_message}); retrying in {self.retry_at_monotonic - time.monotonic():.1f}s",
            )

    def absorb_counts(self, instance: Any) -> None:
        """Keep the success counts of an instance that is being discarded."""
        with self._lock:
            self.reactions["sync"] += instance.ok_sync
            self.reactions["async"] += instance.ok_async

    def success(self) -> None:
        """Called after a success only when there were faults before it (the hot path skips it)."""
        with self._lock:
            if self.consecutive:
                self.consecutive = 0
                self.backoff = self.limits.quarantine_backoff
                self.retry_at_monotonic = 0.0
                self.retry_at_wall = None

    def fault(self, fault: PluginFault) -> None:
        with self._lock:
            self.faults[fault.kind] += 1
            self.consecutive += 1
            wall = time.time()
            self.last_kind, self.last_message, self.last_at = fault.kind, fault.message, wall
            if self.consecutive >= self.limits.quarantine_after:
                # One reading of each clock: retry_at - last_fault_at is exactly the backoff.
                self.retry_at_monotonic = time.monotonic() + self.backoff
                self.retry_at_wall = wall + self.backoff
                self.backoff = min(self.backoff * 2, self.limits.quarantine_max_backoff)

    def snapshot(self, live_instances: Iterable[Any] = ()) -> PluginState:
        # Successes are counted on each instance (written only by the thread holding it, so no
        # lock on the hot path) and summed here.
        reactions = Counter(self.reactions)
        for instance in live_instances:
            reactions["sync"] += getattr(instance, "ok_sync", 0)
            reactions["async"] += getattr(instance, "ok_async", 0)
        with self._lock:
            quarantined = bool(self.retry_at_monotonic) and time.monotonic() < self.retry_at_monotonic
            return PluginState(
                status="quarantined" if quarantined else "active",
                consecutive_faults=self.consecutive,
                last_fault_kind=self.last_kind,
                last_fault_message=self.last_message,
                last_fault_at=self.last_at,
                retry_at=self.retry_at_wall if quarantined else None,
                reactions={mode: n for mode, n in reactions.items() if n},
                faults=dict(self.faults),
            )
