"""Budgets kept before the spend (issue 16), through real litellm against the
fake Ollama: a model call that would cross its execution's budget (the
workflow's ``budget:``, tightened by one given at start) is not made — the
fake server sees no request for it — and the node fails with the reason or
routes to ``on_budget``; every call made counts, those of failed attempts
and unreadable judges included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.fake_ollama import FakeOllama, json_reply, text

from agent_node import Runtime
from agent_node.config import ModelSettings
from agent_node.integrations.llm import LlmClient
from agent_node.nodes.eval import EvalExecutor
from agent_node.nodes.model import ModelExecutor
from agent_node.nodes.model_budget import BudgetGuard, OverBudget, Spend, estimate
from agent_node.results import RunResult
from agent_node.workflow.budget import Budget
from agent_node.workflow.yaml_loader import load_yaml_text

MODEL = "ollama_chat/llama3.2:1b"


def two_calls(budget: str, *, on_budget: bool = False, max_tokens: str = "") -> Any:
    route = "on_budget: short" if on_budget else ""
    short = "short: {type: end, output: [first]}" if on_budget else ""
    return load_yaml_text(
        f"""
workflow:
  id: two
  version: '1'
  start: first
  state_schema:
    first: {{type: string, default: ""}}
    second: {{type: string, default: ""}}
  {budget}
nodes:
  first: {{type: model, prompt: "Say something.", output: first, next: second {max_tokens}}}
  second:
    type: model
    prompt: "Now say more about {{{{ state.first }}}}."
    output: second
    next: done
    {route}
  {short}
  done: {{type: end, output: [first, second]}}
"""
    )


async def run(ollama: FakeOllama, workflow: Any, tmp_path: Path, **options: Any) -> RunResult:
    settings = ModelSettings(default=MODEL, api_base=ollama.url, timeout=20)
    async with LlmClient(settings) as client:
        models = ModelExecutor(client)
        executors = {"model": models, "eval": EvalExecutor(models)}
        async with Runtime(f"sqlite:///{tmp_path}/s.db", executors=executors) as runtime:
            return await runtime.run(workflow, {}, **options)


def usages(result: RunResult) -> list[dict[str, Any]]:
    return [
        e.data["usage"]
        for e in result.events
        if e.kind in ("node_completed", "node_failed") and e.data and e.data.get("usage")
    ]


async def test_a_call_that_would_cross_the_token_budget_is_not_made(
    ollama: FakeOllama, tmp_path: Path
) -> None:
    ollama.script(text("A fairly long first answer " * 8), text("never asked"))
    result = await run(ollama, two_calls("budget: {tokens: 120}"), tmp_path)
    assert result.status == "failed"
    assert "model node 'second'" in (result.error or "")
    assert "would cross the execution's budget of 120 tokens" in (result.error or "")
    assert "it was not made" in (result.error or "")
    assert len(ollama.chats()) == 1  # the second call never reached the server
    assert [u["calls"] for u in usages(result)] == [1]


async def test_on_budget_routes_instead_of_failing(ollama: FakeOllama, tmp_path: Path) -> None:
    ollama.script(text("first"), text("never asked"))
    result = await run(ollama, two_calls("budget: {calls: 1}", on_budget=True), tmp_path)
    assert result.status == "completed", result.error
    assert result.output == {"first": "first"}
    (over,) = [e.data for e in result.events if e.kind == "node_completed" and e.node == "second"]
    assert over is not None and "budget of 1 model call " in over["output"]["over_budget"]
    assert len(ollama.chats()) == 1


async def test_max_tokens_counts_before_the_answer_is_written(
    ollama: FakeOllama, tmp_path: Path
) -> None:
    ollama.script(text("never asked"))
    workflow = two_calls("budget: {tokens: 200}", max_tokens=", max_tokens: 500")
    result = await run(ollama, workflow, tmp_path)
    assert result.status == "failed" and "model node 'first'" in (result.error or "")
    assert ollama.chats() == []


async def test_an_execution_s_own_budget_tightens_its_workflow_s(
    ollama: FakeOllama, tmp_path: Path
) -> None:
    ollama.script(text("first"), text("never asked"))
    workflow = two_calls("budget: {calls: 5}")
    result = await run(ollama, workflow, tmp_path, budget={"calls": 1})
    assert result.status == "failed" and "budget of 1 model call " in (result.error or "")
    assert len(ollama.chats()) == 1
    budget_set = [e.data for e in result.events if e.kind == "budget_set"]
    assert budget_set == [{"calls": 1}]


async def test_without_a_budget_nothing_is_refused(ollama: FakeOllama, tmp_path: Path) -> None:
    ollama.script(text("one"), text("two"))
    result = await run(ollama, two_calls(""), tmp_path)
    assert result.status == "completed" and len(ollama.chats()) == 2


JUDGED = """
workflow:
  id: judged
  version: '1'
  start: draft
  state_schema: {draft: {type: string, default: ""}}
  budget: {calls: 3}
nodes:
  draft: {type: model, prompt: "Write.", output: draft, next: review}
  review:
    type: eval
    scorers:
      - {type: llm_judge, name: one, rubric: "Good?", input: "{{ state.draft }}"}
      - {type: llm_judge, name: two, rubric: "Still good?", input: "{{ state.draft }}"}
    next: done
  done: {type: end, output: [draft]}
"""


async def test_a_judge_s_calls_count_and_one_that_would_cross_is_not_made(
    ollama: FakeOllama, tmp_path: Path
) -> None:
    # The draft, then a judge whose answer is unreadable twice (its repair
    # included): three calls. The second judge would be the fourth.
    ollama.script(text("draft"), text("not json"), text("still not json"), json_reply({}))
    result = await run(ollama, load_yaml_text(JUDGED), tmp_path)
    assert result.status == "failed"
    assert "eval node 'review'" in (result.error or "")
    assert "budget of 3 model calls" in (result.error or "")
    assert len(ollama.chats()) == 3
    assert sum(u["calls"] for u in usages(result)) == 3


class Priced:
    """A client pricing every token at a cent."""

    async def price(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens + completion_tokens) * 0.01


async def test_the_cost_of_a_call_is_estimated_from_its_price() -> None:
    messages = [{"role": "user", "content": "x" * 400}]  # ~100 tokens
    call = await estimate(Priced(), "m", messages, None, 50)
    assert call.calls == 1 and 150 <= call.tokens <= 160
    assert call.cost == pytest.approx(call.tokens * 0.01)
    guard = BudgetGuard(Budget(cost=2.0), None, "model node 'x'")
    await guard.check(Spend(cost=0.1, calls=1), Spend())
    with pytest.raises(OverBudget, match=r"budget of 2 USD \(0\.5 USD spent"):
        await guard.check(call, Spend(cost=0.5))
    guard.count({"cost": 0.4, "calls": 1, "total_tokens": 10})
    with pytest.raises(OverBudget, match=r"\(0\.9 USD spent"):
        await guard.check(call, Spend(cost=0.5))


def test_a_budget_needs_a_limit_and_cli_limits_are_read() -> None:
    with pytest.raises(ValueError, match="a budget limits"):
        Budget()
    from agent_node.cli.executions import _budget

    assert _budget("tokens=2000, cost=0.05") == Budget(tokens=2000, cost=0.05)
    with pytest.raises(Exception, match="is not tokens=N"):
        _budget("dollars=5")
    assert json.loads(Budget(calls=2).model_dump_json(exclude_none=True)) == {"calls": 2}
