"""The OTLP protobuf wire format of spans, written by hand.

Why not the SDK's encoder: it builds a protobuf message object for every
span, attribute and value, and hashes the resource (as JSON) once per span —
~100 µs of CPU a span here, more than the commit the span describes. The
format is small and stable (``opentelemetry/proto/trace/v1/trace.proto``,
whose field numbers are the tags below); the tests decode what this writes
with ``opentelemetry-proto``.

Two kinds of span reach the exporter:

* the SDK's ``ReadableSpan`` (request spans, :mod:`.traces_http`), written
  by :func:`encode` when exported;
* :class:`Encoded` — a span built from a commit (:mod:`.traces_spans`),
  written *as it is built* by :func:`span`: its parts that repeat (a node's
  name and attributes, an execution's ids) are bytes made once, so one costs
  a join of a dozen byte strings, and the exporter's thread only
  concatenates them. (Spans from commits are most of a node's spans: one
  per node visit.)
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from math import trunc
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags

__all__ = [
    "CLIENT",
    "ERROR",
    "ID_AND_TIMES",
    "INTERNAL",
    "LOCAL_FLAGS",
    "REMOTE_FLAGS",
    "TIMES",
    "Encoded",
    "attributes",
    "encode",
    "event",
    "field",
    "head",
    "local_tail",
    "ns",
    "span",
    "span_tag",
    "status",
    "text",
    "text_attribute",
]

_FIXED64 = struct.Struct("<Q").pack
#: A span's start and end fields (7 and 8, fixed64) in one pack (tags 0x39, 0x41).
TIMES = struct.Struct("<BQBQ").pack
_FIXED32 = struct.Struct("<I").pack
_DOUBLE = struct.Struct("<d").pack
#: Span.flags: the parent's "is remote" is known, and (second bit) true.
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200
#: A span's flags field (16, fixed32): its parent in this process, or in another.
LOCAL_FLAGS = b"\x85\x01" + _FIXED32(_HAS_IS_REMOTE)
REMOTE_FLAGS = b"\x85\x01" + _FIXED32(_HAS_IS_REMOTE | _IS_REMOTE)
#: Span kinds by their OTLP number (the SDK's enum counts from 0).
INTERNAL, CLIENT = 1, 3
#: A span status's code for an error.
ERROR = 2


def ns(seconds: float) -> int:
    """A time of the log (seconds) as OTLP has it (nanoseconds)."""
    return trunc(seconds * 1e9)


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field (``tag`` already holds its number and wire type)."""
    return tag + _varint(len(payload)) + payload


def text(tag: bytes, value: str) -> bytes:
    return field(tag, value.encode())


def _any(value: Any) -> bytes:
    """An ``AnyValue``'s fields."""
    if isinstance(value, str):
        return text(b"\x0a", value)
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)  # int64, two's complement
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return field(b"\x3a", value)
    if isinstance(value, Mapping):
        pairs = b"".join(_pair(b"\x0a", str(k), v) for k, v in value.items())
        return field(b"\x32", pairs)
    if isinstance(value, Sequence):
        return field(b"\x2a", b"".join(field(b"\x0a", _any(v)) for v in value))
    return text(b"\x0a", str(value))


_KEYS: dict[str, bytes] = {}


def _pair(tag: bytes, key: str, value: Any) -> bytes:
    """A ``KeyValue`` as field ``tag``; a key's bytes are made once."""
    encoded = _KEYS.get(key)
    if encoded is None:
        encoded = text(b"\x0a", key)
        if len(_KEYS) < 4096:  # keys come from code, but bound it all the same
            _KEYS[key] = encoded
    return field(tag, encoded + field(b"\x12", _any(value)))


def text_attribute(key: str) -> Callable[[str], bytes]:
    """A writer of one span attribute whose value is a string (an id most
    often: written with its key's bytes made once)."""
    head = text(b"\x0a", key)

    def before(size: int) -> bytes:
        """What comes before a value of ``size`` bytes (below 0x70: every
        length in it fits one byte)."""
        inner = head + b"\x12" + bytes((size + 2,)) + b"\x0a" + bytes((size,))
        return b"\x4a" + _varint(len(inner) + size) + inner

    #: By the value's length, made once.
    befores = tuple(before(size) for size in range(0x70))

    def write(value: str) -> bytes:
        raw = value.encode()
        size = len(raw)
        if size < 0x70:
            return befores[size] + raw
        return field(b"\x4a", head + field(b"\x12", text(b"\x0a", value)))

    return write


