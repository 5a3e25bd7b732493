"""A plugin's health: counters for metrics, the last fault, and quarantine with backoff.

A plugin is quarantined when it faults `Limits.quarantine_after` times in a row, when
`Limits.fault_window_max` of its last `Limits.fault_window` reactions faulted (however they
alternate with successes), or when it needs a fresh instance after a fault while the CPU it has
spent making fresh instances is over `Limits.rebuild_budget` per `Limits.rebuild_window`.
Quarantined, calls fail fast with a `quarantined` fault (no Wasm runs, no instance is made) until
the retry time.  The first call after it is a probe; if it faults too, the quarantine starts
again with twice the backoff (up to `Limits.quarantine_max_backoff`).  A success ends the
quarantine; it also resets the backoff unless the quarantine came from the fault rate (a plugin
faulting on every other event would otherwise be probed every `quarantine_backoff` for ever).
A fault after a whole window of reactions without one starts again from `quarantine_backoff`.

Nothing here runs on a successful reaction unless the plugin faulted before it: successes are
counted on each instance by the thread holding it (an int increment) and read only when a fault
has to be placed in the fault-rate window.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import FaultKind, PluginFault
from .limits import Limits


@dataclass(frozen=True)
class PluginState:
    """A snapshot of a plugin's health and counters (safe to hand to other threads)."""

    status: str  # "active" | "quarantined"
    consecutive_faults: int
    last_fault_kind: FaultKind | None
    last_fault_message: str | None
    last_fault_at: float | None  # time.time()
    retry_at: float | None  # time.time() when a quarantined plugin is tried again
    reactions: dict[str, int] = field(default_factory=dict)  # successful reactions by mode
    faults: dict[str, int] = field(default_factory=dict)  # faults by kind
    #: Why the current (or last) quarantine started, e.g. "3 consecutive faults".
    quarantine_reason: str | None = None
    #: CPU seconds spent making fresh instances after faults, in all.
    rebuild_seconds: float = 0.0

    @property
    def quarantined(self) -> bool:
        return self.status == "quarantined"

    @property
    def active(self) -> bool:
        return self.status == "active"


class Clock(Protocol):
    """Where a plugin's health reads the time: quarantine retry times and the rebuild budget's
    refill (``monotonic``), and the wall-clock times it reports (``time``). Tests pass their own to
    step through a backoff without sleeping."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    """The real clocks: `time.monotonic` and `time.time`."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)


SYSTEM_CLOCK: Clock = SystemClock()


