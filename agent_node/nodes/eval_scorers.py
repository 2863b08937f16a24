"""What an ``eval`` node scores with (:mod:`.eval`): the scorers as a
workflow declares them, a scorer's recorded :class:`Score`, and how the
budget scorers measure the execution from its events.

``latency``: seconds since the execution started, or the last completed
visit of ``node`` (its start to its end). ``cost``: USD of the model calls
recorded so far — every attempt's, failed ones included (their calls were
paid for, as budgets count them) — or of ``node``'s last completed visit;
calls without a price (local models) count as free. Within ``max`` the
score is 1, else ``max / measured``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent_node.nodes.model_budget import PAID
from agent_node.store.records import EventRecord
from agent_node.workflow.durations import parse_duration

__all__ = [
    "Assertion",
    "Cost",
    "Latency",
    "LlmJudge",
    "Score",
    "Scorer",
    "budget_score",
    "measured_cost",
    "measured_latency",
]


class _Scorer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: How the score is named in events and state (default: the type).
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.\-]+$")

    @property
    def label(self) -> str:
        return self.name or str(getattr(self, "type", "score"))


class LlmJudge(_Scorer):
    type: Literal["llm_judge"] = "llm_judge"
    rubric: str = Field(min_length=1)
    #: What is judged (a template), e.g. ``"{{ state.draft }}"``.
    input: str = Field(min_length=1)
    model: str | list[str] | None = Field(default=None, min_length=1)
    scale: int = Field(default=5, ge=2, le=100)
    threshold: float | None = Field(default=None, ge=0, le=1)
    #: The most the judge may write: a grade and a reason, not an essay (a
    #: small model left unbounded can fill its context with the reason).
    max_tokens: int = Field(default=512, gt=0)


class Assertion(_Scorer):
    type: Literal["assertion"] = "assertion"
    expr: str = Field(min_length=1)
    message: str | None = None


class _Budget(_Scorer):
    #: Measure this node's last completed visit instead of the whole execution.
    node: str | None = None
    max: float = Field(gt=0)


class Latency(_Budget):
    type: Literal["latency"] = "latency"

    @field_validator("max", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value


class Cost(_Budget):
    type: Literal["cost"] = "cost"


Scorer = Annotated[LlmJudge | Assertion | Latency | Cost, Field(discriminator="type")]


class Score(BaseModel):
    """One scorer's verdict, as recorded."""

    name: str
    type: str
    score: float
    passed: bool
    reason: str | None = None
    #: What was measured: the grade, seconds or USD.
    value: float | None = None


def measured_latency(history: Sequence[EventRecord], scorer: Latency, now: float) -> float:
    if scorer.node is None:
        return now - history[0].at if history else 0.0
    started: float | None = None
    measured = 0.0
    for event in history:
        if event.node != scorer.node:
            continue
        if event.kind == "node_started":
            started = event.at
        elif event.kind == "node_completed" and started is not None:
            measured = event.at - started
    return measured


def measured_cost(history: Sequence[EventRecord], scorer: Cost) -> float:
    """USD of the model calls so far, or of ``scorer.node``'s last completed
    visit: failed attempts count (their calls were paid for, as budgets count
    them), the execution's and the visit's alike."""
    by_visit: dict[tuple[str | None, int], float] = {}
    last: tuple[str | None, int] | None = None
    for event in history:
        if event.kind not in PAID or not event.data:
            continue
        if scorer.node is not None and event.node != scorer.node:
            continue
        cost = (json.loads(event.data).get("usage") or {}).get("cost")
        visit = (event.node, event.visit or 0)
        by_visit[visit] = by_visit.get(visit, 0.0) + float(cost or 0.0)
        if event.kind == "node_completed":
            last = visit
    if scorer.node is None:
        return sum(by_visit.values())
    return by_visit.get(last, 0.0) if last is not None else 0.0


def budget_score(scorer: Latency | Cost, measured: float) -> Score:
    passed = measured <= scorer.max
    unit = "s" if isinstance(scorer, Latency) else " USD"
    return Score(
        name=scorer.label,
        type=scorer.type,
        score=1.0 if passed else round(scorer.max / measured, 4),
        passed=passed,
        reason=None if passed else f"{measured:.4g}{unit} is over the {scorer.max:g}{unit} budget",
        value=round(measured, 6),
    )
