"""Spans built from what the ledger says ended (:mod:`.traces_ledger`), with
the ids of :mod:`.traces_ids` and the times the log recorded.

What a node's trace looks like::

    invoke_agent <node>            the execution (INTERNAL; parent: the caller's span)
    ├── python step1               a node visit: first start → its end
    ├── model write                · failed attempts are its "exception" events
    │   └── chat <model>           · GenAI conventions (CLIENT; the last attempt's run)
    └── delegate ask               · waits and delegation news are its events
        └── invoke_agent <peer>    the call (CLIENT; its id is the one the peer got)
            └── (the peer's execution span, in the peer's process)

A model call is a child span of its visit, not attributes on it: GenAI
backends (Langfuse, Phoenix, Honeycomb, Datadog) show a span whose
``gen_ai.operation.name`` is ``chat`` as a generation, with its tokens
and model, and the visit around it keeps what is the workflow's — its
attempts, waits and failures — apart from what is the model's. A node
with tools may call its model several times: the one span sums them
(``agent_node.model.calls``).

Spans are handed to the batch processor as finished ``ReadableSpan``s: no
tracer, no sampler, no id generator is involved, so their ids, parents
and times are exactly the derived and recorded ones. A trace whose
``traceparent`` says "not sampled" gets none (the ledger drops it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from agent_node.telemetry.traces_ids import (
    Origin,
    call_span_id,
    chat_span_id,
    execution_span_id,
    visit_span_id,
)
from agent_node.telemetry.traces_ledger import ExecutionEnd, VisitEnd, data_of
from agent_node.workflow.ir import NodeSpec

__all__ = ["SpanFactory", "provider_and_model"]

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)
#: litellm's provider prefixes -> ``gen_ai.provider.name`` (others are kept as they are).
_PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "mistral": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "watsonx": "ibm.watsonx.ai",
    "ollama": "ollama",
    "ollama_chat": "ollama",
}
#: Bare model names litellm routes by their prefix.
_BARE = (("gpt-", "openai"), ("o1", "openai"), ("o3", "openai"), ("claude", "anthropic"))
#: Executions whose span context is kept (for their visits) at most.
_CONTEXTS = 10_000
#: Visit types whose ends need the event's data parsed.
_WITH_DATA = frozenset({"model", "eval"})
#: A lookup of a visit's node spec: (execution's workflow id, version, ref, node) -> spec.
SpecOf = Callable[[str, str, str | None, str], NodeSpec | None]


def provider_and_model(model: str) -> tuple[str | None, str]:
    """``gen_ai.provider.name`` and the model's own name, from a litellm model
    string (``ollama_chat/llama3.2`` -> ``("ollama", "llama3.2")``)."""
    prefix, slash, name = model.partition("/")
    if slash and name:
        return _PROVIDERS.get(prefix, prefix), name
    found = next((p for start, p in _BARE if model.startswith(start)), None)
    return found, model


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class SpanFactory:
    """Builds a node's spans; ``spec_of`` finds a visit's node spec."""

    def __init__(
        self, resource: Resource, scope: InstrumentationScope, node: str, spec_of: SpecOf
    ) -> None:
        self.resource = resource
        self.scope = scope
        self.node = node
        self._spec_of = spec_of
        #: Each execution's span context, derived once for all its visits.
        self._contexts: dict[str, SpanContext] = {}

    def _context_of(self, execution_id: str, origin: Origin) -> SpanContext:
        found = self._contexts.get(execution_id)
        if found is None:
            if len(self._contexts) >= _CONTEXTS:  # executions whose end this process never sees
                self._contexts.clear()
            span_id = execution_span_id(execution_id)
            found = self._contexts[execution_id] = SpanContext(
                origin.trace_id, span_id, False, _SAMPLED
            )
        return found

    def _child(self, origin: Origin, span_id: int) -> SpanContext:
        return SpanContext(origin.trace_id, span_id, False, _SAMPLED)

    def _span(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        start: float,
        end: float,
        attributes: Mapping[str, Any],
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        status: Status = _UNSET,
        events: tuple[Event, ...] = (),
    ) -> ReadableSpan:
        return ReadableSpan(
            name,
            context,
            parent,
            self.resource,
            attributes,
            events,
            kind=kind,
            status=status,
            start_time=_ns(start),
            end_time=_ns(max(start, end)),
            instrumentation_scope=self.scope,
        )

    def execution(self, end: ExecutionEnd) -> ReadableSpan:
        record = end.execution
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": self.node,
            "agent_node.execution.id": record.id,
            "agent_node.workflow.id": record.workflow_id,
            "agent_node.workflow.version": record.workflow_version,
            "agent_node.execution.status": end.status,
        }
        if record.context_id:
            attributes["gen_ai.conversation.id"] = record.context_id
        if (caller := record.caller) is not None:
            attributes["agent_node.caller"] = caller
        status = _UNSET
        if end.status == "failed":
            attributes["error.type"] = "_OTHER"
            status = Status(StatusCode.ERROR, str(data_of(end.data).get("error") or "failed"))
        context = self._context_of(record.id, end.origin)
        self._contexts.pop(record.id, None)
        parent = None
        if end.origin.parent_id is not None:
            parent = SpanContext(end.origin.trace_id, end.origin.parent_id, True, _SAMPLED)
        return self._span(
            f"invoke_agent {self.node}",
            context,
            parent,
            record.created_at,
            end.at,
            attributes,
            status=status,
        )

    def visit(self, end: VisitEnd) -> list[ReadableSpan]:
        """The visit's span and, by its node type, its model call or outgoing call."""
        record, visit = end.execution, end.visit
        spec = self._spec_of(
            record.workflow_id, record.workflow_version, record.workflow_ref, visit.node
        )
        node_type = spec.type if spec is not None else "unknown"
        key = f"{record.id}/{visit.node}/{visit.visit}"
        start = visit.start if visit.start is not None else end.at
        # Few attributes: each costs the exporter more than the span's own
        # fields; the execution's are on its span, and 1 is said by silence.
        attributes: dict[str, Any] = {
            "agent_node.node.id": visit.node,
            "agent_node.node.type": node_type,
        }
        if visit.visit > 1:
            attributes["agent_node.visit"] = visit.visit
        if visit.attempt > 1:
            attributes["agent_node.attempts"] = visit.attempt
        if end.outcome != "completed":
            attributes["agent_node.visit.outcome"] = end.outcome
        status = _UNSET
        data = data_of(end.data) if node_type in _WITH_DATA or end.outcome == "failed" else {}
        if end.outcome == "failed":
            attributes["error.type"] = str(data.get("type") or "_OTHER")
            status = Status(StatusCode.ERROR, str(data.get("error") or "failed"))
        context = self._child(end.origin, visit_span_id(key))
        spans = [
            self._span(
                f"{node_type} {visit.node}",
                context,
                self._context_of(record.id, end.origin),
                start,
                end.at,
                attributes,
                status=status,
                events=_events_of(end),
            )
        ]
        usage = data.get("usage")
        if isinstance(usage, dict) and usage.get("model"):
            spans.append(self._chat(end, key, context, start, data, usage))
        call = _CALLS.get(node_type)
        if call is not None and spec is not None:
            name, call_attributes = call(spec, end)
            spans.append(
                self._span(
                    name,
                    self._child(end.origin, call_span_id(end.origin.traceparent, key)),
                    context,
                    start,
                    end.at,
                    call_attributes,
                    kind=SpanKind.CLIENT,
                    status=status,
                )
            )
        return spans

    def _chat(
        self,
        end: VisitEnd,
        key: str,
        parent: SpanContext,
        visit_start: float,
        data: dict[str, Any],
        usage: dict[str, Any],
    ) -> ReadableSpan:
        """The visit's model call(s) (its last attempt's), by the GenAI conventions."""
        answered = str(usage["model"])
        output = data.get("output")
        fell_back = output.get("fell_back") if isinstance(output, dict) else None
        given_up = [str(f.get("model")) for f in fell_back or () if isinstance(f, dict)]
        provider, response_model = provider_and_model(answered)
        _, request_model = provider_and_model(given_up[0] if given_up else answered)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": request_model,
            "gen_ai.response.model": response_model,
            "agent_node.model": answered,
        }
        if provider is not None:
            attributes["gen_ai.provider.name"] = provider
            attributes["gen_ai.system"] = provider  # the name before semconv 1.37
        for ours, theirs in (
            ("prompt_tokens", "gen_ai.usage.input_tokens"),
            ("completion_tokens", "gen_ai.usage.output_tokens"),
            ("calls", "agent_node.model.calls"),
        ):
            if isinstance(usage.get(ours), int):
                attributes[theirs] = usage[ours]
        if isinstance(usage.get("cost"), int | float):
            attributes["agent_node.model.cost"] = float(usage["cost"])
        if given_up:
            attributes["agent_node.model.fell_back"] = given_up
        duration = data.get("duration")
        start = end.at - duration if isinstance(duration, int | float) else visit_start
        status = _UNSET
        if end.outcome == "failed":
            attributes["error.type"] = str(data.get("type") or "_OTHER")
            status = Status(StatusCode.ERROR, str(data.get("error") or "failed"))
        return self._span(
            f"chat {request_model}",
            self._child(end.origin, chat_span_id(key)),
            parent,
            max(start, visit_start),
            end.at,
            attributes,
            kind=SpanKind.CLIENT,
            status=status,
        )


