"""HTTP request -> the events it carries.

The order of the checks is the contract with clients, most specific first:

1. ``Content-Type: application/cloudevents-batch+json``: a JSON array of CloudEvents 1.0 (batch mode);
2. ``Content-Type: application/cloudevents+json``: one structured CloudEvent, 1.0 or 0.1;
3. a ``ce-specversion`` header: CloudEvents 1.0 binary mode (attributes in ``ce-*`` headers);
4. a ``CE-EventType`` / ``CE-CloudEventsVersion`` header: CloudEvents 0.1 binary mode (upstream);
5. an ``Event: <type>`` header: the upstream legacy form, the body becomes the data of a 0.1 event
   (unless the body is a JSON object that is a valid CloudEvent: then it is that event);
6. ``application/json`` whose body is a valid CloudEvent (it sets ``specversion`` or
   ``cloudEventsVersion`` and validates);
7. anything else: an ``http.request`` 0.1 event with the upstream data fields.

As upstream: a structured or binary-mode request that is not a valid CloudEvent is refused (400) with the
reason; in legacy mode and in an ``application/json`` body, a JSON object that does not validate as a
CloudEvent is not refused but handled as any other body (5 and 7), as the upstream gateway did. In 2 and
5 a body without ``specversion`` has its 0.1 keys matched in any case (``eventId``), as Go's
``encoding/json`` matched them for upstream (:func:`~gateway.events.cloudevents.canonical_v01_keys`).
"""

from __future__ import annotations

import base64
import functools
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from gateway.common import rfc3339
from wasm_abi.events import SYSTEM_EVENT_PREFIX, is_system_event_type

from . import cloudevents as ce
from .json_body import loads as _json_loads

__all__ = [
    "DEFAULT_MAX_BATCH_EVENTS",
    "HTTP_REQUEST_TYPE",
    "TRANSFORMATION_SOURCE",
    "ParsedRequest",
    "RawRequest",
    "flatten_headers",
    "parse_request",
    "refuse_reserved",
]

HTTP_REQUEST_TYPE = "http.request"
TRANSFORMATION_VERSION = "0.1"
TRANSFORMATION_SOURCE = f"https://serverless.com/event-gateway/#transformationVersion={TRANSFORMATION_VERSION}"

_BATCH = "application/cloudevents-batch+json"
#: Default of ``--max-batch-events``: every event of a batch passes the plugins and is queued, so the count
#: (not just the body size) bounds the work and memory of one request.
DEFAULT_MAX_BATCH_EVENTS = 1000
_STRUCTURED = "application/cloudevents+json"
_V01_BINARY_ATTRIBUTES = {
    "ce-eventtype": "eventType",
    "ce-eventtypeversion": "eventTypeVersion",
    "ce-cloudeventsversion": "cloudEventsVersion",
    "ce-source": "source",
    "ce-eventid": "eventID",
    "ce-eventtime": "eventTime",
    "ce-schemaurl": "schemaURL",
    "ce-contenttype": "contentType",
}


@dataclass(frozen=True, slots=True)
class RawRequest:
    """What the parser needs from an HTTP request, independent of the web framework."""

    method: str
    path: str
    host: str
    headers: list[tuple[str, str]]
    query: dict[str, list[str]]
    body: bytes
    #: Most events one ``application/cloudevents-batch+json`` request may carry (``--max-batch-events``).
    max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS
    #: ``headers`` by canonical name, computed once here: everything after the edge reads this.
    fields: Headers = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", Headers(self.headers))

    def header(self, name: str) -> str | None:
        return self.fields.get(name)


@dataclass(slots=True)
class ParsedRequest:
    """The events of one request. ``batch`` requests are delivered to async subscribers only."""

    events: list[dict[str, Any]]
    batch: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    #: The request's media type (lower case, no parameters), by the parser's strict rule.
    mime: str = ""
    #: The ``http.request`` wrapping of a plain HTTP request (its only event), when that is what it was.
    wrapped: dict[str, Any] | None = None

    def request_data(self, request: RawRequest) -> dict[str, Any]:
        """The request as ``http.request`` data (for authorizers): the wrapping made while parsing when
        there is one, else made now with the same media type; a fresh dict either way."""
        if self.wrapped is not None:
            return dict(self.wrapped["data"])
        return http_request_event(request, self.mime, self.headers)["data"]


