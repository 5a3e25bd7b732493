"""The OTLP trace export request, encoded by hand (issue 15): ``ExportTraceServiceRequest`` protobuf bytes.

The SDK's exporter builds a protobuf message object per span, attribute and value before serialising them:
~20 µs per span plus ~3.5 µs per attribute, on a thread that holds the GIL the event loop needs. The few
message types of a trace export are simple (varints, fixed64 times, length-delimited strings and
sub-messages), so :class:`OtlpEncoder` writes their bytes directly, with the resource and scope encoded once
and each attribute key's bytes cached. The field numbers are those of ``opentelemetry/proto/trace/v1/trace.proto``
and ``common/v1/common.proto`` (tests decode the output with ``opentelemetry-proto``).

Values are bounded as the SDK's limits bound them: a string longer than ``value_limit`` characters is cut to it
(``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` / ``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT``), at most ``count_limit``
attributes are kept per span, event and link (``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT``; the rest are counted in
``dropped_attributes_count``). Text that is not valid Unicode (lone surrogates) is sent with ``?`` in place
of what cannot be encoded as UTF-8, which protobuf strings must be. An int outside int64 is sent as its
decimal string (its hex past Python's 4300-digit limit for decimal text); a value of a type OTLP has no
place for (None, an object) as its ``str()``. An array holds primitives only (as OTLP's attribute arrays,
and the SDK's checks, want): an array, dict or set inside one is sent as its text, shortened at depth and
length by :mod:`reprlib` (so is a dict or set itself) -- an array nested deeper than a collector's protobuf
decoder allows (upb: 100 messages) would have it refuse the whole batch, and one nested deeper than
Python's recursion limit would have failed its encoding.
"""

from __future__ import annotations

import reprlib
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = ["FinishedSpan", "OtlpEncoder", "SpanEvent"]

_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_U64 = (1 << 64) - 1
_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack
_double = struct.Struct("<d").pack

#: The text of a container that is no OTLP value: bounded in depth and length, whatever it holds.
_CONTAINER_TEXT = reprlib.Repr()
_CONTAINER_TEXT.maxlevel = 4
_CONTAINER_TEXT.maxlist = _CONTAINER_TEXT.maxtuple = _CONTAINER_TEXT.maxdict = 64
_CONTAINER_TEXT.maxset = _CONTAINER_TEXT.maxfrozenset = 64
_CONTAINER_TEXT.maxstring = _CONTAINER_TEXT.maxother = 256
_CONTAINERS = (list, tuple, dict, set, frozenset)

#: Span.flags: the W3C trace flags are not repeated here; bit 8 says whether bit 9 (parent is remote) is known.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200


class SpanEvent(NamedTuple):
    """An event of a span (``Span.Event``)."""

    name: str
    timestamp: int
    attributes: Mapping[str, Any]


class FinishedSpan(NamedTuple):
    """What the encoder reads of an ended span (by attribute: the tracer's ``LiteSpan`` has the same fields)."""

    name: str
    trace_id: int
    span_id: int
    parent_span_id: int  # 0: a root span
    parent_remote: bool | None  # None: no parent
    trace_state: Any  # opentelemetry.trace.TraceState, or None
    kind: int  # the OTLP SpanKind number (1 internal ... 5 consumer)
    start: int
    end_time: int
    attributes: Mapping[str, Any] | None
    events: Sequence[SpanEvent]
    links: Sequence[Any]  # opentelemetry.trace.Link (context, attributes)
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str | None


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


#: The varints of 0..2047, the lengths almost every field has.
_SMALL = tuple(_varint(n) for n in range(2048))


def _len(n: int) -> bytes:
    return _SMALL[n] if n < 2048 else _varint(n)


def _text(value: str) -> bytes:
    try:
        return value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace")


