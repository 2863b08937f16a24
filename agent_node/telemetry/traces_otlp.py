"""OTLP/HTTP export of a node's spans: the protobuf wire format
(:mod:`.traces_wire`, written by hand) POSTed on one keep-alive connection
(:mod:`.otlp_post`) by the batch processor's worker thread.

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
import logging
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from urllib.parse import unquote, urlsplit

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agent_node.settings_telemetry import TracesSettings
from agent_node.telemetry.otlp_post import PostConnection
from agent_node.telemetry.traces_wire import Encoded, encode

__all__ = ["OtlpHttpExporter"]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"
DEFAULT_TIMEOUT_MS = 10_000
#: Answers worth trying again (the specification's list for OTLP/HTTP).
RETRYABLE = frozenset({429, 502, 503, 504})
#: The first retry's delay (seconds); each next one doubles it.
FIRST_BACKOFF = 0.5
#: Bytes of spans one request carries, about (collectors refuse large
#: ones: 4 MiB is gRPC's default); a request span counts as this many.
REQUEST_BYTES, _READABLE_BYTES = 1 << 20, 512

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


def _parts(spans: Sequence[ReadableSpan | Encoded]) -> list[Sequence[ReadableSpan | Encoded]]:
    """``spans`` in requests of about :data:`REQUEST_BYTES` at most (a batch
    of bundles of spans from commits could otherwise make one of megabytes)."""
    parts: list[Sequence[ReadableSpan | Encoded]] = []
    begun, size = 0, 0
    for i, span in enumerate(spans):
        grows = len(span.data) if isinstance(span, Encoded) else _READABLE_BYTES
        if size and size + grows > REQUEST_BYTES:
            parts.append(spans[begun:i])
            begun, size = i, 0
        size += grows
    parts.append(spans[begun:])
    return parts


class OtlpHttpExporter(SpanExporter):
    """POSTs batches of spans (from the SDK's batch processor, one at a time)."""

    def __init__(self, settings: TracesSettings, env: Mapping[str, str]) -> None:
        from agent_node import __version__

        self.endpoint = endpoint_of(settings, env)
        url = urlsplit(self.endpoint)
        try:
            self.timeout = float(_env(env, "TIMEOUT") or DEFAULT_TIMEOUT_MS) / 1000
        except ValueError:
            self.timeout = DEFAULT_TIMEOUT_MS / 1000
        self._gzip = (_env(env, "COMPRESSION") or "").strip().lower() == "gzip"
        headers = {
            "Content-Type": "application/x-protobuf",
            "User-Agent": f"agent-node/{__version__}",
            **headers_of(settings, env),
        }
        if self._gzip:
            headers["Content-Encoding"] = "gzip"
        secure = url.scheme == "https"
        self._connection = PostConnection(
            url.hostname or "localhost",
            url.port or (443 if secure else 80),
            (url.path or "/") + (f"?{url.query}" if url.query else ""),
            headers,
            _tls(env) if secure else None,
        )
        self._stopped = threading.Event()

    def export(self, spans: Sequence[ReadableSpan | Encoded]) -> SpanExportResult:
        if self._stopped.is_set():
            return SpanExportResult.FAILURE
        deadline = time.monotonic() + self.timeout
        for part in _parts(spans):
            if not self._send(encode(part), deadline):
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _send(self, body: bytes, deadline: float) -> bool:
        if self._gzip:
            body = gzip.compress(body, compresslevel=6)
        delay, outcome = FIRST_BACKOFF, ""
        while True:
            outcome = self._post(body, deadline)
            if outcome == "":
                return True
            if not outcome.startswith("retry") or time.monotonic() + delay > deadline:
                break
            if self._stopped.wait(delay):
                break
            delay *= 2
        log.warning(
            "traces: %d bytes of spans not exported to %s (%s)", len(body), self.endpoint, outcome
        )
        return False

    def _post(self, body: bytes, deadline: float) -> str:
        """ "" when the collector took it, else why not ("retry: …" when worth it)."""
        try:
            status = self._connection.post(body, max(0.1, deadline - time.monotonic()))
        except OSError as exc:
            return f"retry: {type(exc).__name__}: {exc}"
        if 200 <= status < 300:
            return ""
        kind = "retry: " if status in RETRYABLE else ""
        return f"{kind}HTTP {status}"

    def shutdown(self) -> None:
        self._stopped.set()
        self._connection.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
