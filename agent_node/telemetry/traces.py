"""OpenTelemetry traces of a node (the ``otel`` extra): spans of its
executions and node visits, built from what its store commits, and spans
of the A2A requests it answers and sends.

Why from commits: a node's work survives crashes, its spans must too. An
execution's span, and each node visit's, is emitted when its end is
committed, with the start the log recorded and an id derived from the
execution (:mod:`.traces_ids`) — so an execution resumed after ``kill -9``,
or finished by another replica, still makes one well-formed trace, and a
delegation's span has the id the peer was told in ``traceparent`` long
before the span itself is emitted. A chain A → B → C is one trace: each
peer's execution span is the child of its caller's delegation span.

* :mod:`.traces_follow` follows the commits, the common one in one pass,
  and :mod:`.traces_ledger` the others (dict work in the observer),
* :mod:`.traces_spans` builds the spans, written as :mod:`.traces_wire` has
  them; :mod:`.traces_calls` those of a visit's model call (GenAI
  conventions) and of its calls out of the node,
* :mod:`.traces_http` makes the request spans,
* :mod:`.traces_pipeline` is the SDK: OTLP/HTTP behind a batch processor.

With traces off nothing of this is imported and no observer is subscribed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, cast

from agent_node.errors import ConfigError
from agent_node.settings_telemetry import TelemetrySettings, TracesSettings
from agent_node.telemetry.traces_ledger import Replay, replayed

if TYPE_CHECKING:
    import httpx
    from starlette.types import ASGIApp

    from agent_node.runtime import Runtime
    from agent_node.telemetry.metrics import NodeMetrics
    from agent_node.telemetry.traces_pipeline import Pipeline
    from agent_node.telemetry.traces_spans import SpanFactory, SpecOf
    from agent_node.telemetry.traces_wire import Encoded
    from agent_node.workflow.ir import NodeSpec

__all__ = ["Traces", "start_traces", "traces_wanted"]

log = logging.getLogger(__name__)

INSTALL = "pip install 'agent-node[otel]' (from a clone: pip install -e '.[otel]')"
#: Logs read back at once (after a restart many visits may need theirs).
REPLAYS = 4
#: Seconds a closing node waits for read-backs and its last export.
CLOSE_TIMEOUT = 10.0


def traces_wanted(settings: TracesSettings, env: Mapping[str, str]) -> bool:
    """Whether traces are on: as ``enabled`` says, else when an OTLP endpoint
    is known (the setting or the standard variables) and the SDK is not off."""
    if settings.enabled is not None:
        return settings.enabled
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(
        settings.endpoint
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def start_traces(
    settings: TelemetrySettings,
    *,
    node: str,
    runtime: Runtime,
    metrics: NodeMetrics | None = None,
) -> Traces | None:
    """``node``'s traces, following ``runtime``'s store; None when they are off.
    Given the node's ``metrics``, the traces' pass over each commit counts
    it into them too (:mod:`.traces_follow`).

    Asked for in the configuration (``enabled: true`` or an ``endpoint``)
    without OpenTelemetry installed is a :class:`ConfigError`; asked for by
    the environment only, a warning."""
    wanted = settings.traces
    if not traces_wanted(wanted, os.environ):
        return None
    try:
        from agent_node.telemetry.traces_pipeline import pipeline
        from agent_node.telemetry.traces_spans import SpanFactory
    except ImportError as exc:
        message = f"telemetry.traces needs OpenTelemetry ({exc.name} is missing): {INSTALL}"
        if wanted.enabled or wanted.endpoint:
            raise ConfigError(message) from None
        log.warning("%s; the OTEL_* variables ask for traces, none are sent", message)
        return None
    from agent_node.telemetry.traces_follow import BUNDLE

    parts = pipeline(wanted, node, BUNDLE)
    spans = SpanFactory(parts.resource, parts.scope, node, _spec_finder(runtime))
    return Traces(runtime, parts, spans, metrics)


class Traces:
    """A node's traces: subscribed to its store's commits until :meth:`close`
    (and counting them into ``metrics``, when given, from then on)."""

    def __init__(
        self,
        runtime: Runtime,
        parts: Pipeline,
        spans: SpanFactory,
        metrics: NodeMetrics | None = None,
    ) -> None:
        from agent_node.telemetry.traces_follow import Follower
        from agent_node.telemetry.traces_http import RequestSpans, roots_sampled

        self._store = runtime.store
        self._parts = parts
        self._spans = spans
        self._replays: set[asyncio.Task[None]] = set()
        self._reading = asyncio.Semaphore(REPLAYS)
        self._follower = Follower(spans, self._send, self._replay, counts=metrics)
        timer, self._give_back = None, None
        if metrics is not None:
            self._give_back = metrics.pass_commits()
            timer = metrics.commit_timer
        self._forget = runtime.store.observe(self._follower.committed, commit_timer=timer)
        self._requests = RequestSpans(roots_sampled(parts.provider.sampler), self._follower.add)

    def asgi(self, app: ASGIApp, metrics: NodeMetrics | None = None) -> ASGIApp:
        """``app``, a SERVER span around each request (:mod:`.traces_http`),
        each counted in ``metrics`` too when given (one wrapper for both)."""
        from agent_node.telemetry.traces_http import traced_app

        return traced_app(app, self._requests, metrics)

    def instrument(self, client: httpx.AsyncClient) -> None:
        """CLIENT spans on ``client``'s requests that carry a ``traceparent``."""
        from agent_node.telemetry.traces_http import instrument_client

        instrument_client(client, self._requests)

    async def close(self) -> None:
        """Stop following commits, finish the read-backs, send what is left."""
        self._forget()  # what is held is followed first: before the read-backs it may ask for
        if self._give_back is not None:  # the metrics count what is committed next
            self._give_back()
            self._give_back = None
        if self._replays:
            await asyncio.wait(self._replays, timeout=CLOSE_TIMEOUT)
        self._follower.stop()
        try:
            await asyncio.wait_for(asyncio.to_thread(self._parts.shutdown), CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("traces: the last spans were not sent within %ss", CLOSE_TIMEOUT)

    def _send(self, data: bytes) -> None:
        """Spans written one after the other (commits' and requests') to the
        batch processor, as one item (they share the node's resource and
        scope; the exporter sends the bytes)."""
        end = cast("Callable[[Encoded], None]", self._parts.processor.on_end)
        end(self._spans.encoded(data))

    def _replay(self, request: Replay) -> None:
        task = asyncio.get_running_loop().create_task(self._read_back(request))
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)

    async def _read_back(self, request: Replay) -> None:
        """Emit what ``request`` asks from the execution's log, read back."""
        execution_id = request.execution.id
        try:
            async with self._reading:
                events = await self._store.events(execution_id)
            self._follower.emit(replayed(request, events))
        except Exception as exc:
            log.warning("traces: the log of %s could not be read back: %s", execution_id, exc)


def _spec_finder(runtime: Runtime) -> SpecOf:
    """A cached lookup of a visit's node spec in ``runtime``'s workflows
    (None for a workflow this process does not know)."""
    workflows = runtime.workflows
    known: dict[tuple[str, str, str], NodeSpec | None] = {}

    def spec_of(workflow: str, version: str, ref: str | None, node: str) -> NodeSpec | None:
        key = (workflow, version, node)
        if key not in known:
            try:
                known[key] = workflows.get(workflow, version, ref).node(node)
            except Exception:  # not loadable here, or the node is gone
                known[key] = None
        return known[key]

    return spec_of
