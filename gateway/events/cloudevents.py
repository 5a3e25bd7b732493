"""CloudEvents 0.1 and 1.0 as plain maps.

Events travel through the gateway as the JSON maps they arrived as, never converted between versions:
an event that arrives as 0.1 reaches functions as 0.1 and a 1.0 event as 1.0, so existing functions
written against the upstream gateway (0.1 only) keep working while new ones get 1.0. This module is the
one place that knows the attribute names of each version.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

__all__ = [
    "V01",
    "V10",
    "InvalidEvent",
    "absolute_uri_problem",
    "canonical_v01_keys",
    "decode_header_v01",
    "decode_header_v10",
    "event_id",
    "event_type",
    "json_type",
    "set_extension",
    "spec_version",
    "to_json",
    "uri_reference_problem",
    "validate",
    "validate_v01",
    "validate_v10",
]

V01 = "0.1"
V10 = "1.0"

_V10_REQUIRED = ("id", "source", "specversion", "type")
_V10_STRING_ATTRIBUTES = ("datacontenttype", "dataschema", "subject", "time")
_V10_ATTRIBUTE_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_V01_REQUIRED = ("eventType", "cloudEventsVersion", "source", "eventID")
_V01_STRING_ATTRIBUTES = ("eventTypeVersion", "eventTime", "schemaURL", "contentType")
#: Every key of upstream's 0.1 ``event.Event``, by its lower-case form.
_V01_KEYS = {name.lower(): name for name in (*_V01_REQUIRED, *_V01_STRING_ATTRIBUTES, "extensions", "data")}


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages a client reads ("got array", not "got list")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


#: Upstream's prefix of a CloudEvent that does not validate (``event.ErrParsingCloudEvent``).
_NOT_VALID = "CloudEvent doesn't validate: "


class InvalidEvent(ValueError):
    """The event is not a valid CloudEvent; the message names the attribute at fault."""


def spec_version(event: dict[str, Any]) -> str:
    """``"1.0"`` or ``"0.1"``: which attribute set the map uses."""
    return V10 if "specversion" in event else V01


def event_type(event: dict[str, Any]) -> str:
    """The type, read from the attribute of the event's own version (1.0 ``type``, 0.1 ``eventType``):
    never the other one, which in an event of the other version is just an unknown key."""
    value = event.get("type") if "specversion" in event else event.get("eventType")
    return value if isinstance(value, str) else ""


def canonical_v01_keys(event: Any) -> Any:
    """A map without ``specversion`` with its CloudEvents 0.1 keys spelled as the specification does,
    whatever case they came in (``eventId`` -> ``eventID``), as upstream read them: Go's ``encoding/json``
    matches struct keys case-insensitively, and when two spellings of one key are sent the later one wins,
    as in Go. Other keys and values are kept as they are; anything else is returned unchanged."""
    if not isinstance(event, dict) or "specversion" in event:
        return event
    if all(key in _V01_KEYS.values() or key.lower() not in _V01_KEYS for key in event):
        return event
    canonical: dict[str, Any] = {}
    for key, value in event.items():
        canonical[_V01_KEYS.get(key.lower()) or key] = value
    return canonical


def event_id(event: dict[str, Any]) -> str:
    return event.get("id") or event.get("eventID") or ""


def _check_time(where: str, name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidEvent(f"{where}: attribute {name!r} must be an RFC 3339 string")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidEvent(f"{where}: attribute {name!r} is not an RFC 3339 timestamp: {value!r}") from None


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# RFC 3986 appendix B: scheme, authority, path, query, fragment of any string.
_URI_PARTS = re.compile(r"(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?", re.DOTALL)
_PCHAR = "A-Za-z0-9\\-._~!$&'()*+,;=:@\u0080-\U0010ffff"  # unreserved, sub-delims, ':' '@', and IRI ucschar
_PCT = "%[0-9A-Fa-f]{2}"
_AUTHORITY_CHARS = re.compile(rf"(?:[{_PCHAR}\[\]]|{_PCT})*")
_PATH_CHARS = re.compile(rf"(?:[{_PCHAR}/]|{_PCT})*")
_QUERY_CHARS = re.compile(rf"(?:[{_PCHAR}/?]|{_PCT})*")


def uri_reference_problem(value: str) -> str | None:
    """Why ``value`` is not a URI-reference (RFC 3986 section 4.1; non-ASCII characters are accepted as
    in an IRI, RFC 3987, since binary-mode headers are percent-decoded), or None when it is one."""
    match = _URI_PARTS.fullmatch(value)
    if match is None:  # pragma: no cover - the expression matches every string
        return "it is not a URI-reference"
    scheme, authority, path, query, fragment = match.groups()
    if scheme is not None and not _SCHEME.fullmatch(scheme):
        return f"{scheme!r} before ':' is not a scheme (a letter, then letters, digits, '+', '-', '.')"
    for part, chars, name in ((authority, _AUTHORITY_CHARS, "authority"), (path, _PATH_CHARS, "path"),
                              (query, _QUERY_CHARS, "query"), (fragment, _QUERY_CHARS, "fragment")):
        if part is not None and not chars.fullmatch(part):
            bad = next((c for c in part if not chars.fullmatch(c) and c != "%"), "%")
            return f"its {name} contains {bad!r} (percent-encode it)" if bad != "%" else \
                f"its {name} has a '%' not followed by two hex digits"
    return None


def _go_port_ok(colon_port: str) -> bool:
    return colon_port == "" or (colon_port.startswith(":") and colon_port[1:].isascii()
                                and (colon_port[1:].isdigit() or colon_port == ":"))


_GO_HOST_OK = set("!$&'()*+,;=:[]<>\"-_.~")
_GO_USERINFO_OK = set("-._:~!$&'()*+,;=%@")
_BROKEN_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _go_host_problem(host: str) -> str | None:
    if host.startswith("["):
        end = host.rfind("]")
        if end < 0:
            return "missing ']' in its host"
        port = host[end + 1:]
    else:
        colon = host.rfind(":")
        port = host[colon:] if colon >= 0 else ""
    if not _go_port_ok(port):
        return f"invalid port {port!r} after its host"
    if _BROKEN_PCT.search(host):
        return "its host has a '%' not followed by two hex digits"
    for char in host:
        if char.isascii() and not char.isalnum() and char not in _GO_HOST_OK and char != "%":
            return f"invalid character {char!r} in its host name"
    return None


def absolute_uri_problem(value: str) -> str | None:
    """Why upstream's validator (go-playground/validator v9 ``uri``: the part before any ``#`` must pass
    Go's ``url.ParseRequestURI``) refused ``value``, or None when it accepted it: an absolute URI
    (``https://example.com/x``, ``urn:x``) or an absolute path (``/x``)."""
    value = value.split("#", 1)[0]
    if not value:
        return "it is empty before any '#'"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "it contains a control character"
    if value == "*":
        return None
    scheme = ""
    rest = value
    for index, char in enumerate(value):
        if char.isascii() and char.isalpha():
            continue
        if char.isascii() and (char.isdigit() or char in "+-."):
            if index == 0:
                break
            continue
        if char == ":":
            if index == 0:
                return "missing scheme before ':'"
            scheme, rest = value[:index], value[index + 1:]
        break
    rest = rest[:-1] if rest.endswith("?") and rest.count("?") == 1 else rest.split("?", 1)[0]
    if not rest.startswith("/"):
        return None if scheme else "it is neither an absolute URI (with a scheme) nor an absolute path"
    if scheme and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
        userinfo, at, host = authority.rpartition("@")
        if at and (any(not (c.isascii() and c.isalnum()) and c not in _GO_USERINFO_OK for c in userinfo)
                   or _BROKEN_PCT.search(userinfo)):
            return "invalid userinfo"
        problem = _go_host_problem(host)
        if problem is not None:
            return problem
    if _BROKEN_PCT.search(rest):
        return "its path has a '%' not followed by two hex digits"
    return None


def _check_source(where: str, event: dict[str, Any], version: str) -> None:
    source = event["source"]
    if version == V10:
        problem = uri_reference_problem(source)
        rule = "a URI-reference (CloudEvents 1.0)"
    else:
        problem = absolute_uri_problem(source)
        rule = "an absolute URI or an absolute path (CloudEvents 0.1, as the upstream gateway checked it)"
    if problem is not None:
        raise InvalidEvent(f"{where}: attribute 'source' must be {rule}: {_short(source)}: {problem}")


def _with_upstream_prefix(check: Callable[[Any, str], dict[str, Any]], event: Any, where: str) -> dict[str, Any]:
    """``check(event, where)``, its refusal prefixed with upstream's ``CloudEvent doesn't validate:``."""
    try:
        return check(event, where)
    except InvalidEvent as exc:
        raise InvalidEvent(f"{_NOT_VALID}{exc}") from None


def validate_v10(event: Any, where: str = "event") -> dict[str, Any]:
    """``event`` checked (see ``_validate_v10``); a refusal starts with upstream's
    ``CloudEvent doesn't validate:``."""
    return _with_upstream_prefix(_validate_v10, event, where)


def _validate_v10(event: Any, where: str) -> dict[str, Any]:
    """Check a CloudEvents 1.0 map (JSON format); returns it unchanged."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"{where}: a CloudEvent must be a JSON object, got {json_type(event)}")
    for name in _V10_REQUIRED:
        value = event.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidEvent(f"{where}: required attribute {name!r} is missing or not a non-empty string")
    if event["specversion"] != V10:
        raise InvalidEvent(f"{where}: unsupported specversion {event['specversion']!r} (supported: '1.0', '0.1')")
    _check_source(where, event, V10)
    for name in _V10_STRING_ATTRIBUTES:
        if name in event and event[name] is not None and not isinstance(event[name], str):
            raise InvalidEvent(f"{where}: attribute {name!r} must be a string")
    if event.get("time") is not None:
        _check_time(where, "time", event["time"])
    if "data" in event and "data_base64" in event:
        raise InvalidEvent(f"{where}: 'data' and 'data_base64' are mutually exclusive")
    if "data_base64" in event and not isinstance(event["data_base64"], str):
        raise InvalidEvent(f"{where}: 'data_base64' must be a base64 string")
    for name in event:
        if name not in ("data", "data_base64") and not _V10_ATTRIBUTE_NAME.match(name):
            raise InvalidEvent(
                f"{where}: attribute name {name!r} is invalid (lower-case letters and digits, at most 20)")
    return event


def validate_v01(event: Any, where: str = "event") -> dict[str, Any]:
    """``event`` checked (see ``_validate_v01``); a refusal starts with upstream's
    ``CloudEvent doesn't validate:``."""
    return _with_upstream_prefix(_validate_v01, event, where)


def _validate_v01(event: Any, where: str) -> dict[str, Any]:
    """Check a CloudEvents 0.1 map, the upstream gateway's format; returns it unchanged."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"{where}: a CloudEvent must be a JSON object, got {json_type(event)}")
    for name in _V01_REQUIRED:
        value = event.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidEvent(f"{where}: required attribute {name!r} is missing or not a non-empty string")
    if event["cloudEventsVersion"] != V01:
        raise InvalidEvent(
            f"{where}: unsupported cloudEventsVersion {event['cloudEventsVersion']!r} (supported: '0.1', '1.0')")
    _check_source(where, event, V01)
    for name in _V01_STRING_ATTRIBUTES:
        if name in event and event[name] is not None and not isinstance(event[name], str):
            raise InvalidEvent(f"{where}: attribute {name!r} must be a string")
    if event.get("eventTime"):
        _check_time(where, "eventTime", event["eventTime"])
    if "type" in event and event["type"] != event["eventType"]:
        # 0.1 names its type 'eventType'; a 'type' key that says something else would make readers of the
        # event disagree about what it is (a function reading 'type' would see another type than routing).
        raise InvalidEvent(
            f"{where}: a CloudEvents 0.1 event's type is 'eventType' ({_short(event['eventType'])}); its 'type' key "
            f"({_short(event['type'])}) differs, which is ambiguous: remove 'type' or make it equal to 'eventType'")
    if event.get("extensions") is not None and not isinstance(event["extensions"], dict):
        raise InvalidEvent(f"{where}: attribute 'extensions' must be an object")
    return event


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def validate(event: Any, where: str = "event") -> dict[str, Any]:
    """Validate a structured event of either version, chosen by its attributes."""
    if isinstance(event, dict) and "specversion" in event:
        return validate_v10(event, where)
    if isinstance(event, dict) and "cloudEventsVersion" in event:
        return validate_v01(event, where)
    if isinstance(event, dict):
        raise InvalidEvent(f"{_NOT_VALID}{where}: neither 'specversion' (CloudEvents 1.0) nor 'cloudEventsVersion' "
                           "(0.1) is set")
    raise InvalidEvent(f"{_NOT_VALID}{where}: a CloudEvent must be a JSON object, got {json_type(event)}")


_BROKEN_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _percent_decode(name: str, value: str) -> str:
    """One round of percent-decoding of a header value into UTF-8 text, or InvalidEvent naming the header.

    Headers reach the parser decoded as latin-1 (the HTTP layer's byte-preserving choice), so encoding
    back to latin-1 gives the bytes the client sent: a sender that put raw UTF-8 in the header instead of
    percent-encoding it is still read right. Unnecessary escapes (``%41``) and lower-case hex are
    accepted, as the binding requires; a ``%`` not followed by two hex digits, or escapes that decode to
    invalid UTF-8 (such as the overlong ``%C0%A0``), are refused.
    """
    raw = value.encode("latin-1", errors="replace")
    broken = _BROKEN_ESCAPE.search(raw)
    if broken is not None:
        raise InvalidEvent(
            f"header {name!r}: '%' at position {broken.start()} is not followed by two hex digits "
            "(CloudEvents header values are percent-encoded: send '%25' for a literal '%')")
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(
            f"header {name!r}: the percent-decoded value is not valid UTF-8 ({exc.reason} at byte {exc.start} of it)"
        ) from None


def _unquote_quoted_string(name: str, value: str) -> str:
    r"""RFC 7230 section 3.2.6 quoted-string, reversed: ``"a \"b\""`` -> ``a "b"``."""
    out: list[str] = []
    index = 1
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            out.append(value[index + 1])
            index += 2
            continue
        if char == '"':
            if index != len(value) - 1:
                raise InvalidEvent(f"header {name!r}: text after the closing quote of a quoted value")
            return "".join(out)
        out.append(char)
        index += 1
    raise InvalidEvent(f"header {name!r}: a quoted value has no closing '\"'")


def decode_header_v10(name: str, value: str) -> str:
    """A ``ce-*`` header value (CloudEvents 1.0 HTTP binding, binary mode, section 3.1.3.2) -> the
    attribute's string: a double-quoted value is unquoted first (RFC 7230 quoted-string, which senders of
    older 1.0.x versions used), then exactly one round of percent-decoding is applied."""
    value = value.strip(" \t")
    if value.startswith('"'):
        value = _unquote_quoted_string(name, value)
    return _percent_decode(name, value)


def decode_header_v01(name: str, value: str) -> str:
    """A ``CE-*`` header value (CloudEvents 0.1 HTTP binding, binary mode, section 3.1.3.2) -> the
    attribute's string. 0.1 puts the attribute's JSON value in the header, its non-ASCII and
    non-printable octets percent-encoded (and '%' as RFC 3986 says): so the value is percent-decoded,
    then a JSON string literal (``"com.example.someevent"``, the spec's own examples) is unquoted. Bare
    values, which the upstream gateway and its clients used, are kept as the string they are; other JSON
    (numbers, objects) stays text too, as upstream passed it. A value that is not valid percent-encoding
    (``50% off``) is kept as sent: upstream passed 0.1 values through undecoded, and its clients must keep
    working."""
    raw = value.strip(" \t")
    try:
        text = _percent_decode(name, raw)
    except InvalidEvent:
        text = raw
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        try:
            decoded = json.loads(text)
        except ValueError:
            raise InvalidEvent(f"header {name!r}: {text!r} is not a valid JSON string") from None
        if isinstance(decoded, str):
            return decoded
    return text


def set_extension(event: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    """A copy of ``event`` with one gateway extension set: under ``extensions`` in 0.1, as a top-level
    attribute in 1.0 (where extensions live)."""
    copy = dict(event)
    if spec_version(event) == V10:
        copy[name] = value
    else:
        extensions = dict(copy.get("extensions") or {})
        extensions[name] = value
        copy["extensions"] = extensions
    return copy


def to_json(event: dict[str, Any]) -> bytes:
    """The structured-mode body a function receives (``application/cloudevents+json``)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