def _events_of(end: VisitEnd) -> tuple[Event, ...]:
    """Failed attempts as ``exception`` events; waits and delegation news as theirs."""
    if not (end.visit.failures or end.visit.notes):
        return ()
    found: list[tuple[float, Event]] = []
    for at, attempt, text in end.visit.failures:
        data = data_of(text)
        attributes: dict[str, Any] = {
            "exception.type": str(data.get("type") or "Exception"),
            "exception.message": str(data.get("error") or ""),
            "agent_node.attempt": attempt,
        }
        if isinstance(data.get("retry_at"), int | float):
            attributes["agent_node.retry_at"] = float(data["retry_at"])
        if data.get("throttled"):
            attributes["agent_node.throttled"] = True
        found.append((at, Event("exception", attributes, _ns(at))))
    for at, kind, text in end.visit.notes:
        data = data_of(text)
        noted = {f"agent_node.{k}": v for k, v in data.items() if k in _NOTED and _plain(v)}
        found.append((at, Event(kind, noted, _ns(at))))
    return tuple(event for _, event in sorted(found, key=lambda pair: pair[0]))


#: What of a wait's or delegation's data becomes attributes of its event.
_NOTED = frozenset({"kind", "event", "deadline", "expired", "peer", "task_id", "turn"})


def _plain(value: object) -> bool:
    return isinstance(value, str | bool | int | float)


