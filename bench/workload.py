"""What the Events API benchmarks send and call: the wrk script posting CloudEvents 1.0 structured events
(each with its own id), and the http function answering every call with a fixed sync response object."""

from __future__ import annotations

from typing import Any

__all__ = ["cloudevents_wrk_script", "sync_function_app"]

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
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = b'{"statusCode":200,"body":"ok"}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