class PluginHealth:
    def __init__(self, name: str, limits: Limits, live_successes: Callable[[], int] = lambda: 0,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.name = name
        self.clock = clock
        self.limits = limits
        self._lock = threading.Lock()
        self.consecutive = 0
        self.backoff = limits.quarantine_backoff
        self.retry_at_monotonic = 0.0  # read without the lock on the hot path
        self.retry_at_wall: float | None = None
        self.reason: str | None = None
        self._rate_quarantine = False  # the current quarantine came from the fault rate
        self.last_kind: FaultKind | None = None
        self.last_message: str | None = None
        self.last_at: float | None = None
        self.reactions: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        # Fault-rate window: the reaction number (successes + counted faults so far) of each of the
        # last `fault_window_max` faults. The window is full when the oldest of them is less than
        # `fault_window` reactions old.
        self._live_successes = live_successes
        self._faulted_reactions = 0
        self._fault_marks: deque[int] = deque(maxlen=limits.fault_window_max)
        # Rebuild budget: a token bucket of CPU seconds for fresh instances after faults.
        self.owed_rebuilds = 0  # instances discarded after a fault and not yet replaced
        self._rebuild_tokens = limits.rebuild_budget
        self._rebuild_refilled_at = self.clock.monotonic()
        self.rebuild_seconds = 0.0

    # -- quarantine -----------------------------------------------------------------------------

    def check(self) -> None:
        """Raise a `quarantined` fault if the plugin is serving a quarantine (called only while a
        retry time is set: a quarantine that is over is forgotten here, so that later calls skip it)."""
        now = self.clock.monotonic()
        with self._lock:
            if not self.retry_at_monotonic:
                return
            if now >= self.retry_at_monotonic:
                if not self.consecutive:  # no success() is coming to clear it
                    self.retry_at_monotonic = 0.0
                    self.retry_at_wall = None
                return
            self.faults["quarantined"] += 1
            fault = self._quarantined_fault()
        raise fault

    def _quarantined_fault(self) -> PluginFault:
        return PluginFault(
            self.name, "quarantined",
            f"quarantined after {self.reason} (last: {self.last_kind}: {self.last_message}); "
            f"retrying in {max(0.0, self.retry_at_monotonic - self.clock.monotonic()):.1f}s",
        )

    def _quarantine(self, reason: str, at_least: float = 0.0) -> None:
        """Start a quarantine of the current backoff (or ``at_least`` seconds); the lock is held."""
        span = max(self.backoff, at_least)
        # One reading of each clock: retry_at - last_fault_at is exactly the backoff.
        wall = self.last_at if self.last_at is not None else self.clock.time()
        self.retry_at_monotonic = self.clock.monotonic() + span
        self.retry_at_wall = wall + span
        self.backoff = min(self.backoff * 2, self.limits.quarantine_max_backoff)
        self.reason = reason

    # -- events ---------------------------------------------------------------------------------

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
                if not self._rate_quarantine:
                    self.backoff = self.limits.quarantine_backoff
                self.retry_at_monotonic = 0.0
                self.retry_at_wall = None

    def fault(self, fault: PluginFault) -> None:
        """A reaction (or the making of a fresh instance) faulted; its instance is gone."""
        successes = self._live_successes()  # before the lock: it takes the pool's lock
        limits = self.limits
        with self._lock:
            self.faults[fault.kind] += 1
            self.consecutive += 1
            self.owed_rebuilds += 1
            self._faulted_reactions += 1
            number = successes + self.reactions.total() + self._faulted_reactions
            marks = self._fault_marks
            if marks and number - marks[-1] >= limits.fault_window:
                # A whole window of reactions without a fault: start again from the first backoff.
                self.backoff = limits.quarantine_backoff
                self._rate_quarantine = False
            marks.append(number)
            self.last_kind, self.last_message, self.last_at = fault.kind, fault.message, self.clock.time()
            if self.consecutive >= limits.quarantine_after:
                self._rate_quarantine = False
                self._quarantine(f"{self.consecutive} consecutive faults")
            elif len(marks) == marks.maxlen and number - marks[0] < limits.fault_window:
                self._rate_quarantine = True
                self._quarantine(f"{len(marks)} faults in its last {number - marks[0] + 1} reactions (fault rate "
                                 f"limit: Limits.fault_window_max = {limits.fault_window_max} faults per "
                                 f"Limits.fault_window = {limits.fault_window} reactions)")

    # -- the rebuild budget ---------------------------------------------------------------------

    def before_instance(self) -> bool:
        """Called before making an instance for the pool. Returns whether it replaces one discarded
        after a fault (and so is charged to the rebuild budget); raises a `quarantined` fault, and
        starts a quarantine, when the budget is spent: nothing is made then."""
        if not self.owed_rebuilds:  # unlocked read: growing the pool is never charged
            return False
        limits = self.limits
        with self._lock:
            if not self.owed_rebuilds:
                return False
            now = self.clock.monotonic()
            rate = limits.rebuild_budget / limits.rebuild_window
            self._rebuild_tokens = min(limits.rebuild_budget,
                                       self._rebuild_tokens + (now - self._rebuild_refilled_at) * rate)
            self._rebuild_refilled_at = now
            if self._rebuild_tokens > 0:
                self.owed_rebuilds -= 1
                return True
            if not (self.retry_at_monotonic and now < self.retry_at_monotonic):
                self._rate_quarantine = True  # the backoff keeps growing until the plugin behaves
                refill = -self._rebuild_tokens / rate + 0.001
                self._quarantine(
                    f"spending {self.rebuild_seconds:.2f}s of CPU on fresh instances after faults, over its "
                    f"rebuild budget (Limits.rebuild_budget = {limits.rebuild_budget:g}s per "
                    f"Limits.rebuild_window = {limits.rebuild_window:g}s)", at_least=refill)
                self.retry_at_wall = self.clock.time() + (self.retry_at_monotonic - now)
            self.faults["quarantined"] += 1
            return_fault = self._quarantined_fault()
        raise return_fault

    def charge_rebuild(self, seconds: float) -> None:
        """A fresh instance after a fault took ``seconds`` of CPU to make (whether or not it worked)."""
        with self._lock:
            self._rebuild_tokens -= seconds
            self.rebuild_seconds += seconds

    def refund_rebuild(self) -> None:
        """A charged instance was not made for a reason that is not the plugin's (e.g. closed)."""
        with self._lock:
            self.owed_rebuilds += 1

    # -- reporting ------------------------------------------------------------------------------

    def snapshot(self, live_instances: Iterable[Any] = ()) -> PluginState:
        # Successes are counted on each instance (written only by the thread holding it, so no
        # lock on the hot path) and summed here.
        reactions = Counter(self.reactions)
        for instance in live_instances:
            reactions["sync"] += getattr(instance, "ok_sync", 0)
            reactions["async"] += getattr(instance, "ok_async", 0)
        with self._lock:
            quarantined = bool(self.retry_at_monotonic) and self.clock.monotonic() < self.retry_at_monotonic
            return PluginState(
                status="quarantined" if quarantined else "active",
                consecutive_faults=self.consecutive,
                last_fault_kind=self.last_kind,
                last_fault_message=self.last_message,
                last_fault_at=self.last_at,
                retry_at=self.retry_at_wall if quarantined else None,
                reactions={mode: n for mode, n in reactions.items() if n},
                faults=dict(self.faults),
                quarantine_reason=self.reason,
                rebuild_seconds=self.rebuild_seconds,
            )
