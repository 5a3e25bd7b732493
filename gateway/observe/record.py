"""The record of one event's way through the gateway: what the live tail sends and the console shows.

One `EventRecord` per event the Events API handled (a batch makes one per event), finished when the
event's answer is decided. It lists each stage the event went through (the four system event stages,
routing, the authorizer), each plugin's verdict at each stage, and each function call with its status and
duration. Async deliveries made later (by the delivery worker, possibly after a restart) are records of
their own, with ``kind`` ``"delivery"`` and the same event id.

Every text a client or a plugin chose (messages, ids, types) is cut at `MAX_TEXT` characters here, so a
record stays small whatever the event was: the tail sends records to browsers and terminals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["MAX_TEXT", "CallRecord", "EventRecord", "PluginVerdict", "StageRecord"]

MAX_TEXT = 500
#: Most stages, plugin verdicts and calls one record keeps (an event cannot make a record unbounded).
MAX_ENTRIES = 64

Verdict = Literal["continue", "reject", "rewrite", "fault", "skipped"]


def cut(text: object) -> str | None:
    if text is None:
        return None
    value = str(text)
    return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + f"... ({len(value) - MAX_TEXT} more)"


@dataclass(slots=True)
class PluginVerdict:
    """What one plugin answered at one stage."""

    plugin: str
    mode: Literal["sync", "async"]
    verdict: Verdict
    duration_ms: float
    status: int | None = None  # a rejection's status
    message: str | None = None  # a rejection's error, or a fault's message
    fault_kind: str | None = None
    fuel: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"plugin": self.plugin, "mode": self.mode, "verdict": self.verdict,
                               "durationMs": round(self.duration_ms, 3)}
        if self.status is not None:
            out["status"] = self.status
        if self.message is not None:
            out["message"] = cut(self.message)
        if self.fault_kind is not None:
            out["faultKind"] = self.fault_kind
        if self.fuel is not None:
            out["fuel"] = self.fuel
        return out


@dataclass(slots=True)
class StageRecord:
    """One stage: a system event type (``eventgateway.event.received``, ...), ``routing`` or ``authorizer``."""

    name: str
    duration_ms: float
    plugins: list[PluginVerdict] = field(default_factory=list)
    note: str | None = None  # e.g. routing: "2 async subscribers, 1 sync"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "durationMs": round(self.duration_ms, 3),
                               "plugins": [p.to_json() for p in self.plugins[:MAX_ENTRIES]]}
        if self.note is not None:
            out["note"] = cut(self.note)
        return out


@dataclass(slots=True)
class CallRecord:
    """One function call (sync, or one attempt of an async delivery)."""

    function_id: str
    provider: str
    mode: Literal["sync", "async"]
    ok: bool
    duration_ms: float
    status: int | None = None  # the function's HTTP status, when it answered
    attempt: int = 1
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"functionId": self.function_id, "provider": self.provider, "mode": self.mode,
                               "ok": self.ok, "durationMs": round(self.duration_ms, 3), "attempt": self.attempt}
        if self.status is not None:
            out["status"] = self.status
        if self.error is not None:
            out["error"] = cut(self.error)
        return out


@dataclass(slots=True)
class EventRecord:
    """One event's way through the gateway. ``status`` is the HTTP status the client got (``kind``
    ``"request"``) or ``200``/``500`` for a delivery's success or failure (``kind`` ``"delivery"``)."""

    id: str
    type: str
    space: str
    source: str
    received_at: float = field(default_factory=time.time)
    kind: Literal["request", "delivery"] = "request"
    status: int | None = None
    duration_ms: float | None = None
    stages: list[StageRecord] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    trace_id: str | None = None  # the W3C trace id when tracing is on

    def add_stage(self, stage: StageRecord) -> None:
        if len(self.stages) < MAX_ENTRIES:
            self.stages.append(stage)

    def add_call(self, call: CallRecord) -> None:
        if len(self.calls) < MAX_ENTRIES:
            self.calls.append(call)

    @property
    def error(self) -> bool:
        """Whether the event ended in an error: a 4xx/5xx answer, a failed call or a plugin fault."""
        return ((self.status is not None and self.status >= 400) or any(not c.ok for c in self.calls)
                or any(p.verdict == "fault" for s in self.stages for p in s.plugins))

    def to_json(self) -> dict[str, Any]:
        from gateway.common import rfc3339

        return {
            "id": cut(self.id), "type": cut(self.type), "space": cut(self.space), "source": cut(self.source),
            "kind": self.kind, "receivedAt": rfc3339(self.received_at, millis=True), "status": self.status,
            "durationMs": None if self.duration_ms is None else round(self.duration_ms, 3),
            "error": self.error, "traceId": self.trace_id,
            "stages": [s.to_json() for s in self.stages], "calls": [c.to_json() for c in self.calls],
        }
