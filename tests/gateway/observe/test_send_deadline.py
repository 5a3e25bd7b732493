"""SendDeadline when shutting the export's sockets does not end it (a wait that is not on a watched socket):
the call is given up, its thread left to end by itself, and while it lingers later calls fail at once
without starting another thread; once it ends, calls go out again."""

from __future__ import annotations

import threading

from gateway.observe.otlp_export import SendDeadline


def _attempt_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "eventgateway-trace-export-attempt")


def test_an_attempt_that_outlives_its_grace_lingers_alone_and_later_calls_resume_when_it_ends() -> None:
    release = threading.Event()
    calls: list[int] = []

    def send(batch: list[int]) -> bool:
        calls.append(len(batch))
        if len(calls) == 1:
            release.wait(30)  # not a socket: shutting the sockets down cannot end it
        return True

    deadline = SendDeadline(send, 0.2, grace=0.1)
    assert deadline([1, 2]) is False
    assert (deadline.given_up, deadline.lingered) == (1, 1)
    for _ in range(3):
        assert deadline([3]) is False  # refused at once: the lingering attempt still runs
    assert deadline.refused == 3 and calls == [2] and _attempt_threads() == 1
    release.set()
    for thread in threading.enumerate():
        if thread.name == "eventgateway-trace-export-attempt":
            thread.join(10)
    assert deadline([4, 5, 6]) is True
    assert calls == [2, 3] and deadline.refused == 3 and _attempt_threads() == 0


def test_a_send_that_raises_counts_as_failed_and_leaves_no_thread() -> None:
    def send(batch: list[int]) -> bool:
        raise RuntimeError("collector exploded")

    deadline = SendDeadline(send, 5.0)
    assert deadline([1]) is False
    assert deadline.given_up == 0 and _attempt_threads() == 0
