"""``eval``: score the work so far, and decide what happens when it falls short.

Each scorer gives a score between 0 and 1 and a verdict:

* ``llm_judge`` — a model grades ``input`` (a template; what is judged)
  against ``rubric`` (a template) from 1 to ``scale`` and says why. It asks
  through the model node's machinery (:meth:`ModelExecutor.converse`: the
  node's model client, structured output with one repair), at temperature 0;
  what it writes is not streamed to the task's caller (a grade is the node's
  evaluation, not an answer).
  Its score is ``grade / scale``; it passes at ``threshold`` (the scorer's,
  else the node's) or above. A judge whose answer still does not parse after
  its repair gives no verdict: a failed score of 0 saying so (``on_fail``
  decides); a judge that cannot be asked at all (an unknown model), or whose
  call would cross the execution's budget, fails the node at once
  (``node_failed``, never retried, with the usage of the judges' calls made
  so far), and one that cannot be reached, or whose server fails, fails the
  attempt (retried); either error names the judge.
* ``assertion`` — a safe expression over the state (the language of branch
  conditions); 1 when it holds, else 0 with ``message`` as the reason.
* ``latency`` and ``cost`` — seconds and USD against ``max``
  (:mod:`.eval_scorers` says what they measure). The node passes when every scorer passes.

When it does not, ``on_fail`` decides:

* ``fail`` (default) — the execution fails, naming the scores and reasons
  (the node did its job: its visit completes with the verdict, then
  ``execution_failed``);
* ``continue`` — on to ``next`` as if it passed;
* ``route`` — on to the node ``route``;
* ``retry_with_feedback`` — the reasons of the failed scorers go into the
  state key ``feedback`` and the node ``revise`` runs again (it is expected
  to lead back here). This is bounded: the eval node's visits are counted by
  the engine, and once this node has asked for ``max_revisions`` revisions,
  a further failure does what ``exhausted`` says (``fail``, ``continue`` or
  ``route``).

The scores are recorded in the node's ``node_completed`` event (output:
``passed``, the mean ``score``, each scorer's score, verdict and reason, and
the ``action`` taken; usage: the judge's tokens and cost), shown by
``agent-node inspect``, and written to the state key ``output`` when given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, model_validator

from agent_node.engine.executor import Advance, Finish, NodeContext, Outcome
from agent_node.errors import NodeFailed
from agent_node.nodes.base import Parkless
from agent_node.nodes.eval_scorers import (
    Assertion,
    Cost,
    Latency,
    LlmJudge,
    Score,
    Scorer,
    budget_score,
    measured_cost,
    measured_latency,
)
from agent_node.nodes.model import InvalidAnswer, ModelExecutor, ModelRefused
from agent_node.nodes.model_budget import BudgetGuard, OverBudget
from agent_node.nodes.model_spec import ModelNode
from agent_node.store.records import EventRecord
from agent_node.workflow.ir import NodeSpec, node_type
from agent_node.workflow.retry import RetryPolicy

__all__ = ["EvalExecutor", "EvalNode", "Score"]

_JUDGE_SYSTEM = (
    "You are a strict, fair evaluator. Grade the submission against the rubric"
    " with a whole number from 1 (fails the rubric) to {scale} (fully meets it)."
    ' Answer with JSON only: {{"score": <integer>, "reason": "<one or two sentences:'
    ' what is missing or wrong, or why it is good>"}}.'
)
_JUDGE_PROMPT = "Rubric:\n{rubric}\n\nSubmission:\n{submission}"
_Action = Literal["fail", "continue", "route"]


@node_type
class EvalNode(NodeSpec):
    """Scores the work so far (see the module doc)."""

    type: Literal["eval"] = "eval"
    scorers: list[Scorer] = Field(min_length=1)
    threshold: float = Field(default=0.7, ge=0, le=1)
    on_fail: Literal["fail", "continue", "route", "retry_with_feedback"] = "fail"
    #: The node re-run with the feedback (``retry_with_feedback``).
    revise: str | None = None
    #: The state key the failed scorers' reasons are written to before a revision.
    feedback: str = "feedback"
    max_revisions: int = Field(default=1, ge=1, le=100)
    #: What a failure does once the revisions are used up.
    exhausted: _Action = "fail"
    #: Where ``route`` (as ``on_fail`` or ``exhausted``) goes.
    route: str | None = None
    #: A state key for the scores (``passed``, ``score``, ``scores``).
    output: str | None = None
    next: str | None = None
    #: A judge that cannot be reached is retried like a model node.
    retry: RetryPolicy | None = RetryPolicy(max_attempts=3, initial_delay=1.0, max_delay=30.0)

    has_next: ClassVar[bool] = True
    _judges: dict[int, ModelNode] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> EvalNode:
        labels = [scorer.label for scorer in self.scorers]
        if len(set(labels)) != len(labels):
            raise ValueError("scorers need distinct names (set 'name' on scorers of one type)")
        routed = self.on_fail == "route" or (
            self.on_fail == "retry_with_feedback" and self.exhausted == "route"
        )
        if routed and self.route is None:
            raise ValueError("'route' names the node a failed evaluation goes to")
        if (self.on_fail == "retry_with_feedback") != (self.revise is not None):
            raise ValueError("'revise' (the node to re-run) goes with on_fail: retry_with_feedback")
        for index, scorer in enumerate(self.scorers):
            if isinstance(scorer, LlmJudge):
                self._judges[index] = _judge_spec(self.id, scorer)
        return self

    def successors(self) -> list[str]:
        targets = [self.next, self.revise, self.route]
        return [target for target in targets if target is not None]

    def expressions(self) -> list[tuple[str, str]]:
        return [
            (f"scorers[{i}].expr", scorer.expr)
            for i, scorer in enumerate(self.scorers)
            if isinstance(scorer, Assertion)
        ]

    def templates(self) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for i, scorer in enumerate(self.scorers):
            if isinstance(scorer, LlmJudge):
                found += [(f"scorers[{i}].rubric", scorer.rubric)]
                found += [(f"scorers[{i}].input", scorer.input)]
        return found

    def writes(self) -> list[tuple[str, str]]:
        written = [("output", self.output)] if self.output else []
        return [*written, *([("feedback", self.feedback)] if self.revise else [])]

    def judge(self, index: int) -> ModelNode:
        return self._judges[index]


class EvalExecutor(Parkless):
    """Scores eval nodes; judges ask through ``models`` (shared with model nodes)."""

    def __init__(self, models: ModelExecutor | None = None) -> None:
        self.models = models or ModelExecutor()

    async def execute(self, ctx: NodeContext) -> Outcome:
        spec = _spec(ctx.spec)
        usage: list[dict[str, Any]] = []
        history = await _history(ctx, spec)
        scores: list[Score] = []
        budget = BudgetGuard(ctx.workflow.ir.budget, ctx.history, f"eval node {spec.id!r}")
        try:
            for index, scorer in enumerate(spec.scorers):
                scores.append(await self._score(ctx, spec, index, scorer, history, usage, budget))
        except OverBudget as exc:  # the node fails for good; every judge's calls count
            exc.usage = _total(_with(usage, exc.usage))
            raise
        except ModelRefused as exc:
            judge = spec.scorers[len(scores)].label  # the scorer after those that scored
            refused = ModelRefused(f"eval node {spec.id!r}: the judge {judge!r}: {exc}")
            refused.usage = _total(_with(usage, exc.usage))
            raise refused from exc
        except NodeFailed as exc:  # retried (or parked: a 429) as it is, saying whose it was
            judge = spec.scorers[len(scores)].label
            exc.args = (f"eval node {spec.id!r}: the judge {judge!r}: {exc}",)
            exc.usage = _total(_with(usage, exc.usage))
            raise
        passed = all(score.passed for score in scores)
        action, target = _decide(spec, ctx.visit, passed)
        mean = round(sum(score.score for score in scores) / len(scores), 4)
        verdict = {"passed": passed, "score": mean, "scores": [s.model_dump() for s in scores]}
        output = {**verdict, "action": action}
        if action == "fail":
            # A verdict, not a failure of the node: it completes, and ends the execution.
            why = f"eval node {spec.id!r}: {_shortfall(scores)}"
            return Finish("failed", why, output, usage=_total(usage))
        patch: dict[str, Any] = {spec.output: verdict} if spec.output else {}
        if action == "revise":
            patch[spec.feedback] = _shortfall(scores, reasons_only=True)
        return Advance(next=target, patch=patch or None, output=output, usage=_total(usage))

    async def _score(
        self,
        ctx: NodeContext,
        spec: EvalNode,
        index: int,
        scorer: LlmJudge | Assertion | Latency | Cost,
        history: list[EventRecord],
        usage: list[dict[str, Any]],
        budget: BudgetGuard,
    ) -> Score:
        if isinstance(scorer, LlmJudge):
            return await self._judge(ctx, spec, index, scorer, usage, budget)
        if isinstance(scorer, Assertion):
            expression = ctx.workflow.expression(spec.id, f"scorers[{index}].expr")
            held = bool(expression.evaluate(ctx.data))
            reason = None if held else scorer.message or f"{scorer.expr} does not hold"
            return Score(
                name=scorer.label, type=scorer.type, score=float(held), passed=held, reason=reason
            )
        if isinstance(scorer, Latency):
            return budget_score(scorer, measured_latency(history, scorer, ctx.now))
        return budget_score(scorer, measured_cost(history, scorer))

    async def _judge(
        self,
        ctx: NodeContext,
        spec: EvalNode,
        index: int,
        scorer: LlmJudge,
        usage: list[dict[str, Any]],
        budget: BudgetGuard,
    ) -> Score:
        rubric = ctx.workflow.template(spec.id, f"scorers[{index}].rubric").render(ctx.data)
        submission = ctx.workflow.template(spec.id, f"scorers[{index}].input").render(ctx.data)
        messages = [
            {"role": "system", "content": _JUDGE_SYSTEM.format(scale=scorer.scale)},
            {"role": "user", "content": _JUDGE_PROMPT.format(rubric=rubric, submission=submission)},
        ]
        try:
            reply = await self.models.converse(spec.judge(index), messages, budget=budget)
        except InvalidAnswer as exc:
            if exc.usage is not None:  # its calls were made: they count
                usage.append(dict(exc.usage))
                budget.count(exc.usage)
            # No verdict is not a pass: a failed score, so on_fail decides.
            reason = f"the judge gave no readable verdict: {exc}"
            return Score(
                name=scorer.label, type=scorer.type, score=0.0, passed=False, reason=reason
            )
        usage.append(reply.usage)
        budget.count(reply.usage)
        grade = min(max(int(reply.value["score"]), 1), scorer.scale)
        score = round(grade / scorer.scale, 4)
        threshold = scorer.threshold if scorer.threshold is not None else spec.threshold
        return Score(
            name=scorer.label,
            type=scorer.type,
            score=score,
            passed=score >= threshold,
            reason=str(reply.value.get("reason") or "").strip() or None,
            value=grade,
        )


def _judge_spec(node_id: str, scorer: LlmJudge) -> ModelNode:
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 1, "maximum": scorer.scale},
            "reason": {"type": "string"},
        },
        "required": ["score", "reason"],
    }
    return ModelNode(
        id=f"{node_id}.{scorer.label}" if node_id else scorer.label,
        model=scorer.model,
        prompt="(rendered by the eval node)",
        schema=schema,
        temperature=0,
        max_tokens=scorer.max_tokens,
        retry=None,
    )


def _decide(spec: EvalNode, visit: int, passed: bool) -> tuple[str, str | None]:
    """``(action, next node)``: what this evaluation leads to."""
    if passed:
        return "pass", spec.next
    action: str = spec.on_fail
    if action == "retry_with_feedback":
        action = "revise" if visit <= spec.max_revisions else spec.exhausted
    targets = {"continue": spec.next, "route": spec.route, "revise": spec.revise, "fail": None}
    return action, targets[action]


async def _history(ctx: NodeContext, spec: EvalNode) -> list[EventRecord]:
    if not any(isinstance(s, Latency | Cost) for s in spec.scorers):
        return []
    if ctx.history is None:
        raise NodeFailed(f"eval node {spec.id!r}: this engine gives no event history")
    return await ctx.history()


def _shortfall(scores: Sequence[Score], *, reasons_only: bool = False) -> str:
    failed = [score for score in scores if not score.passed]
    if reasons_only:
        return "\n".join(f"- {s.reason or s.name + ' failed'}" for s in failed)
    return "; ".join(f"{s.name} {s.score:.2f}: {s.reason or 'failed'}" for s in failed)


def _with(usages: list[dict[str, Any]], more: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """``usages`` and the calls of the judge that failed (``more``), if any."""
    return [*usages, dict(more)] if more else usages


def _total(usages: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    if not usages:
        return None
    costs = [u["cost"] for u in usages if u.get("cost") is not None]
    summed = {
        key: sum(int(u.get(key) or 0) for u in usages)
        for key in ("calls", "prompt_tokens", "completion_tokens", "total_tokens")
    }
    latency = round(sum(float(u.get("latency_s") or 0) for u in usages), 6)
    cost = round(sum(costs), 8) if costs else None
    return {"model": usages[0].get("model"), **summed, "cost": cost, "latency_s": latency}


def _spec(spec: object) -> EvalNode:
    if not isinstance(spec, EvalNode):
        raise NodeFailed(f"node {getattr(spec, 'id', '?')!r} is not an eval node")
    return spec
