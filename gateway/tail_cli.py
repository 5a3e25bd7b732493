"""``event-gateway tail``: the live tail (``GET /v1/events/tail``) in a terminal, one line per event.

    10:14:09.714 403 default  order.paid  rec-1  guard:reject 403  trapper:fault quarantined  →hello 500 failed  0.8ms

Colour when standard output is a terminal (never with ``NO_COLOR`` set, or into a pipe). When the gateway
goes away (a restart, a drain) it says so on standard error and reconnects until it is back; a refused
token (401), a client the gateway will not serve (403) or a bad filter (400) ends it with status 1. Text
from the gateway (event types, ids, plugin messages: chosen by clients and plugins) is printed with its
control characters escaped, so an event type cannot move the cursor or recolour the terminal.

Only the standard library: the command needs no server stack.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, TextIO

__all__ = ["add_tail_command", "format_record", "run"]

DEFAULT_URL = "http://127.0.0.1:4001"
#: Seconds without a byte (the gateway sends a comment every 15 s) before the connection counts as lost.
READ_TIMEOUT = 40.0
_BACKOFF = (0.25, 0.5, 1.0, 2.0, 5.0)

_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def clean(value: Any) -> str:
    """``value`` as text with every control character escaped (terminal-safe)."""
    return str(value).translate(_ESCAPES)


class Palette:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text


GREEN, RED, YELLOW, DIM, BOLD, CYAN = "32", "31", "33", "2", "1", "36"


def add_tail_command(subparsers: Any) -> argparse.ArgumentParser:
    tail = subparsers.add_parser(
        "tail", help="print every event the gateway handles, live (GET /v1/events/tail)",
        description="Print every event a running gateway finishes, one line each: time, status, space, type, "
                    "id, the plugins' verdicts and the function calls. Reconnects when the gateway restarts.")
    tail.add_argument("--config-url", default=os.environ.get("EVENT_GATEWAY_CONFIG_URL", DEFAULT_URL),
                      help=f"the gateway's Config API (default {DEFAULT_URL}, or EVENT_GATEWAY_CONFIG_URL)")
    tail.add_argument("--space", help="only events of this space")
    tail.add_argument("--type", dest="event_type", help="only events of this type")
    group = tail.add_mutually_exclusive_group()
    group.add_argument("--errors", action="store_true", help="only events that ended in an error")
    group.add_argument("--status", help="only events with this status: a code (404), a class (5xx), error or ok")
    tail.add_argument("--token", default=os.environ.get("EVENT_GATEWAY_CONFIG_TOKEN"),
                      help="the gateway's config token (default: EVENT_GATEWAY_CONFIG_TOKEN)")
    tail.add_argument("--json", action="store_true", help="print each record as its JSON line instead")
    return tail


def _ms(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value * 1000:.0f}µs" if value < 1 else f"{value:.1f}ms"


def format_record(record: dict[str, Any], paint: Palette) -> str:
    """One line for one record (or for a ``{"dropped": n}`` notice)."""
    if "dropped" in record and "id" not in record:
        return paint(YELLOW, f"... {clean(record['dropped'])} events dropped: this terminal read too slowly")
    received = clean(record.get("receivedAt", ""))
    clock = received[11:23] if len(received) >= 23 else received
    status = record.get("status")
    error = bool(record.get("error"))
    parts = [paint(DIM, clock), paint(RED if error else GREEN, clean(status if status is not None else "-")),
             clean(record.get("space", "")), paint(BOLD, clean(record.get("type", ""))), paint(DIM, clean(record.get("id", "")))]
    if record.get("kind") == "delivery":
        parts.append(paint(CYAN, "delivery"))
    for stage in record.get("stages") or []:
        for plugin in stage.get("plugins") or []:
            verdict = clean(plugin.get("verdict", ""))
            text = f"{clean(plugin.get('plugin', ''))}:{verdict}"
            if plugin.get("status") is not None:
                text += f" {clean(plugin['status'])}"
            if plugin.get("faultKind"):
                text += f" {clean(plugin['faultKind'])}"
            colour = {"continue": GREEN, "rewrite": CYAN, "skipped": DIM}.get(verdict, RED)
            parts.append(paint(colour, text))
    for call in record.get("calls") or []:
        text = f"→{clean(call.get('functionId', ''))}"
        if call.get("status") is not None:
            text += f" {clean(call['status'])}"
        if not call.get("ok"):
            text += " failed"
        if (call.get("attempt") or 1) > 1:
            text += f" (attempt {clean(call['attempt'])})"
        parts.append(paint(GREEN if call.get("ok") else RED, text))
    parts.append(paint(DIM, _ms(record.get("durationMs"))))
    return "  ".join(parts)


def _url(args: argparse.Namespace) -> str:
    query = {key: value for key, value in (("space", args.space), ("type", args.event_type),
                                           ("status", "error" if args.errors else args.status)) if value}
    base = args.config_url.rstrip("/")
    return f"{base}/v1/events/tail" + (f"?{urllib.parse.urlencode(query)}" if query else "")


class _Fatal(Exception):
    pass


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
        return "; ".join(str(e.get("message", "")) for e in body.get("errors", [])) or str(exc.reason)
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)


def _stream(url: str, token: str | None, out: TextIO, paint: Palette, as_json: bool) -> bool:
    """Print the stream until it ends; True when anything was received (the connection worked)."""
    headers = {"Accept": "text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=READ_TIMEOUT)  # noqa: S310 - the operator's URL
    except urllib.error.HTTPError as exc:
        message = _error_message(exc)
        if exc.code in (400, 401, 403, 404):
            raise _Fatal(f"{exc.code}: {message}") from None
        raise OSError(f"{exc.code}: {message}") from None
    with response:
        print(f"connected to {url}", file=sys.stderr, flush=True)
        for raw in response:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line.startswith("data:"):
                continue
            data = line[5:].lstrip(" ")
            try:
                record = json.loads(data)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            print(clean(data) if as_json else format_record(record, paint), file=out, flush=True)
    return True


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    paint = Palette(out.isatty() and not os.environ.get("NO_COLOR"))
    if not args.config_url.startswith(("http://", "https://")):
        print(f"error: --config-url {clean(args.config_url)!s} must start with http:// or https://", file=sys.stderr)
        return 2
    url = _url(args)
    failures = 0
    try:
        while True:
            try:
                _stream(url, args.token, out, paint, args.json)
                failures = 0
                print("the gateway ended the stream (restarting?); reconnecting", file=sys.stderr, flush=True)
                time.sleep(_BACKOFF[0])
            except _Fatal as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            except (OSError, urllib.error.URLError, TimeoutError) as exc:
                reason = getattr(exc, "reason", exc)
                if failures == 0:
                    print(f"cannot reach {clean(args.config_url)} ({clean(reason)}); retrying until it is back",
                          file=sys.stderr, flush=True)
                time.sleep(_BACKOFF[min(failures, len(_BACKOFF) - 1)])
                failures += 1
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `event-gateway tail | head`
        return 0