def _delegation(spec: NodeSpec, end: VisitEnd) -> tuple[str, dict[str, Any]]:
    sent: dict[str, Any] = {}
    for _, kind, text in end.visit.notes:
        if kind == "delegation_sent":
            sent = data_of(text)
    peer = str(sent.get("peer") or getattr(spec, "peer", None) or getattr(spec, "skill", None))
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": peer,
        "agent_node.peer": peer,
    }
    if isinstance(sent.get("task_id"), str):
        attributes["agent_node.peer.task_id"] = sent["task_id"]
    endpoint = sent.get("endpoint")
    if isinstance(endpoint, str):
        attributes["url.full"] = endpoint
        _server(attributes, endpoint)
    return f"invoke_agent {peer}", attributes


def _tool(spec: NodeSpec, end: VisitEnd) -> tuple[str, dict[str, Any]]:
    tool = str(getattr(spec, "tool", "tool"))
    attributes: dict[str, Any] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool}
    server = getattr(spec, "server", None)
    if isinstance(server, str):
        attributes["agent_node.mcp.server"] = server
    return f"execute_tool {tool}", attributes


def _http(spec: NodeSpec, end: VisitEnd) -> tuple[str, dict[str, Any]]:
    method = str(getattr(spec, "method", "GET"))
    attributes: dict[str, Any] = {"http.request.method": method}
    url = getattr(spec, "url", None)
    if isinstance(url, str):
        attributes["url.template"] = url
    return method, attributes


def _server(attributes: dict[str, Any], url: str) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return
    if parts.hostname:
        attributes["server.address"] = parts.hostname
    if port is not None:
        attributes["server.port"] = port


_CALLS: dict[str, Callable[[NodeSpec, VisitEnd], tuple[str, dict[str, Any]]]] = {
    "delegate": _delegation,
    "tool": _tool,
    "http": _http,
}
