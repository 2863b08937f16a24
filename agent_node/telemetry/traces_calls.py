"""The spans of what a node visit calls, under the visit's own span
(:mod:`.traces_spans`): its model, by the OpenTelemetry GenAI conventions,
and its calls out of the node — a delegation to a peer, a tool, an HTTP
request.

A model call is a child span of its visit, not attributes on it: GenAI
backends (Langfuse, Phoenix, Honeycomb, Datadog) show a span whose
``gen_ai.operation.name`` is ``chat`` as a generation, with its tokens
and model, and the visit around it keeps what is the workflow's — its
attempts, waits and failures — apart from what is the model's. A node
with tools may call its model several times: the one span sums them
(``agent_node.model.calls``).

A call out of the node is a CLIENT span whose id is the one its
``traceparent`` carried (:func:`.traces_ids.call_span_id`), so the peer's
spans hang under it. What these spans say is read from the visit's end and
its node's spec; their ids and times are the caller's to give.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from agent_node.telemetry import traces_wire as wire
from agent_node.telemetry.traces_ids import chat_span_id
from agent_node.telemetry.traces_ledger import VisitEnd, data_of
from agent_node.workflow.ir import NodeSpec

__all__ = ["CALLS", "Call", "chat_span", "provider_and_model"]

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

#: What a call out of a visit is named and its attributes, by the visit's node type.
Call = Callable[[NodeSpec, VisitEnd], tuple[str, dict[str, Any]]]


def provider_and_model(model: str) -> tuple[str | None, str]:
    """``gen_ai.provider.name`` and the model's own name, from a litellm model
    string (``ollama_chat/llama3.2`` -> ``("ollama", "llama3.2")``)."""
    prefix, slash, name = model.partition("/")
    if slash and name:
        return _PROVIDERS.get(prefix, prefix), name
    found = next((p for start, p in _BARE if model.startswith(start)), None)
    return found, model


def chat_span(
    end: VisitEnd,
    key: str,
    trace: bytes,
    parent: bytes,
    visit_start: float,
    data: dict[str, Any],
    usage: dict[str, Any],
) -> bytes:
    """The visit's model call(s) (its last attempt's), by the GenAI conventions:
    the visit ``key``'s child in ``trace``, ``parent`` its 8-byte span id."""
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
    status = b""
    if end.outcome == "failed":
        attributes["error.type"] = str(data.get("type") or "_OTHER")
        status = wire.status(wire.ERROR, str(data.get("error") or "failed"))
    start_ns = wire.ns(max(start, visit_start))
    return wire.span(
        trace,
        chat_span_id(key),
        parent,
        False,
        wire.head(f"chat {request_model}", wire.CLIENT),
        start_ns,
        max(start_ns, wire.ns(end.at)),
        wire.attributes(attributes) + status,
    )


def _delegation(spec: NodeSpec, end: VisitEnd) -> tuple[str, dict[str, Any]]:
    sent: dict[str, Any] = {}
    for _, kind, text in end.visit.notes or ():
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


#: The node types whose visits call out of the node, and their call's name and attributes.
CALLS: dict[str, Call] = {
    "delegate": _delegation,
    "tool": _tool,
    "http": _http,
}
