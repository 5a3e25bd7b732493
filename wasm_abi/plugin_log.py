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

    def _admit(self) -> tuple[bool, int]:
        """Take a token; returns (allowed, messages dropped since the last allowed one)."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                dropped, self._dropped = self._dropped, 0
                return True, dropped
            self._dropped += 1
            first_drop = self._dropped == 1
        if first_drop:
            self._emit(
                "warn",
                f"log rate limit of {self.rate:g} messages/s hit; dropping messages until it recovers",
                host=True,
            )
        return False, 0

    def write(self, level: int | str, raw: bytes | str, total_bytes: int | None = None) -> None:
        """Log one message from the plugin (never raises: it runs inside a Wasm host call)."""
        try:
            name = level if isinstance(level, str) else LEVEL_NAMES.get(level, "info")
            allowed, dropped = self._admit()
            if not allowed:
                return
            if dropped:
                self._emit("warn", f"{dropped} log messages were dropped by the rate limit", host=True)
            data = raw.encode("utf-8", "replace") if isinstance(raw, str) else bytes(raw)
            cut = (len(data) if total_bytes is None else total_bytes) - self.max_message_bytes
            text = data[: self.max_message_bytes].decode("utf-8", "replace")
            if cut > 0:
                text += f" [truncated {cut} bytes]"
            self._emit(name, text)
        except Exception:  # pragma: no cover - a logging failure must not fault the plugin
            logger.exception("failed to record a log message of plugin %r", self.plugin)

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
        data = self._pending + chunk
        *lines, self._pending = data.split(b"\n")
        if len(self._pending) > self.sink.max_message_bytes:
            lines.append(self._pending)
            self._pending = b""
        for line in lines:
            self.sink.write(self.level, line)
        return len(chunk)

    def flush(self) -> None:
        if self._pending:
            self.sink.write(self.level, self._pending)
            self._pending = b""
