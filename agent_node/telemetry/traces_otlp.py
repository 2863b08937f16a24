"""OTLP/HTTP export of a node's spans: the protobuf wire format written
straight from the finished spans, and POSTed on one keep-alive connection
by the batch processor's worker thread.

Why not the SDK's OTLP exporter: its encoder builds a protobuf message
object for every span, attribute and value, and hashes the resource (as
JSON) once per span — ~100 µs of CPU a span here, more than the commit the
span describes. Written directly, with the attribute keys' bytes kept, a
span costs about a fifth of that (``bench/telemetry_bench.py``). The format
is small and stable (``opentelemetry/proto/trace/v1/trace.proto``, whose
field numbers are the constants below); the tests decode what this writes
with ``opentelemetry-proto``.

The exporter follows the standard variables (``OTEL_EXPORTER_OTLP_TRACES_*``,
else ``OTEL_EXPORTER_OTLP_*``): ``ENDPOINT`` (a traces URL, or a base URL
``/v1/traces`` is added to), ``HEADERS`` (``k=v,k2=v2``), ``TIMEOUT``
(milliseconds, per the specification), ``COMPRESSION`` (``gzip``),
``CERTIFICATE``, ``CLIENT_CERTIFICATE``, ``CLIENT_KEY``; the
``telemetry.traces`` endpoint and headers win over them. A refused or
failed export is retried with backoff (429, 502, 503, 504, a broken
connection) until the timeout, then its spans are dropped with a warning:
telemetry never holds the node back.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import ssl
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agent_node.settings_telemetry import TracesSettings

__all__ = ["OtlpHttpExporter", "encode"]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"
DEFAULT_TIMEOUT_MS = 10_000
#: Answers worth trying again (the specification's list for OTLP/HTTP).
RETRYABLE = frozenset({429, 502, 503, 504})
#: The first retry's delay (seconds); each next one doubles it.
FIRST_BACKOFF = 0.5

_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_DOUBLE = struct.Struct("<d").pack
#: Span.flags: the parent's "is remote" is known, and (second bit) true.
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200


# -- the wire format ----------------------------------------------------------------


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field (``tag`` already holds its number and wire type)."""
    return tag + _varint(len(payload)) + payload


def _text(tag: bytes, text: str) -> bytes:
    return _field(tag, text.encode())


def _any(value: Any) -> bytes:
    """An ``AnyValue``'s fields."""
    if isinstance(value, str):
        return _text(b"\x0a", value)
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)  # int64, two's complement
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Mapping):
        pairs = b"".join(_pair(b"\x0a", str(k), v) for k, v in value.items())
        return _field(b"\x32", pairs)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any(v)) for v in value))
    return _text(b"\x0a", str(value))


_KEYS: dict[str, bytes] = {}


def _pair(tag: bytes, key: str, value: Any) -> bytes:
    """A ``KeyValue`` as field ``tag``; a key's bytes are made once."""
    encoded = _KEYS.get(key)
    if encoded is None:
        encoded = _text(b"\x0a", key)
        if len(_KEYS) < 4096:  # keys come from code, but bound it all the same
            _KEYS[key] = encoded
    return _field(tag, encoded + _field(b"\x12", _any(value)))


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    return b"".join(_pair(tag, key, value) for key, value in attributes.items())


def _trace_state(context: Any) -> str:
    state = getattr(context, "trace_state", None)
    return ",".join(f"{k}={v}" for k, v in state.items()) if state else ""


def _span(span: ReadableSpan) -> bytes:
    """A ``Span`` message (without its own tag)."""
    context, parent = span.context, span.parent
    if context is None:
        return b""
    parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big")]
    parts += [b"\x12\x08", context.span_id.to_bytes(8, "big")]
    if state := _trace_state(context):
        parts.append(_text(b"\x1a", state))
    flags = _HAS_IS_REMOTE
    if parent is not None:
        parts += [b"\x22\x08", parent.span_id.to_bytes(8, "big")]
        flags |= _IS_REMOTE if parent.is_remote else 0
    parts += [_text(b"\x2a", span.name), b"\x30", _varint(span.kind.value + 1)]
    parts += [b"\x39", _FIXED64(span.start_time or 0), b"\x41", _FIXED64(span.end_time or 0)]
    parts.append(_attributes(b"\x4a", span.attributes))
    if span.dropped_attributes:
        parts += [b"\x50", _varint(span.dropped_attributes)]
    for event in span.events:
        body = b"\x09" + _FIXED64(event.timestamp) + _text(b"\x12", event.name)
        parts.append(_field(b"\x5a", body + _attributes(b"\x1a", event.attributes)))
    for link in span.links:
        linked = link.context
        body = b"\x0a\x10" + linked.trace_id.to_bytes(16, "big")
        body += b"\x12\x08" + linked.span_id.to_bytes(8, "big")
        parts.append(_field(b"\x6a", body + _attributes(b"\x22", link.attributes)))
    status = span.status
    if status.status_code.value:
        message = _text(b"\x12", status.description) if status.description else b""
        parts.append(_field(b"\x7a", message + b"\x18" + _varint(status.status_code.value)))
    parts += [b"\x85\x01", _FIXED32(flags)]  # field 16, fixed32
    return b"".join(parts)