def _now() -> str:
    return rfc3339(millis=True)


@functools.lru_cache(maxsize=1024)
def _canonical(name: str) -> str:
    """Go's canonical form of a header name (``content-type`` -> ``Content-Type``). Memoized: every
    request names the same few headers (bounded: clients choose the names)."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


class Headers:
    """A request's header fields, computed once from the wire's (name, value) pairs: by canonical name
    (as Go's ``http.Header``). :meth:`get` is a name's first value (Go's ``Header.Get``); :attr:`flat`
    joins each name's values with ``", "``, the form events and plugins see (as upstream)."""

    __slots__ = ("_first", "flat")

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        flat: dict[str, str] = {}
        first: dict[str, str] = {}
        for name, value in pairs:
            key = _canonical(name)
            if key in flat:
                flat[key] = f"{flat[key]}, {value}"
            else:
                flat[key] = first[key] = value
        self.flat = flat
        self._first = first

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (any case)."""
        value = self._first.get(name)
        if value is None:
            value = self._first.get(_canonical(name))
        return default if value is None else value


def flatten_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Header name (canonical case, as Go's ``http.Header``) -> values joined by ``", "``, as upstream."""
    return Headers(headers).flat


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # RFC 7230 section 3.2.6 tchar
_MEDIA_TYPE = re.compile(rf"[ \t]*(?P<type>{_TOKEN})/(?P<subtype>{_TOKEN})[ \t]*")
_PARAMETER = re.compile(rf'[ \t]*(?P<name>{_TOKEN})[ \t]*=[ \t]*(?P<value>{_TOKEN}|"(?:[^"\\]|\\.)*")[ \t]*')


def _malformed(content_type: str, reason: str) -> ce.InvalidEvent:
    return ce.InvalidEvent(f"Content-Type header {content_type!r} is malformed: {reason}")


def _mime(content_type: str | None) -> str:
    """The media type (``type/subtype``, lower case) of a ``Content-Type`` header, checked.

    The grammar is RFC 7231's ``type "/" subtype *( OWS ";" OWS parameter )``. A value that does not
    follow it is refused (400) naming the value and what is wrong, as the upstream gateway refused what
    Go's ``mime.ParseMediaType`` could not parse; guessing at such a body's type would mis-read it
    silently. Like Go, spaces around ``=`` and stray ``;`` are tolerated. An unknown but well-formed
    type (``foo/bar``) is not malformed: its body is just opaque. No header, or an empty one, means
    ``application/octet-stream``.
    """
    if content_type is None or not content_type.strip(" \t"):
        return "application/octet-stream"
    head, _, params = content_type.partition(";")
    media = _MEDIA_TYPE.fullmatch(head)
    if media is None:
        stripped = head.strip(" \t")
        if "/" not in stripped:
            reason = "expected a media type 'type/subtype' (such as application/json)"
        else:
            reason = f"{stripped!r} is not a media type 'type/subtype' of tokens (letters, digits, !#$%&'*+-.^_`|~)"
        raise _malformed(content_type, reason)
    rest = params if _ else None
    while rest is not None:
        stripped = rest.lstrip(" \t")
        if not stripped or stripped.startswith(";"):  # an empty parameter: a stray ';'
            rest = stripped[1:] if stripped else None
            continue
        parameter = _PARAMETER.match(rest)
        end = parameter.end() if parameter is not None else 0
        if parameter is None or (end < len(rest) and rest[end] != ";"):
            shown = (stripped if '"' in stripped else stripped.split(";", 1)[0]).rstrip(" \t")
            raise _malformed(content_type, f"parameter {shown!r} is not name=value "
                                           "(the value a token or a \"quoted string\")")
        rest = rest[end + 1:] if end < len(rest) else None
    return f"{media['type']}/{media['subtype']}".lower()


def _is_json(mime: str) -> bool:
    return mime == "application/json" or mime.endswith("+json")


def _is_text(mime: str) -> bool:
    return (mime.startswith(("text/", "multipart/form-data")) or mime.endswith("+xml")
            or mime in ("application/x-www-form-urlencoded", "application/xml"))


def _body_value(body: bytes, mime: str) -> tuple[Any, bool]:
    """The body as event data: ``(value, is_base64)``. JSON is decoded, text kept as a string, anything
    else base64-encoded (what the upstream gateway's Go ``[]byte`` turned into)."""
    if not body:
        return None, False
    if _is_json(mime):
        try:
            return _json_loads(body), False
        except ValueError:
            pass
    if _is_json(mime) or _is_text(mime):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def _load_json(body: bytes, what: str) -> Any:
    try:
        return _json_loads(body)
    except ValueError as exc:
        raise ce.InvalidEvent(f"{what}: body is not valid JSON ({exc})") from None


def _binary_v10(request: RawRequest, mime: str) -> dict[str, Any]:
    where = "binary-mode CloudEvent (ce-* headers)"
    event: dict[str, Any] = {}
    for name, value in request.headers:
        lower = name.lower()
        if lower.startswith("ce-"):
            try:
                event[lower[3:]] = ce.decode_header_v10(lower, value)
            except ce.InvalidEvent as exc:
                raise ce.InvalidEvent(f"{where}: {exc}") from None
    if request.header("content-type"):
        event["datacontenttype"] = request.header("content-type")
    value, is_base64 = _body_value(request.body, mime)
    if value is not None:
        event["data_base64" if is_base64 else "data"] = value
    return ce.validate_v10(event, where)


def _binary_v01(request: RawRequest, mime: str) -> dict[str, Any]:
    where = "binary-mode CloudEvent 0.1 (CE-* headers)"
    event: dict[str, Any] = {}
    extensions: dict[str, str] = {}
    try:
        for name, value in request.headers:
            lower = name.lower()
            if lower in _V01_BINARY_ATTRIBUTES:
                event[_V01_BINARY_ATTRIBUTES[lower]] = ce.decode_header_v01(lower, value)
            elif lower.startswith("ce-x-"):
                extensions[lower[5:]] = ce.decode_header_v01(lower, value)
    except ce.InvalidEvent as exc:
        raise ce.InvalidEvent(f"{where}: {exc}") from None
    if extensions:
        event["extensions"] = extensions
    if "contentType" not in event and request.header("content-type"):
        event["contentType"] = request.header("content-type")
    event["data"], _ = _body_value(request.body, mime)
    return ce.validate_v01(event, where)


def _wrap_v01(event_type: str, content_type: str, data: Any) -> dict[str, Any]:
    """A 0.1 event the gateway made from a request, as upstream's ``event.New``: its source and the
    ``eventgateway`` extension say it was transformed, and by which version of the transformation."""
    return {
        "eventType": event_type,
        "cloudEventsVersion": ce.V01,
        "source": TRANSFORMATION_SOURCE,
        "eventID": str(uuid.uuid4()),
        "eventTime": _now(),
        "contentType": content_type,
        "data": data,
        "extensions": {
            "eventgateway": {"transformed": "true", "transformation-version": TRANSFORMATION_VERSION},
        },
    }


def _legacy(request: RawRequest, event_type: str, mime: str) -> dict[str, Any]:
    """Upstream's legacy mode (``event/event.go`` ``FromRequest``): a JSON body that is a valid CloudEvent
    is that event; any other body, including JSON that is not a valid CloudEvent (such as
    ``{"eventType": "user.created"}``), becomes the data of an event of the header's type."""
    candidate = _json_object(request.body) if _is_json(mime) else None
    if candidate is not None:
        try:
            return ce.validate(ce.canonical_v01_keys(candidate), "CloudEvent body of an 'Event' header request")
        except ce.InvalidEvent:
            pass
    data, _ = _body_value(request.body, mime)
    return _wrap_v01(event_type, mime, data)


def _json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None (empty, not JSON, or JSON of another kind)."""
    if not body:
        return None
    try:
        value = _json_loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def http_request_event(request: RawRequest, mime: str, headers: dict[str, str]) -> dict[str, Any]:
    """The upstream ``http.request`` wrapping of a plain HTTP request (``params`` filled by routing).
    Its ``contentType`` is ``application/json`` whatever the request's, as upstream: it describes
    ``data`` (the request as a JSON object), while the request's own type stays in ``data.headers``."""
    body, _ = _body_value(request.body, mime)
    data = {
        # Without Host, which is data.host only: Go's server moved it out of r.Header (upstream).
        "headers": {name: value for name, value in headers.items() if name != "Host"},
        "query": request.query,
        "body": "" if body is None else body,
        "host": request.host,
        "path": unquote(request.path),  # decoded, as upstream's r.URL.Path
        "method": request.method,
        "params": {},
    }
    return _wrap_v01(HTTP_REQUEST_TYPE, "application/json", data)


def refuse_reserved(event: dict[str, Any], where: str = "event") -> None:
    """Refuse an event claiming a system type (``eventgateway.*``) in either type attribute, ``type``
    (1.0) or ``eventType`` (0.1), whatever its version: those events are emitted by the gateway only."""
    for key in ("type", "eventType"):
        value = event.get(key)
        if is_system_event_type(value):
            shown = value if len(value) <= 80 else f"{value[:77]}..."
            raise ce.InvalidEvent(f"{where}: event type {shown!r} (attribute {key!r}) is reserved: "
                                  f"'{SYSTEM_EVENT_PREFIX}*' events are emitted by the gateway only")


def _refuse_system(events: list[dict[str, Any]]) -> None:
    for index, event in enumerate(events):
        refuse_reserved(event, f"batch item {index}" if len(events) > 1 else "event")


def parse_request(request: RawRequest) -> ParsedRequest:
    """Parse the events of a request; raises :class:`~gateway.events.cloudevents.InvalidEvent` (400)."""
    headers = request.fields.flat
    mime = _mime(request.header("content-type"))
    wrapped = None
    batch = False
    if mime == _BATCH:
        items = _load_json(request.body, "batch of CloudEvents")
        if not isinstance(items, list) or not items:
            raise ce.InvalidEvent("batch of CloudEvents: body must be a non-empty JSON array")
        if len(items) > request.max_batch_events:
            raise ce.InvalidEvent(
                f"batch of CloudEvents: {len(items)} events, over the limit of {request.max_batch_events} per "
                "request (the gateway's --max-batch-events): send them in smaller batches")
        events = [ce.validate_v10(item, f"batch item {index}") for index, item in enumerate(items)]
        batch = True
    elif mime == _STRUCTURED:
        structured = ce.canonical_v01_keys(_load_json(request.body, "structured CloudEvent"))
        events = [ce.validate(structured, "structured CloudEvent")]
    elif request.header("ce-specversion") is not None:
        events = [_binary_v10(request, mime)]
    elif request.header("ce-eventtype") is not None or request.header("ce-cloudeventsversion") is not None:
        events = [_binary_v01(request, mime)]
    elif request.header("event"):
        events = [_legacy(request, request.header("event") or "", mime)]
    else:
        events = []
        candidate = _json_object(request.body) if mime == "application/json" else None
        if candidate is not None and ("specversion" in candidate or "cloudEventsVersion" in candidate):
            # A valid CloudEvent stays one; one that does not validate is a plain JSON request, as upstream
            # handled every application/json body (the Python SDK's emit sends no eventID, for one).
            try:
                events = [ce.validate(candidate, "CloudEvent in an application/json body")]
            except ce.InvalidEvent:
                events = []
        if not events:
            wrapped = http_request_event(request, mime, headers)
            events = [wrapped]
    _refuse_system(events)
    return ParsedRequest(events=events, batch=batch, headers=headers, mime=mime, wrapped=wrapped)
