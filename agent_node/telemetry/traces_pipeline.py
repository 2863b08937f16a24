"""The OpenTelemetry SDK as a node uses it: one resource, one
instrumentation scope, the SDK's batch span processor in front of an
OTLP/HTTP exporter (:mod:`.traces_otlp`), and the sampler the provider
reads from the environment (for request spans without a parent).

Each node has its own provider (several nodes may share a process in
tests); none is made global, so a library's own instrumentation in the same
process is left alone. The exporter and the processor read the standard
variables (``OTEL_EXPORTER_OTLP_TRACES_*`` / ``OTEL_EXPORTER_OTLP_*``,
``OTEL_BSP_*``, ``OTEL_TRACES_SAMPLER`` for request spans without a
parent); ``telemetry.traces`` settings win over them.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from agent_node.settings_telemetry import TracesSettings
from agent_node.telemetry.traces_otlp import OtlpHttpExporter

__all__ = ["Pipeline", "pipeline"]


@dataclass(frozen=True, slots=True)
class Pipeline:
    provider: TracerProvider
    #: Where finished spans go (request spans and spans built from commits).
    processor: BatchSpanProcessor
    resource: Resource
    scope: InstrumentationScope

    def shutdown(self) -> None:
        """Send what is queued and stop (blocking: the processor's worker
        thread exports the rest, then the exporter closes)."""
        self.provider.shutdown()


def pipeline(settings: TracesSettings, node: str) -> Pipeline:
    """The pipeline of ``node``'s traces, exporting as ``settings`` say."""
    from agent_node import __version__

    name = settings.service_name or os.environ.get("OTEL_SERVICE_NAME") or node
    resource = Resource.create(
        {
            "service.name": name,
            "service.version": __version__,
            "service.instance.id": str(uuid.uuid4()),
            "agent_node.node": node,
        }
    )
    processor = BatchSpanProcessor(OtlpHttpExporter(settings, os.environ))
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    scope = InstrumentationScope("agent_node", __version__)
    return Pipeline(provider, processor, resource, scope)
