"""The ``telemetry:`` settings: what a node tells operators about itself —
Prometheus metrics, OpenTelemetry traces, and how it stops (the drain).

Everything has a default that is safe to serve: metrics on the node's own
port behind the operator policy, traces only when an endpoint is given here
or by the standard ``OTEL_*`` variables, no extra port unless asked.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MetricsSettings", "TelemetrySettings", "TracesSettings"]


class MetricsSettings(BaseModel):
    """Prometheus metrics (``telemetry.metrics``)."""

    model_config = ConfigDict(extra="forbid")

    #: Count and serve ``/metrics`` (operators only when callers are
    #: authenticated; open under ``--insecure-dev``).
    enabled: bool = True
    #: Also serve ``/metrics`` in plain HTTP on this port of ``host``, for
    #: scrapers without certificates; None: no such port.
    port: int | None = Field(default=None, ge=0, le=65535)
    #: Where that port listens: loopback unless you mean otherwise.
    host: str = "127.0.0.1"


class TracesSettings(BaseModel):
    """OpenTelemetry traces (``telemetry.traces``; needs ``agent-node[otel]``)."""

    model_config = ConfigDict(extra="forbid")

    #: None: on when an OTLP endpoint is known (``endpoint`` or
    #: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``)
    #: and ``OTEL_SDK_DISABLED`` is not true; true/false forces it.
    enabled: bool | None = None
    #: The OTLP/HTTP traces URL (``http://collector:4318/v1/traces``);
    #: None: from the ``OTEL_*`` variables.
    endpoint: str | None = Field(default=None, pattern=r"^https?://\S+$")
    #: Extra headers sent with each export (an API key of a hosted backend).
    headers: dict[str, str] = {}
    #: ``service.name`` of the node's spans; None: ``OTEL_SERVICE_NAME``, else the node's name.
    service_name: str | None = None


class TelemetrySettings(BaseModel):
    """``telemetry:`` in a node's configuration."""

    model_config = ConfigDict(extra="forbid")

    metrics: MetricsSettings = MetricsSettings()
    traces: TracesSettings = TracesSettings()
    #: Seconds between a stop being asked (SIGTERM) and the listener closing,
    #: while ``/readyz`` already answers 503 "draining": long enough for a
    #: load balancer's next probe to take the node out of rotation.
    drain_seconds: float = Field(default=0.0, ge=0, le=600)
