"""Where a plugin's log lines go: the `wasm_abi.plugin` logger, capped and rate-limited.

A plugin must not be able to flood the gateway log or its disk, so each message is cut at
`Limits.max_log_message_bytes` and each plugin gets a token bucket of
`Limits.log_rate_per_second` messages (burst `Limits.log_burst`).  When messages start being
dropped the host says so once, and says how many were lost when logging resumes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("wasm_abi.plugin")

#: ABI level number -> name used in logs and passed to a `log_handler`.
LEVEL_NAMES = {0: "debug", 1: "info", 2: "warn", 3: "error"}
_PY_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}

LogHandler = Callable[[str, str, str], None]


class PluginLog:
    """The log sink of one plugin (shared by all its instances, so it is thread-safe)."""

    def __init__(
        self,
        plugin: str,
        max_message_bytes: int,
        rate_per_second: float,
        burst: int,
        handler: LogHandler | None = None,
    ) -> None:
        self.plugin = plugin
        self.max_message_bytes = max_message_bytes
        self.rate = rate_per_second
        self.burst = float(burst)
        self.handler = handler
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._dropped = 0
        self._lock = threading.Lock()

    def _admit(self, count: int = 1) -> tuple[int, bool]:
        """Take up to `count` tokens at once; returns (messages allowed, messages dropped before
        them since the last allowed one). The first `allowed` messages of the batch go out, the
        rest are dropped and counted: the same outcome as admitting them one by one, in O(1)."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            allowed = min(count, int(self._tokens))
            dropped_before = 0
            if allowed:
                self._tokens -= allowed
                dropped_before, self._dropped = self._dropped, 0
            refused = count - allowed
            first_drop = refused > 0 and self._dropped == 0
            self._dropped += refused
        if dropped_before:
            self._emit("warn", f"{dropped_before} log messages were dropped by the rate limit", host=True)
        return allowed, first_drop

    def write(self, level: int | str, raw: bytes | str, total_bytes: int | None = None) -> None:
        """Log one message from the plugin (never raises: it runs inside a Wasm host call)."""
        try:
            name = level if isinstance(level, str) else LEVEL_NAMES.get(level, "info")
            allowed, first_drop = self._admit()
            if allowed:
                data = raw.encode("utf-8", "replace") if isinstance(raw, str) else bytes(raw)
                self._emit(name, self._text(data, total_bytes))
            if first_drop:
                self._say_dropping()
        except Exception:  # pragma: no cover - a logging failure must not fault the plugin
            logger.exception("failed to record a log message of plugin %r", self.plugin)

    def write_lines(self, level: str, count: int, first: Callable[[int], list[bytes]]) -> None:
        """Log a batch of `count` messages (lines of a WASI stream) under one rate-limit decision:
        the first ones the bucket allows go out (`first(k)` makes only those k), the rest are
        dropped and counted at once. 65 536 empty lines cost one count and one admission, not
        65 536 of each."""
        try:
            allowed, first_drop = self._admit(count)
            if allowed:
                for line in first(allowed):
                    self._emit(level, self._text(line, None))
            if first_drop:
                self._say_dropping()
        except Exception:  # pragma: no cover - a logging failure must not fault the plugin
            logger.exception("failed to record log messages of plugin %r", self.plugin)

    def _text(self, data: bytes, total_bytes: int | None) -> str:
        cut = (len(data) if total_bytes is None else total_bytes) - self.max_message_bytes
        text = data[: self.max_message_bytes].decode("utf-8", "replace")
        if cut > 0:
            text += f" [truncated {cut} bytes]"
        return text

    def _say_dropping(self) -> None:
        self._emit("warn", f"log rate limit of {self.rate:g} messages/s hit; dropping messages until it recovers",
                   host=True)

    def _emit(self, level: str, text: str, host: bool = False) -> None:
        prefix = f"[plugin {self.plugin}]" + (" (host)" if host else "")
        logger.log(
            _PY_LEVELS[level],
            "%s %s",
            prefix,
            text,
            extra={"plugin": self.plugin, "plugin_level": level},
        )
        if self.handler is not None and not host:
            try:
                self.handler(self.plugin, level, text)
            except Exception:
                logger.exception("log_handler of plugin %r raised", self.plugin)


class StreamLog:
    """A WASI stdout/stderr stream: bytes arrive in arbitrary chunks; log whole lines."""

    def __init__(self, sink: PluginLog, level: str) -> None:
        self.sink = sink
        self.level = level
        self._pending = b""

    def __call__(self, chunk: bytes) -> int:
        """Take a chunk of the stream (the caller caps its size); log its complete lines, and the
        unfinished rest once it is longer than a message may be. Lines are counted, not split:
        only the ones the rate limit lets through are ever made into objects."""
        data = self._pending + chunk
        complete = data.count(b"\n")
        tail_at = data.rfind(b"\n") + 1
        tail = data[tail_at:]
        overflow = len(tail) > self.sink.max_message_bytes
        self._pending = b"" if overflow else tail
        count = complete + overflow
        if count:

            def first(k: int) -> list[bytes]:
                if k <= complete:
                    return data.split(b"\n", k)[:k]
                return [*(data[: tail_at - 1].split(b"\n") if complete else ()), tail]

            self.sink.write_lines(self.level, count, first)
        return len(chunk)

    def flush(self) -> None:
        if self._pending:
            self.sink.write(self.level, self._pending)
            self._pending = b""