def attributes(values: Mapping[str, Any] | None, tag: bytes = b"\x4a") -> bytes:
    """``values`` as ``KeyValue`` fields (a span's, field 9, unless ``tag`` says)."""
    if not values:
        return b""
    return b"".join(_pair(tag, key, value) for key, value in values.items())


# -- spans built from commits ----------------------------------------------------------


class Encoded:
    """Spans written already: each ``Span`` message as a ``ScopeSpans.spans``
    field, one after the other (a node hands the spans of its commits over
    in bundles). It passes the batch processor as any finished span does
    (its ``context`` is a sampled one: a span from an unsampled trace is
    never built) and the exporter sends its bytes as they are."""

    __slots__ = ("data", "instrumentation_scope", "resource")
    context = SpanContext(1, 1, False, TraceFlags(TraceFlags.SAMPLED))

    def __init__(self, data: bytes, resource: Resource, scope: InstrumentationScope) -> None:
        self.data = data
        self.resource = resource
        self.instrumentation_scope = scope


#: A span field's tag and length, made once for the lengths most spans have.
_TAGGED = 1024
_SPAN_TAGS = tuple(b"\x12" + _varint(size) for size in range(_TAGGED))


def head(name: str, kind: int) -> bytes:
    """A span's name and kind fields (a span of a node repeats them: made once)."""
    return text(b"\x2a", name) + b"\x30" + _varint(kind)


def event(at_ns: int, name: str, values: Mapping[str, Any]) -> bytes:
    """A span event's field."""
    body = b"\x09" + _FIXED64(at_ns) + text(b"\x12", name) + attributes(values, b"\x1a")
    return field(b"\x5a", body)


def status(code: int, message: str | None) -> bytes:
    """A span's status field (``code``: 1 ok, 2 error)."""
    body = (text(b"\x12", message) if message else b"") + b"\x18" + _varint(code)
    return field(b"\x7a", body)


def span(
    trace_id: bytes,
    span_id: int,
    parent: bytes,
    remote: bool,
    head: bytes,
    start_ns: int,
    end_ns: int,
    tail: bytes = b"",
) -> bytes:
    """A ``ScopeSpans.spans`` field: ``trace_id`` (16 bytes), ``parent`` (its
    8-byte id, or b"" for a root; ``remote``: in another process), ``head``
    (:func:`head`) and ``tail``: the span's attributes, events and status
    fields, in that order."""
    body = b"".join(
        (
            b"\x0a\x10",
            trace_id,
            b"\x12\x08",
            span_id.to_bytes(8, "big"),
            b"\x22\x08" + parent if parent else b"",
            head,
            b"\x39",
            _FIXED64(start_ns),
            b"\x41",
            _FIXED64(end_ns),
            tail,
            REMOTE_FLAGS if remote else LOCAL_FLAGS,
        )
    )
    size = len(body)
    return (_SPAN_TAGS[size] if size < _TAGGED else b"\x12" + _varint(size)) + body


#: A span's id (field 2), start and end (7 and 8), in one pack: the fields a
#: span built from parts made once ends with. The id is given as the number
#: whose little-endian bytes are the id's (``"<Q"`` writes them in its order).
ID_AND_TIMES = struct.Struct("<BBQBQBQ").pack


def span_tag(size: int) -> bytes:
    """The tag and length of a ``ScopeSpans.spans`` field whose span is ``size`` bytes."""
    return _SPAN_TAGS[size] if size < _TAGGED else b"\x12" + _varint(size)


def local_tail(tail: bytes) -> bytes:
    """``tail`` (as :func:`span` takes it) and the flags of a local parent."""
    return tail + LOCAL_FLAGS


# -- an export request ---------------------------------------------------------------


