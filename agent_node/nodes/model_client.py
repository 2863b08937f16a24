"""What a model node asks models through: the contract its adapters implement.

:class:`ModelClient` (:class:`agent_node.integrations.llm.LlmClient`: litellm,
and the offline scripted model) answers one chat completion as a
:class:`Completion`; :class:`ToolBox` (the MCP pool) offers and calls tools.
The node's executor (:mod:`.model`) owns the conversation around them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent_node.errors import NodeFailed, PermanentFailure, Throttled

__all__ = [
    "Completion",
    "IncompleteAnswer",
    "InvalidAnswer",
    "ModelClient",
    "ModelMissing",
    "ModelNotConfigured",
    "ModelRefused",
    "ModelUnavailable",
    "RateLimited",
    "ToolBox",
    "ToolCall",
]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool the model asked for. ``arguments`` is the JSON text it sent."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Completion:
    """What one model call answered, and what it cost."""

    model: str
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    #: ``prompt_tokens``, ``completion_tokens``, ``total_tokens``.
    usage: Mapping[str, int] = field(default_factory=dict)
    #: In USD, as the client prices the call; None when it cannot.
    cost: float | None = None
    latency_s: float = 0.0
    #: Whether ``usage`` is an estimate (four characters a token), not the
    #: server's count: it gave none, or the call was cut short.
    estimated: bool = False
    #: Why the model stopped, as its server said: ``stop``, ``tool_calls``,
    #: ``length`` (it reached ``max_tokens`` or its context),
    #: ``content_filter`` (its provider withheld the rest) …; None: not said.
    finish_reason: str | None = None

    def message(self) -> dict[str, Any]:
        """This answer as an OpenAI-style assistant message (for the next turn)."""
        said: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            said["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in self.tool_calls
            ]
        return said


class ModelRefused(PermanentFailure):
    """The model's server refused the request itself: asking again changes
    nothing, so the node fails at once."""


class ModelMissing(ModelRefused):
    """The server has no such model (not installed, not served): the next
    model of a fallback chain is asked; alone, the node fails at once."""


class ModelNotConfigured(ModelMissing):
    """This process cannot call the model: it has no credentials for the
    model's provider (no API key in its environment). A configuration
    error, not the server's: the next model of a fallback chain is asked;
    alone, the node fails at once, saying what to set."""


class ModelUnavailable(NodeFailed):
    """The model could not answer now — no server answered, it failed (5xx),
    or it rate-limits: the next model of a fallback chain is asked; alone,
    the attempt fails and is retried."""


class RateLimited(ModelUnavailable, Throttled):
    """The server said to come back later (429, a provider's rate limit):
    the visit parks for ``retry_after`` seconds without using an attempt
    (:class:`~agent_node.errors.Throttled`)."""


class IncompleteAnswer(ModelRefused):
    """The model did not finish its answer (finish reason ``length`` or
    ``content_filter``) and its node says to fail then (``on_incomplete:
    fail``): asking again stops the same way. ``usage``: what the calls
    that led to it cost."""


class InvalidAnswer(ModelRefused):
    """The answer did not match the schema, even after its repair (the
    message quotes its start); ``usage``: what the calls that led to it
    cost (they count all the same)."""

    def __init__(self, message: str, usage: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.usage = usage


class ModelClient(Protocol):
    """How the node reaches models (:class:`agent_node.integrations.llm.LlmClient`).

    ``complete`` raises :class:`~agent_node.errors.NodeFailed` naming the
    model on any failure — :class:`ModelRefused` when the request itself was
    refused (:class:`ModelMissing`: no such model), :class:`ModelUnavailable`
    when nothing answered or the server failed (:class:`RateLimited`: it
    asked to come back later) — and never swallows cancellation.
    """

    @property
    def default_model(self) -> str:
        """The model of nodes that name none."""
        ...

    async def complete(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        response_format: Mapping[str, Any] | None = None,
        stream: bool = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Completion:
        """``on_text``: called with each piece of the answer's text as it
        comes (the call is streamed)."""
        ...


class ToolBox(Protocol):
    """The tools models may call (the MCP pool, behind a small adapter)."""

    async def schemas(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """OpenAI-style function tools (``{"type": "function", "function":
        {"name", "description", "parameters"}}``) for ``names`` (entries of a
        node's ``tools``), in order, each named by its function name
        (:mod:`.tool_refs`); ``NodeFailed`` when one is unknown."""
        ...

    async def call(self, name: str, args: Mapping[str, Any], *, ordinal: int = 1) -> str:
        """The answer of the tool ``name`` (an entry of the node's ``tools``)
        as text (a tool's own error is an answer too); ``NodeFailed`` when
        the tool cannot be reached. ``ordinal``: the call's number in the
        attempt (1, 2, …), for its idempotency key."""
        ...