def encode(spans: Sequence[ReadableSpan]) -> bytes:
    """An ``ExportTraceServiceRequest``: the spans grouped by resource and
    instrumentation scope, in the order they came."""
    groups: dict[tuple[int, int], tuple[Any, Any, list[bytes]]] = {}
    for span in spans:
        key = (id(span.resource), id(span.instrumentation_scope))
        group = groups.get(key)
        if group is None:
            group = groups[key] = (span.resource, span.instrumentation_scope, [])
        group[2].append(_field(b"\x12", _span(span)))
    out = []
    for resource, scope, encoded in groups.values():
        scope_fields = b""
        if scope is not None:
            scope_fields = _text(b"\x0a", scope.name)
            scope_fields += _text(b"\x12", scope.version) if scope.version else b""
        scope_spans = _field(b"\x0a", scope_fields) + b"".join(encoded)
        if scope is not None and scope.schema_url:
            scope_spans += _text(b"\x1a", scope.schema_url)
        body = _field(b"\x0a", _attributes(b"\x0a", resource.attributes))
        body += _field(b"\x12", scope_spans)
        if resource.schema_url:
            body += _text(b"\x1a", resource.schema_url)
        out.append(_field(b"\x0a", body))
    return b"".join(out)


# -- the transport ------------------------------------------------------------------


def _env(env: Mapping[str, str], name: str) -> str | None:
    return env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or env.get(f"OTEL_EXPORTER_OTLP_{name}")


def endpoint_of(settings: TracesSettings, env: Mapping[str, str]) -> str:
    if settings.endpoint:
        return settings.endpoint
    if found := env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return found
    if base := env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return base.rstrip("/") + "/v1/traces"
    return DEFAULT_ENDPOINT


def headers_of(settings: TracesSettings, env: Mapping[str, str]) -> dict[str, str]:
    """The ``HEADERS`` variable (``k=v,k2=v2``, values percent-decoded), then the settings'."""
    found: dict[str, str] = {}
    for item in (_env(env, "HEADERS") or "").split(","):
        name, equals, value = item.partition("=")
        if equals and name.strip():
            found[unquote(name.strip()).lower()] = unquote(value.strip())
    found.update({k.lower(): v for k, v in settings.headers.items()})
    return found


def _tls(env: Mapping[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=_env(env, "CERTIFICATE"))
    certificate = _env(env, "CLIENT_CERTIFICATE")
    if certificate:
        context.load_cert_chain(certificate, _env(env, "CLIENT_KEY"))
    return context


class OtlpHttpExporter(SpanExporter):
    """POSTs batches of spans (from the SDK's batch processor, one at a time)."""

    def __init__(self, settings: TracesSettings, env: Mapping[str, str]) -> None:
        from agent_node import __version__

        self.endpoint = endpoint_of(settings, env)
        url = urlsplit(self.endpoint)
        self._secure = url.scheme == "https"
        self._host = url.hostname or "localhost"
        self._port = url.port or (443 if self._secure else 80)
        self._path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._tls = _tls(env) if self._secure else None
        try:
            self.timeout = float(_env(env, "TIMEOUT") or DEFAULT_TIMEOUT_MS) / 1000
        except ValueError:
            self.timeout = DEFAULT_TIMEOUT_MS / 1000
        self._gzip = (_env(env, "COMPRESSION") or "").strip().lower() == "gzip"
        self._headers = {
            "Content-Type": "application/x-protobuf",
            "User-Agent": f"agent-node/{__version__}",
            **headers_of(settings, env),
        }
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._connection: http.client.HTTPConnection | None = None
        self._stopped = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._stopped.is_set():
            return SpanExportResult.FAILURE
        body = encode(spans)
        if self._gzip:
            body = gzip.compress(body, compresslevel=6)
        deadline = time.monotonic() + self.timeout
        delay, outcome = FIRST_BACKOFF, ""
        while True:
            outcome = self._post(body, deadline)
            if outcome == "":
                return SpanExportResult.SUCCESS
            if not outcome.startswith("retry") or time.monotonic() + delay > deadline:
                break
            if self._stopped.wait(delay):
                break
            delay *= 2
        log.warning("traces: %d spans not exported to %s (%s)", len(spans), self.endpoint, outcome)
        return SpanExportResult.FAILURE

    def _post(self, body: bytes, deadline: float) -> str:
        """ "" when the collector took it, else why not ("retry: …" when worth it)."""
        try:
            connection = self._connect(max(0.1, deadline - time.monotonic()))
            connection.request("POST", self._path, body, self._headers)
            answer = connection.getresponse()
            answer.read()
        except (OSError, http.client.HTTPException) as exc:
            self._close()
            return f"retry: {type(exc).__name__}: {exc}"
        if 200 <= answer.status < 300:
            return ""
        if answer.will_close:
            self._close()
        kind = "retry: " if answer.status in RETRYABLE else ""
        return f"{kind}HTTP {answer.status}"

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._secure:
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout, context=self._tls
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=timeout
                )
        self._connection.timeout = timeout
        if self._connection.sock is not None:  # kept alive: its socket has the old one
            self._connection.sock.settimeout(timeout)
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def shutdown(self) -> None:
        self._stopped.set()
        self._close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
