"""Budgets kept before the spend: a model call that would cross its execution's budget is not made.

An execution's budget is its workflow's ``budget:``
(:class:`~agent_node.workflow.budget.Budget`), tightened by one given when it
was started (a ``budget_set`` event: ``Runtime.run(..., budget=)``,
``agent-node run --budget``). What it spent is every model call its log
records — the ``usage`` of each ``node_completed`` *and* ``node_failed``
(an attempt that failed after its calls counts them too) — plus the calls
of the attempt running now.

Before each call (model nodes, eval judges, every round and repair) the
call is estimated: its prompt at four characters a token (messages and
tool schemas as sent), its answer at ``max_tokens`` (unset: nothing — the
answer's length is then unknown, and counts once it is written), its cost
as the model client prices those tokens (None: free). When spent plus the
estimate would cross a limit, :class:`OverBudget` is raised and the call
does not happen; the node fails with the reason, or routes to its
``on_budget`` node.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from agent_node.errors import PermanentFailure
from agent_node.store.records import EventRecord
from agent_node.workflow.budget import Budget

__all__ = [
    "BUDGET_EVENT",
    "PAID",
    "BudgetGuard",
    "OverBudget",
    "Priced",
    "Spend",
    "prompt_tokens",
    "spent",
    "text_tokens",
]

#: The event that sets an execution's own budget (its data: a Budget).
BUDGET_EVENT = "budget_set"
#: The events whose ``usage`` is model calls made: a failed attempt's calls were paid for.
PAID = ("node_completed", "node_failed")


@runtime_checkable
class Priced(Protocol):
    """A model client that can price a call before making it (optional)."""

    async def price(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for such a call (None: the model has no price)."""
        ...


class OverBudget(PermanentFailure):
    """A model call would cross its execution's budget: it was not made."""


@dataclass(frozen=True, slots=True)
class Spend:
    tokens: int = 0
    cost: float = 0.0
    calls: int = 0

    def __add__(self, other: Spend) -> Spend:
        return Spend(self.tokens + other.tokens, self.cost + other.cost, self.calls + other.calls)

    @classmethod
    def of(cls, usage: Mapping[str, Any]) -> Spend:
        return cls(
            int(usage.get("total_tokens") or 0),
            float(usage.get("cost") or 0.0),
            int(usage.get("calls") or 0),
        )


def spent(events: Sequence[EventRecord]) -> tuple[Spend, Budget | None]:
    """What the execution's log says it spent, and the budget it was started with."""
    total, own = Spend(), None
    for event in events:
        if event.kind in PAID and event.data and '"usage"' in event.data:
            usage = json.loads(event.data).get("usage")
            if isinstance(usage, Mapping):
                total = total + Spend.of(usage)
        elif event.kind == BUDGET_EVENT and event.data:
            own = Budget.model_validate_json(event.data)
    return total, own


def text_tokens(characters: int) -> int:
    """Tokens of a text this long, at four characters a token (an estimate)."""
    return (characters + 3) // 4


def prompt_tokens(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None
) -> int:
    """Tokens of a call's prompt, estimated from its messages and tool schemas as sent."""
    sent = json.dumps(list(messages), ensure_ascii=False)
    if tools:
        sent += json.dumps(list(tools), ensure_ascii=False)
    return text_tokens(len(sent))


async def price(client: object, model: str, prompt: int, answer: int) -> float | None:
    """USD for such a call as ``client`` prices it (None: it cannot)."""
    return await client.price(model, prompt, answer) if isinstance(client, Priced) else None


async def estimate(
    client: object,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    max_tokens: int | None,
) -> Spend:
    """What one call is expected to cost at most (see the module doc)."""
    prompt = prompt_tokens(messages, tools)
    answer = max_tokens or 0
    cost = await price(client, model, prompt, answer)
    return Spend(prompt + answer, float(cost or 0.0), 1)


class BudgetGuard:
    """Checks each call of one node attempt against its execution's budget.
    ``history`` reads the log (once, on the first check)."""

    def __init__(
        self,
        workflow_budget: Budget | None,
        history: Callable[[], Awaitable[list[EventRecord]]] | None,
        where: str,
    ) -> None:
        self._workflow = workflow_budget
        self._history = history
        self._where = where
        self._before: tuple[Spend, Budget | None] | None = None
        #: Calls of this attempt made in conversations that are over.
        self._done = Spend()

    def count(self, usage: Mapping[str, Any] | None) -> None:
        """A conversation of this attempt is over: its calls count from now."""
        if usage:
            self._done = self._done + Spend.of(usage)

    async def check(self, call: Spend, this_attempt: Spend) -> None:
        """Raise :class:`OverBudget` when ``call`` would cross the budget."""
        if self._before is None:
            events = await self._history() if self._history is not None else []
            self._before = spent(events)
        before, own = self._before
        budget = self._workflow.tightened(own) if self._workflow is not None else own
        if budget is None:
            return
        so_far = before + self._done + this_attempt
        after = so_far + call
        for name, limit, used, more in (
            ("tokens", budget.tokens, so_far.tokens, call.tokens),
            ("cost", budget.cost, so_far.cost, call.cost),
            ("calls", budget.calls, so_far.calls, call.calls),
        ):
            if limit is not None and getattr(after, name) > limit:
                raise OverBudget(
                    f"{self._where}: the next model call would cross the execution's budget"
                    f" of {_shown(name, limit)} ({_shown(name, used)} spent, this call"
                    f" ~{_shown(name, more)}); it was not made"
                )


def _shown(name: str, value: float) -> str:
    if name == "cost":
        return f"{value:.4g} USD"
    if name == "tokens":
        return f"{int(value):,} tokens"
    return f"{int(value)} model call{'' if value == 1 else 's'}"
