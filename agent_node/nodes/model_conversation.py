"""One attempt's exchange with a model: what was sent, what the history
gains, what each call answered and cost.

A fallback chain (``model: [a, b, c]``) is walked here: when a model cannot
answer — nothing answered, its server failed (5xx), it is not installed
(:class:`~.model_client.ModelMissing`), or it rate-limits and the visit has
used up its rate-limit waits — the same request goes to the next model,
which answers the rest of the attempt (tool rounds, the repair). A 429
while rate-limit waits are left parks the visit instead (the chain starts
over from its first model afterwards). Each model given up on is recorded
(``fell_back``: the model and why), and the summary names the model that
answered. When the last model fails too, its error says every model's.

Every call made counts in :meth:`Conversation.usage`, one cut short too: a
call that fails (or is cancelled: a node's ``timeout``) after its answer
began to stream counts, its tokens estimated at four characters a token —
the prompt as sent, the answer as far as it came — and marked
``estimated``. A call that fails before any of its answer came (refused,
unreachable) counts nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent_node.nodes.model_budget import (
    BudgetGuard,
    Spend,
    estimate,
    price,
    prompt_tokens,
    text_tokens,
)
from agent_node.nodes.model_client import (
    Completion,
    ModelClient,
    ModelMissing,
    ModelUnavailable,
    RateLimited,
)
from agent_node.store.live import LiveWriter

log = logging.getLogger(__name__)


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
    #: The model asked now: the chain's first, then the one that answered.
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
    #: The models after ``model`` in the fallback chain.
    fallbacks: Sequence[str] = ()
    #: Whether a rate-limited model may be given up on now (the visit used
    #: up its rate-limit waits); None: never (the 429 parks the visit).
    rate_limits_spent: Callable[[], Awaitable[bool]] | None = None
    #: The models given up on, and why.
    fell_back: list[dict[str, str]] = field(default_factory=list)
    #: Checks each call against the execution's budget before it is made.
    budget: BudgetGuard | None = None
    #: Characters of the answer of the call in flight come so far.
    _came: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.spec.prompt is not None:
            self.turn.append(self.messages[-1])

    async def ask(self) -> Completion:
        while True:
            try:
                completion = await self._call()
                break
            except (ModelUnavailable, ModelMissing) as exc:
                if not await self._fall_back(exc):
                    if self.fell_back and not self.fallbacks:  # the chain is spent
                        failed = [f["error"] for f in self.fell_back]
                        exc.args = (f"every model of the chain failed: {'; '.join(failed)}; {exc}",)
                    raise
        self.completions.append(completion)
        self.tools_called.extend(call.name for call in completion.tool_calls)
        return completion

    async def _call(self) -> Completion:
        spec = self.spec
        if self.budget is not None:
            asked = (self.model, self.messages, self.offered, spec.max_tokens)
            call = await estimate(self.client, *asked)
            await self.budget.check(call, Spend.of(self.usage()))
        if self.live is not None:
            self.live.restart()
        streamed = bool(spec.stream) or self.live is not None
        self._came, started = 0, time.perf_counter()
        try:
            return await self.client.complete(
                self.model,
                self.messages,
                tools=self.offered,
                response_format=self.response_format,
                stream=streamed,
                temperature=spec.temperature,
                max_tokens=spec.max_tokens,
                on_text=self._heard if streamed else None,
            )
        except BaseException:  # a cancellation too: a node's timeout cut the call
            if self._came:  # its answer had begun: the call was made
                self.completions.append(await self._cut(time.perf_counter() - started))
            raise

    def _heard(self, text: str) -> None:
        """A piece of the answer of the call in flight."""
        self._came += len(text)
        if self.live is not None:
            self.live.write(text)

    async def _cut(self, latency: float) -> Completion:
        """The call in flight, cut short: what it cost, estimated."""
        prompt = prompt_tokens(self.messages, self.offered)
        answer = text_tokens(self._came)
        usage = {"prompt_tokens": prompt, "completion_tokens": answer}
        usage["total_tokens"] = prompt + answer
        try:
            cost = await price(self.client, self.model, prompt, answer)
        except Exception:  # no price for it: it still counts
            cost = None
        return Completion(self.model, "", usage=usage, cost=cost, latency_s=latency, estimated=True)

    async def _fall_back(self, error: Exception) -> bool:
        """Move on to the chain's next model after ``error``; False when
        there is none, or the error is a rate limit to wait out first."""
        if not self.fallbacks:
            return False
        if isinstance(error, RateLimited) and (
            self.rate_limits_spent is None or not await self.rate_limits_spent()
        ):
            return False
        log.info("model %s could not answer (%s); asking %s", self.model, error, self.fallbacks[0])
        self.fell_back.append({"model": self.model, "error": str(error)})
        self.model, self.fallbacks = self.fallbacks[0], self.fallbacks[1:]
        return True

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
        counted = {
            "model": self.model,
            "calls": len(self.completions),
            "prompt_tokens": tokens("prompt_tokens"),
            "completion_tokens": tokens("completion_tokens"),
            "total_tokens": tokens("total_tokens"),
            "cost": round(sum(costs), 8) if costs else None,
            "latency_s": round(sum(c.latency_s for c in self.completions), 6),
            "tool_calls": len(self.tools_called),
        }
        if any(c.estimated for c in self.completions):
            counted["estimated"] = True  # some counts are ours, not the server's
        return counted

    def summary(self, answer: Completion) -> dict[str, Any]:
        text = answer.text if len(answer.text) <= _EXCERPT else answer.text[: _EXCERPT - 1] + "…"
        said = {"model": self.model, "text": text, "tools": list(self.tools_called)}
        if answer.finish_reason is not None:
            said["finish_reason"] = answer.finish_reason
        return {**said, "fell_back": list(self.fell_back)} if self.fell_back else said