def _int_text(value: int) -> str:
    """An int outside int64 as decimal text; past Python's digit limit for that (4300), its hex."""
    try:
        return str(value)
    except ValueError:
        return hex(value)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (``tag`` is the whole key byte: field number << 3 | 2)."""
    return bytes((tag,)) + _len(len(payload)) + payload


class OtlpEncoder:
    """Encodes batches of :class:`FinishedSpan` for one resource and instrumentation scope."""

    def __init__(self, resource: Mapping[str, Any], scope: str, scope_version: str | None = None, *,
                 value_limit: int | None = None, count_limit: int | None = 128) -> None:
        self.value_limit = value_limit
        self.count_limit: int | None = None  # the resource's attributes are not a span's: not limited
        self._keys: dict[str, bytes] = {}
        #: Whole KeyValue bytes of recurring (key, short value) pairs; cleared when it grows past its bound.
        self._pairs: dict[int, dict[str, dict[Any, bytes]]] = {}
        self._cached = 0
        resource_fields = self._attributes(resource, 0x0A)[0]  # Resource.attributes = 1
        self.count_limit = count_limit
        self._resource = _field(0x0A, resource_fields)  # ResourceSpans.resource = 1
        scope_fields = _field(0x0A, _text(scope)) + (_field(0x12, _text(scope_version)) if scope_version else b"")
        self._scope = _field(0x0A, scope_fields)  # ScopeSpans.scope = 1

    # -- values ---------------------------------------------------------------------------------------------

    def _key(self, key: str) -> bytes:
        encoded = self._keys.get(key)
        if encoded is None:
            if len(self._keys) >= 4096:
                self._keys.clear()
            encoded = self._keys[key] = _field(0x0A, _text(str(key)))  # KeyValue.key = 1
        return encoded

    def _string(self, value: str) -> bytes:
        limit = self.value_limit
        if limit is not None and len(value) > limit:
            value = value[:limit]
        return _text(value)

    def _any(self, value: Any) -> bytes:
        """The fields of an ``AnyValue`` holding ``value``."""
        if isinstance(value, str):
            return _field(0x0A, self._string(value))  # string_value = 1
        if isinstance(value, bool):
            return b"\x10\x01" if value else b"\x10\x00"  # bool_value = 2
        if isinstance(value, int):
            if _I64_MIN <= value <= _I64_MAX:
                return b"\x18" + _varint(value & _U64)  # int_value = 3
            return _field(0x0A, self._string(_int_text(value)))
        if isinstance(value, float):
            return b"\x21" + _double(value)  # double_value = 4
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            if self.value_limit is not None and len(data) > self.value_limit:
                data = data[:self.value_limit]
            return _field(0x3A, data)  # bytes_value = 7
        if isinstance(value, (list, tuple)):
            items = b"".join(_field(0x0A, self._any(item) if not isinstance(item, _CONTAINERS)
                                    else _field(0x0A, self._string(_CONTAINER_TEXT.repr(item))))
                             for item in value)  # ArrayValue.values = 1
            return _field(0x2A, items)  # array_value = 5
        if isinstance(value, _CONTAINERS):
            return _field(0x0A, self._string(_CONTAINER_TEXT.repr(value)))
        return _field(0x0A, self._string(str(value)))

    def _key_value(self, key: str, value: Any) -> bytes:
        return self._key(key) + _field(0x12, self._any(value))  # KeyValue.value = 2

    def _attributes(self, attributes: Mapping[str, Any] | None, tag: int) -> tuple[bytes, int]:
        """The repeated KeyValue field ``tag`` (the key byte) of ``attributes``, and how many were dropped.
        A (key, short value) pair seen before is one dictionary look-up: its whole field is cached."""
        if not attributes:
            return b"", 0
        dropped = 0
        limit = self.count_limit
        if limit is not None and len(attributes) > limit:
            dropped = len(attributes) - limit
            attributes = dict(list(attributes.items())[:limit])
        fields = []
        for key, value in attributes.items():
            kind = type(value)
            if kind is str and len(value) <= 64 or kind is bool or kind is int and -1 < value < 1 << 32:
                # (tag, kind) -> key -> value -> field: the innermost dicts hold only str/int/bool keys and
                # bytes, so the garbage collector does not track them (a tuple key per entry would be
                # promoted to the oldest generation and make full collections more frequent: measured).
                code = tag << 2 | (0 if kind is str else 1 if kind is bool else 2)
                by_key = self._pairs.get(code)
                if by_key is None:
                    by_key = self._pairs[code] = {}
                values = by_key.get(key)
                if values is None:
                    values = by_key[key] = {}
                field = values.get(value)
                if field is None:
                    kv = self._key_value(key, value)
                    field = bytes((tag,)) + _len(len(kv)) + kv
                    self._cached += 1
                    if self._cached > 8192:
                        self._pairs.clear()
                        self._cached = 0
                    values[value] = field
            else:
                kv = self._key_value(key, value)
                field = bytes((tag,)) + _len(len(kv)) + kv
            fields.append(field)
        return b"".join(fields), dropped

    # -- spans ------------------------------------------------------------------------------------------------

    def span(self, span: FinishedSpan) -> bytes:
        """The fields of one ``Span`` message."""
        parts = [b"\x0a\x10", span.trace_id.to_bytes(16, "big"), b"\x12\x08", span.span_id.to_bytes(8, "big")]
        if span.trace_state:
            parts.append(_field(0x1A, _text(span.trace_state.to_header())))
        if span.parent_span_id:
            parts += (b"\x22\x08", span.parent_span_id.to_bytes(8, "big"))
        parts += (_field(0x2A, _text(span.name)), b"\x30", _SMALL[span.kind],
                  b"\x39", _fixed64(span.start), b"\x41", _fixed64(span.end_time))
        attributes, dropped = self._attributes(span.attributes, 0x4A)
        parts.append(attributes)
        if dropped:
            parts += (b"\x50", _varint(dropped))
        for event in span.events:
            fields = [b"\x09", _fixed64(event.timestamp), _field(0x12, self._string(event.name))]
            event_attributes, event_dropped = self._attributes(event.attributes, 0x1A)
            fields.append(event_attributes)
            if event_dropped:
                fields += (b"\x20", _varint(event_dropped))
            parts.append(_field(0x5A, b"".join(fields)))
        for link in span.links:
            parts.append(_field(0x6A, self._link(link)))
        status = b""
        if span.status_message:
            status = _field(0x12, self._string(span.status_message))
        if span.status_code:
            status += b"\x18" + _SMALL[span.status_code]
        parts += (b"\x7a", _len(len(status)), status)  # status = 15, always present (as the SDK sends it)
        flags = _HAS_IS_REMOTE | _IS_REMOTE if span.parent_remote else _HAS_IS_REMOTE
        parts += (b"\x85\x01", _fixed32(flags))  # flags = 16, fixed32
        return b"".join(parts)

    def _link(self, link: Any) -> bytes:
        context = link.context
        fields = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"), b"\x12\x08", context.span_id.to_bytes(8, "big")]
        state = context.trace_state
        if state:
            fields.append(_field(0x1A, _text(state.to_header())))
        attributes, dropped = self._attributes(link.attributes, 0x22)
        fields.append(attributes)
        if dropped:
            fields += (b"\x28", _varint(dropped))
        fields += (b"\x35", _fixed32(_HAS_IS_REMOTE | _IS_REMOTE if context.is_remote else _HAS_IS_REMOTE))
        return b"".join(fields)

    def span_field(self, span: FinishedSpan) -> bytes:
        """One span as the ``ScopeSpans.spans`` field of a request: what the export queue keeps (bytes, which
        the garbage collector does not track, where a queue of span objects would be walked by it again and
        again while they wait)."""
        body = self.span(span)
        return b"\x12" + _len(len(body)) + body  # ScopeSpans.spans = 2

    def request_of_fields(self, fields: Iterable[bytes]) -> bytes:
        """``ExportTraceServiceRequest`` bytes: one ResourceSpans, one ScopeSpans holding the spans encoded
        by :meth:`span_field`."""
        scope_spans = self._scope + b"".join(fields)
        resource_spans = self._resource + b"\x12" + _len(len(scope_spans)) + scope_spans  # scope_spans = 2
        return b"\x0a" + _len(len(resource_spans)) + resource_spans  # resource_spans = 1

    def request(self, spans: Iterable[FinishedSpan]) -> bytes:
        """``ExportTraceServiceRequest`` bytes: one ResourceSpans, one ScopeSpans holding ``spans``."""
        return self.request_of_fields([self.span_field(span) for span in spans])