def _trace_state(context: Any) -> str:
    state = getattr(context, "trace_state", None)
    return ",".join(f"{k}={v}" for k, v in state.items()) if state else ""


def _readable(span: ReadableSpan) -> bytes:
    """A ``Span`` message (without its own tag) of one of the SDK's spans."""
    context, parent = span.context, span.parent
    if context is None:
        return b""
    parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big")]
    parts += [b"\x12\x08", context.span_id.to_bytes(8, "big")]
    if state := _trace_state(context):
        parts.append(text(b"\x1a", state))
    flags = _HAS_IS_REMOTE
    if parent is not None:
        parts += [b"\x22\x08", parent.span_id.to_bytes(8, "big")]
        flags |= _IS_REMOTE if parent.is_remote else 0
    parts += [text(b"\x2a", span.name), b"\x30", _varint(span.kind.value + 1)]
    parts += [b"\x39", _FIXED64(span.start_time or 0), b"\x41", _FIXED64(span.end_time or 0)]
    parts.append(attributes(span.attributes))
    if span.dropped_attributes:
        parts += [b"\x50", _varint(span.dropped_attributes)]
    for found in span.events:
        parts.append(event(found.timestamp, found.name, found.attributes or {}))
    for link in span.links:
        linked = link.context
        body = b"\x0a\x10" + linked.trace_id.to_bytes(16, "big")
        body += b"\x12\x08" + linked.span_id.to_bytes(8, "big")
        parts.append(field(b"\x6a", body + attributes(link.attributes, b"\x22")))
    if code := span.status.status_code.value:
        parts.append(status(code, span.status.description))
    parts += [b"\x85\x01", _FIXED32(flags)]  # field 16, fixed32
    return b"".join(parts)


def encode(spans: Sequence[ReadableSpan | Encoded]) -> bytes:
    """An ``ExportTraceServiceRequest``: the spans grouped by resource and
    instrumentation scope, in the order they came."""
    groups: dict[tuple[int, int], tuple[Any, Any, list[bytes]]] = {}
    for one in spans:
        key = (id(one.resource), id(one.instrumentation_scope))
        group = groups.get(key)
        if group is None:
            group = groups[key] = (one.resource, one.instrumentation_scope, [])
        if isinstance(one, Encoded):
            group[2].append(one.data)
        else:
            group[2].append(field(b"\x12", _readable(one)))
    # The spans' bytes are copied once, into the request: each message
    # around them is its fields' lengths summed, its head written before them.
    out: list[bytes] = []
    for resource, scope, encoded in groups.values():
        resource_field, last, before, after = _around(resource, scope)
        size = len(before) + sum(map(len, encoded)) + len(after)
        scope_head = b"\x12" + _varint(size)
        body = len(resource_field) + len(scope_head) + size + len(last)
        out += (b"\x0a" + _varint(body), resource_field, scope_head, before)
        out += encoded
        out += (after, last)
    return b"".join(out)


#: What :func:`encode` writes around the spans of a resource and scope, by
#: their ids (a node has one of each: encoded once, not at every export),
#: with the objects themselves (an id is not reused while they are kept).
_AROUND: dict[tuple[int, int], tuple[Any, Any, tuple[bytes, bytes, bytes, bytes]]] = {}


def _around(resource: Any, scope: Any) -> tuple[bytes, bytes, bytes, bytes]:
    """The resource's field and schema, the scope's fields and schema."""
    key = (id(resource), id(scope))
    found = _AROUND.get(key)
    if found is not None:
        return found[2]
    scope_fields = b""
    if scope is not None:
        scope_fields = text(b"\x0a", scope.name)
        scope_fields += text(b"\x12", scope.version) if scope.version else b""
    made = (
        field(b"\x0a", attributes(resource.attributes, b"\x0a")),
        text(b"\x1a", resource.schema_url) if resource.schema_url else b"",
        field(b"\x0a", scope_fields),
        text(b"\x1a", scope.schema_url) if scope is not None and scope.schema_url else b"",
    )
    if len(_AROUND) >= 64:  # many nodes in one process (tests): start over
        _AROUND.clear()
    _AROUND[key] = (resource, scope, made)
    return made
