"""An OTLP/HTTP trace receiver: real HTTP on a loopback port, decoding what
OpenTelemetry exporters send (``ExportTraceServiceRequest`` protobuf, from
``opentelemetry-proto``) into plain :class:`ReceivedSpan` records.

It runs in a thread of its own (the nodes under test export from their own
processes, or from an SDK worker thread)::

    with receiving() as otlp:
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = otlp.url
        ...
        spans = otlp.spans()
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = ["OtlpReceiver", "ReceivedSpan", "receiving"]

#: Span kinds by their OTLP number.
KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    #: ``service.instance.id``: which process sent it.
    instance: str
    trace_id: str
    span_id: str
    #: None for a root span.
    parent_id: str | None
    name: str
    kind: str
    start: float
    end: float
    attributes: dict[str, Any]
    #: (name, time, attributes) of each span event.
    events: tuple[tuple[str, float, dict[str, Any]], ...]
    status: str
    status_message: str

    def __repr__(self) -> str:
        parent = self.parent_id or "-"
        return f"<{self.service} {self.name!r} {self.span_id} < {parent}>"


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


def decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    found = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = str(resource.get("service.name"))
        instance = str(resource.get("service.instance.id"))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found.append(
                    ReceivedSpan(
                        service=service,
                        instance=instance,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        kind=KINDS[span.kind],
                        start=span.start_time_unix_nano / 1e9,
                        end=span.end_time_unix_nano / 1e9,
                        attributes=_attributes(span.attributes),
                        events=tuple(
                            (e.name, e.time_unix_nano / 1e9, _attributes(e.attributes))
                            for e in span.events
                        ),
                        status=STATUS[span.status.code],
                        status_message=span.status.message,
                    )
                )
    return found


class OtlpReceiver:
    """What was received, and how to wait for it."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/v1/traces"
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        #: Export requests received (each a batch).
        self.requests = 0
        #: Answer the next this many requests 503 (an overloaded collector).
        self.refuse = 0
        #: The headers of each request, as sent.
        self.headers: list[dict[str, str]] = []
        #: The size of each request's body, decompressed.
        self.sizes: list[int] = []
        #: The spans of each request.
        self.batches: list[int] = []

    def add(self, spans: list[ReceivedSpan]) -> None:
        with self._lock:
            self._spans.extend(spans)
            self.requests += 1
            self.batches.append(len(spans))

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(
        self, condition: Callable[[list[ReceivedSpan]], bool], what: str, timeout: float = 30
    ) -> list[ReceivedSpan]:
        """Poll until ``condition(spans)`` holds; the spans then."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if condition(spans):
                return spans
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {spans}"
            time.sleep(0.05)


def _handler(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
            receiver.sizes.append(len(body))
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            if receiver.refuse > 0:
                receiver.refuse -= 1
                self.send_error(503)
                return
            receiver.add(decode(body))
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def receiving() -> Iterator[OtlpReceiver]:
    """A receiver listening on 127.0.0.1 (a free port) until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(OtlpReceiver(0)))
    receiver = OtlpReceiver(server.server_address[1])
    server.RequestHandlerClass = _handler(receiver)
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def span_factory(specs: dict[str, Any]) -> Any:
    """A node's :class:`~agent_node.telemetry.traces_spans.SpanFactory` for a
    node named ``n``, its workflows' nodes looked up by id in ``specs``."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from agent_node.telemetry.traces_spans import SpanFactory

    resource = Resource.create({"service.name": "n"})
    scope = InstrumentationScope("agent_node")
    return SpanFactory(resource, scope, "n", lambda *a: specs.get(a[-1]))
