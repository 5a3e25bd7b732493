"""Event type authorizers, with the upstream contract.

The authorizer function receives ``{"event": <event>, "request": <http request data>}`` and answers
``{"authorization": {"principalId": ..., "context": {...}}}`` to allow, or ``{"error": {"message": ...}}``
to deny. Anything else (a failed call, a malformed answer) denies. On success the authorization is
attached to the event as the ``eventgateway`` extension (``extensions.eventgateway`` in 0.1, a top-level
``eventgateway`` attribute in 1.0), next to what the gateway already put there.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from gateway.events import cloudevents as ce
from gateway.events.json_body import loads

from .invoke import Invoker

__all__ = ["Authorization", "authorize"]

log = logging.getLogger("gateway.pipeline.authorizer")


@dataclass(frozen=True, slots=True)
class Authorization:
    event: dict[str, Any] | None  # the event with the authorization attached; None when denied
    message: str = ""


async def authorize(invoker: Invoker, space: str, authorizer_id: str, event: dict[str, Any],
                    request: dict[str, Any]) -> Authorization:
    payload = json.dumps({"event": event, "request": request}, separators=(",", ":")).encode()
    result = await invoker.call(space, authorizer_id, payload, "authorizer")
    if not result.ok:
        log.info("authorizer %s/%s failed: %s", space, authorizer_id, result.error)
        return Authorization(None, "authorization failed: authorizer call failed")
    try:
        answer = loads(result.body or b"")
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return Authorization(None, "authorization failed: authorizer response malformed")
    error = answer.get("error")
    if isinstance(error, dict) and error.get("message"):
        return Authorization(None, str(error["message"]))
    authorization = answer.get("authorization")
    if not isinstance(authorization, dict) or not authorization.get("principalId"):
        return Authorization(None, "authorization failed: no principalId in authorizer response")
    attached: dict[str, Any] = {"principalId": str(authorization["principalId"])}
    if isinstance(authorization.get("context"), dict):
        attached["context"] = {str(k): str(v) for k, v in authorization["context"].items()}
    if ce.spec_version(event) == ce.V10:
        current = event.get("eventgateway")
    else:
        current = (event.get("extensions") or {}).get("eventgateway")
    extension = dict(current) if isinstance(current, dict) else {}
    extension["authorization"] = attached
    return Authorization(ce.set_extension(event, "eventgateway", extension))
