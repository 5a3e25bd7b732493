"""What the Events API benchmarks share: the wrk script posting CloudEvents 1.0 structured events (each with its
own id) and the wrk run reading its counts and percentiles, the http function answering every call with a fixed
sync response object, and stopping a server process."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["cloudevents_wrk_script", "read_body", "run_wrk", "stop_process", "sync_function_app"]

_WRK_SCRIPT = """
local prefix = "r"
local counter = 0
local thread_index = 0
function setup(thread)
  thread_index = thread_index + 1
  thread:set("tid", thread_index)
end
function init(args)
  prefix = args[1] or "r"
end
function request()
  counter = counter + 1
  local body = string.format(
    '{"specversion":"1.0","type":"bench.event","source":"/bench","id":"%s-%d-%d",' ..
    '"datacontenttype":"application/json","data":{"n":%d,"text":"%s"}}',
    prefix, tid, counter, counter, string.rep("x", 64))
  return wrk.format("POST", "PATH", {["Content-Type"] = "application/cloudevents+json"}, body)
end
"""


def cloudevents_wrk_script(path: str = "/") -> str:
    """A wrk Lua script POSTing to ``path`` a CloudEvent of type ``bench.event`` whose id is
    ``<prefix>-<thread>-<n>`` (``prefix``: the script's first argument after ``--``, default ``r``)."""
    return _WRK_SCRIPT.replace('"PATH"', '"' + path + '"')


async def sync_function_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The http function: reads the event, answers a fixed sync response object."""
    if scope["type"] != "http":
        return
    await read_body(receive)
    body = b'{"statusCode":200,"body":"ok"}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Any) -> None:
    """Reads (and drops) an ASGI request's whole body."""
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)


_WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(url: str, concurrency: int, seconds: float, prefix: str, script: Path) -> tuple[int, int, float, float]:
    """(2xx answers, other answers and socket errors, p50 ms, p99 ms) of one wrk run (2 threads, ``--latency``,
    10 s timeout) with ``script`` given ``prefix`` as its argument."""
    out = subprocess.run(["wrk", "-t", "2", "-c", str(concurrency), "-d", f"{seconds:g}s", "--latency",
                          "--timeout", "10s", "-s", str(script), url, "--", prefix],
                         capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    refused = int(bad.group(1)) if bad else 0
    failed = sum(int(g) for g in socket_errors.groups()) if socket_errors else 0
    latency = {p: float(v) * _UNITS[unit] for p, v, unit in _WRK_LATENCY.findall(out)}
    return total - refused, refused + failed, latency.get("50", float("nan")), latency.get("99", float("nan"))


def stop_process(process: subprocess.Popen[Any], grace: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds; nothing if it has exited."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
