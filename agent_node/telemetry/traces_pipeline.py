"""The OpenTelemetry SDK as a node uses it: one resource, one
instrumentation scope, the SDK's batch span processor in front of an
OTLP/HTTP exporter (:mod:`.traces_otlp`), and the sampler the provider
reads from the environment (for request spans without a parent).

Each node has its own provider (several nodes may share a process in
tests); none is made global, so a library's own instrumentation in the same
process is left alone. The exporter and the processor read the standard
variables (``OTEL_EXPORTER_OTLP_TRACES_*`` / ``OTEL_EXPORTER_OTLP_*``,
``OTEL_BSP_*``, ``OTEL_TRACES_SAMPLER`` for request spans without a
parent); ``telemetry.traces`` settings win over them. The processor's items
are bundles of spans (:mod:`.traces_follow`), so its sizes, which the
variables give in spans, are divided by the bundle's (:func:`bundled_sizes`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
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


#: The SDK's sizes, in spans (``OTEL_BSP_MAX_QUEUE_SIZE``, ``…_MAX_EXPORT_BATCH_SIZE``).
DEFAULT_QUEUE, DEFAULT_BATCH = 2048, 512


def bundled_sizes(env: Mapping[str, str], bundle: int) -> tuple[int, int]:
    """The batch processor's queue and export batch sizes, in items of up
    to ``bundle`` spans each: the spans the variables (or the SDK's
    defaults) give, divided by ``bundle``. An export then carries what the
    SDK's would (512 spans), not ``bundle`` times more: a node whose batches
    held 8,192 spans answered 7 % fewer requests under load than one whose
    held 512 (``bench/telemetry_bench.py --measures send8``), and a node
    whose collector is down holds what the variables say, not more."""

    def spans(name: str, default: int) -> int:
        try:
            found = int(env.get(name, default))
        except ValueError:
            return default
        return found if found > 0 else default

    queue = -(-spans("OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_QUEUE) // bundle)
    batch = -(-spans("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", DEFAULT_BATCH) // bundle)
    return queue, min(batch, queue)


def pipeline(settings: TracesSettings, node: str, bundle: int = 1) -> Pipeline:
    """The pipeline of ``node``'s traces, exporting as ``settings`` say;
    each item the processor is handed holds up to ``bundle`` spans."""
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
    queue, batch = bundled_sizes(os.environ, bundle)
    processor = BatchSpanProcessor(
        OtlpHttpExporter(settings, os.environ), max_queue_size=queue, max_export_batch_size=batch
    )
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    scope = InstrumentationScope("agent_node", __version__)
    return Pipeline(provider, processor, resource, scope)
