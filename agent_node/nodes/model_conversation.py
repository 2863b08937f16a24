"""One attempt's exchange with a model: what was sent, what the history
gains, what each call answered and cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from agent_node.nodes.model_client import Completion, ModelClient
from agent_node.store.live import LiveWriter


class Spec(Protocol):
    """What a conversation reads of its model node's spec."""

    prompt: str | None
    stream: bool | None
    temperature: float | None
    max_tokens: int | None


__all__ = ["Conversation", "Spec"]

_EXCERPT = 200


@dataclass
class Conversation:
    """One attempt's exchange with the model, and what it cost."""

    spec: Spec
    model: str
    client: ModelClient
    #: Everything sent so far.
    messages: list[dict[str, Any]]
    #: What the history gains (the prompt, tool calls and results).
    turn: list[dict[str, Any]] = field(default_factory=list)
    offered: list[dict[str, Any]] | None = None
    live: LiveWriter | None = None
    #: The request's response format (a node's ``schema``).
    response_format: dict[str, Any] | None = None
    completions: list[Completion] = field(default_factory=list)
    tools_called: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.spec.prompt is not None:
            self.turn.append(self.messages[-1])

    async def ask(self) -> Completion:
        spec = self.spec
        if self.live is not None:
            self.live.restart()
        completion = await self.client.complete(
            self.model,
            self.messages,
            tools=self.offered,
            response_format=self.response_format,
            stream=bool(spec.stream) or self.live is not None,
            temperature=spec.temperature,
            max_tokens=spec.max_tokens,
            on_text=self.live.write if self.live is not None else None,
        )
        self.completions.append(completion)
        self.tools_called.extend(call.name for call in completion.tool_calls)
        return completion

    def add(self, *messages: dict[str, Any]) -> None:
        self.messages.extend(messages)
        self.turn.extend(messages)

    def aside(self, *messages: dict[str, Any]) -> None:
        """Sent to the model, but not kept in the history."""
        self.messages.extend(messages)

    def usage(self) -> dict[str, Any]:
        def tokens(kind: str) -> int:
            return sum(int(c.usage.get(kind, 0)) for c in self.completions)

        costs = [c.cost for c in self.completions if c.cost is not None]
        return {
            "model": self.model,
            "calls": len(self.completions),
            "prompt_tokens": tokens("prompt_tokens"),
            "completion_tokens": tokens("completion_tokens"),
            "total_tokens": tokens("total_tokens"),
            "cost": round(sum(costs), 8) if costs else None,
            "latency_s": round(sum(c.latency_s for c in self.completions), 6),
            "tool_calls": len(self.tools_called),
        }

    def summary(self, answer: Completion) -> dict[str, Any]:
        text = answer.text if len(answer.text) <= _EXCERPT else answer.text[: _EXCERPT - 1] + "…"
        return {"model": self.model, "text": text, "tools": list(self.tools_called)}
