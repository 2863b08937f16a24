"""The eval node: judges through real litellm against a fake Ollama, the
assertion, latency and cost scorers, and what a failed evaluation does."""

from __future__ import annotations

import re
import textwrap
from typing import Any

import pytest
from support.fake_ollama import FakeOllama, json_reply, text

from agent_node import Workflow
from agent_node.errors import WorkflowDefinitionError
from agent_node.integrations.llm import LlmClient
from agent_node.nodes.model import ModelExecutor
from agent_node.results import Event, RunResult
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.yaml_loader import load_yaml_text

MODEL = "ollama_chat/llama3.2:1b"

#: write (a model) → check (an eval) → done; the eval's part is filled in per test.
WORKFLOW = """
workflow:
  id: brief
  version: "1"
  start: write
  state_schema:
    type: object
    properties:
      topic: {type: string, default: tides}
      draft: {type: string, default: ""}
      feedback: {type: string, default: ""}
      verdict: {default: null}
nodes:
  write:
    type: model
    prompt: "About {{ state.topic }}.{% if state.feedback %} Fix: {{ state.feedback }}{% endif %}"
    output: draft
    next: check
  check:
    type: eval
{check}
    next: done
  done: {type: end}
"""
FALLBACK = '  fallback: {type: end, status: failed, message: "routed"}\n'

JUDGE = """\
scorers:
  - type: llm_judge
    name: quality
    rubric: "Does it explain {{ state.topic }} and end with a conclusion?"
    input: "{{ state.draft }}"
"""


def workflow(check: str) -> CompiledWorkflow:
    text = WORKFLOW.replace("{check}", textwrap.indent(check, "    "))
    return load_yaml_text(text + FALLBACK if "route: fallback" in check else text)


async def run(
    runtime_factory: Any, client: LlmClient, wf: CompiledWorkflow, url: str = "memory://"
) -> RunResult:
    # Only the model executor: the runtime's eval executor asks through it.
    runtime = await runtime_factory(url, executors={"model": ModelExecutor(client)})
    result: RunResult = await runtime.run(wf, {})
    return result


def completions(result: RunResult, node: str) -> list[dict[str, Any]]:
    events: list[Event] = [e for e in result.events if e.kind == "node_completed"]
    return [e.data or {} for e in events if e.node == node]


async def test_a_low_score_asks_for_exactly_one_revision_then_passes(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any, tmp_path: Any
) -> None:
    ollama.script(
        text("Tides rise and fall."),
        json_reply({"score": 2, "reason": "There is no conclusion."}),
        text("Tides rise and fall twice a day. In short: the moon pulls the sea."),
        json_reply({"score": 5, "reason": "Clear, with a conclusion."}),
    )
    check = JUDGE + "on_fail: retry_with_feedback\nrevise: write\noutput: verdict\n"
    result = await run(runtime_factory, client, workflow(check), f"sqlite:///{tmp_path}/e.db")
    assert result.status == "completed", result.error
    state = result.state.model_dump()
    assert state["draft"].endswith("the moon pulls the sea.")
    assert state["feedback"] == "- There is no conclusion."
    assert state["verdict"]["passed"] is True
    writes, checks = completions(result, "write"), completions(result, "check")
    assert len(writes) == 2 and len(checks) == 2
    first, second = (c["output"] for c in checks)
    assert (first["passed"], first["action"], first["score"]) == (False, "revise", 0.4)
    assert first["scores"][0]["reason"] == "There is no conclusion."
    assert (second["passed"], second["action"], second["score"]) == (True, "pass", 1.0)
    assert checks[0]["next"] == "write" and checks[1]["next"] == "done"
    assert checks[0]["usage"]["calls"] == 1 and checks[0]["usage"]["total_tokens"] > 0
    # The revision saw the judge's reason; the judge asked in JSON, at temperature 0.
    chats = ollama.chats()
    assert len(chats) == 4 and ollama.pending == 0
    assert "Fix: - There is no conclusion." in chats[2].body["messages"][-1]["content"]
    judge = chats[1].body
    assert judge["options"]["temperature"] == 0
    assert judge["format"]["properties"]["score"]["maximum"] == 5
    assert "Tides rise and fall." in judge["messages"][-1]["content"]


async def test_when_revisions_are_used_up_exhausted_decides(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    low = json_reply({"score": 1, "reason": "Off topic."})
    ollama.script(text("a"), low, text("b"), low)
    check = JUDGE + "on_fail: retry_with_feedback\nrevise: write\nexhausted: fail\n"
    result = await run(runtime_factory, client, workflow(check))
    assert result.status == "failed"
    assert result.error == "eval node 'check': quality 0.20: Off topic."
    checks = completions(result, "check")
    assert [c["output"]["action"] for c in checks] == ["revise", "fail"]
    assert [c["usage"]["calls"] for c in checks] == [1, 1]  # a failing verdict's judge counts
    assert len(completions(result, "write")) == 2


async def test_continue_and_route(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    low = json_reply({"score": 3, "reason": "Thin."})
    ollama.script(text("a"), low)
    result = await run(runtime_factory, client, workflow(JUDGE + "on_fail: continue\n"))
    assert result.status == "completed"
    assert completions(result, "check")[0]["output"]["action"] == "continue"
    ollama.script(text("a"), low)
    routing = workflow(JUDGE + "on_fail: route\nroute: fallback\n")
    routed = await run(runtime_factory, client, routing)
    assert routed.status == "failed" and routed.error == "routed"


async def test_a_judge_answer_that_is_not_json_is_repaired(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    ollama.script(text("a"), text("I would say four."), json_reply({"score": 4, "reason": "ok"}))
    result = await run(runtime_factory, client, workflow(JUDGE))
    assert result.status == "completed", result.error
    assert completions(result, "check")[0]["output"]["scores"][0]["value"] == 4
    assert completions(result, "check")[0]["usage"]["calls"] == 2


async def test_a_judge_without_a_readable_verdict_is_a_failed_score(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    ollama.script(text("a"), text("Four, I think."), text("Still four."))
    result = await run(runtime_factory, client, workflow(JUDGE + "on_fail: continue\n"))
    assert result.status == "completed", result.error
    [check] = completions(result, "check")
    [verdict] = check["output"]["scores"]
    assert (verdict["passed"], verdict["score"]) == (False, 0.0)
    assert verdict["reason"].startswith("the judge gave no readable verdict")
    # Both of the judge's calls (the answer, its repair) count all the same.
    assert check["usage"]["calls"] == 2 and check["usage"]["total_tokens"] > 0


async def test_assertion_latency_and_cost_scorers(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    ollama.script(text("Tides are caused by the moon."))
    check = """\
scorers:
  - {type: assertion, expr: "'moon' in state.draft", message: "name the cause"}
  - {type: assertion, name: short, expr: "len(state.draft) < 10", message: "too long"}
  - {type: latency, max: 30s}
  - {type: latency, name: writing, node: write, max: 0.000001}
  - {type: cost, max: 0.01}
on_fail: continue
"""
    result = await run(runtime_factory, client, workflow(check))
    assert result.status == "completed", result.error
    scores = {s["name"]: s for s in completions(result, "check")[0]["output"]["scores"]}
    assert scores["assertion"]["passed"] is True and scores["assertion"]["score"] == 1.0
    assert (scores["short"]["passed"], scores["short"]["reason"]) == (False, "too long")
    assert scores["latency"]["passed"] is True and 0 < scores["latency"]["value"] < 30
    assert scores["writing"]["passed"] is False and scores["writing"]["score"] < 1
    assert "over the 1e-06s budget" in scores["writing"]["reason"]
    assert scores["cost"] == {
        "name": "cost", "type": "cost", "score": 1.0, "passed": True, "reason": None, "value": 0.0,
    }  # fmt: skip


def test_definitions_are_checked() -> None:
    bad = {
        "on_fail: retry_with_feedback\n": "'revise' (the node to re-run)",
        "on_fail: route\n": "'route' names the node",
        "revise: write\n": "'revise' (the node to re-run)",
        "on_fail: retry_with_feedback\nrevise: nowhere\n": "nowhere",
    }
    for extra, message in bad.items():
        with pytest.raises(WorkflowDefinitionError, match=re.escape(message)):
            workflow(JUDGE + extra)
    with pytest.raises(WorkflowDefinitionError, match="distinct names"):
        workflow("scorers: [{type: cost, max: 1}, {type: cost, max: 2}]\n")
    # The feedback key must be in the state schema, like every key a node writes.
    loop = textwrap.indent(JUDGE + "on_fail: retry_with_feedback\nrevise: write\n", "    ")
    text = WORKFLOW.replace('      feedback: {type: string, default: ""}\n', "")
    text = text.replace("{% if state.feedback %} Fix: {{ state.feedback }}{% endif %}", "")
    with pytest.raises(WorkflowDefinitionError, match="feedback"):
        load_yaml_text(text.replace("{check}", loop))


async def test_the_sdk_builds_the_same_loop(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    from pydantic import BaseModel

    wf = Workflow("sdk-brief", version="1")

    @wf.state
    class Brief(BaseModel):
        draft: str = ""
        feedback: str = ""

    wf.model("write", prompt="Write.{{ state.feedback }}", output="draft", next="check")
    wf.eval(
        "check",
        scorers=[{"type": "llm_judge", "rubric": "Good?", "input": "{{ state.draft }}"}],
        on_fail="retry_with_feedback",
        revise="write",
        next=None,
    )
    ollama.script(
        text("a"), json_reply({"score": 1, "reason": "Say more."}), text("b"),
        json_reply({"score": 5, "reason": "Good."}),
    )  # fmt: skip
    result = await run(runtime_factory, client, wf.compile())
    assert result.status == "completed", result.error
    assert result.state.model_dump() == {"draft": "b", "feedback": "- Say more."}


async def test_what_a_judge_writes_stays_in_the_node_and_its_length_is_capped(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    # Its grade is the node's evaluation, not an answer: nothing goes out live.
    ollama.script(text("Tides rise and fall."), json_reply({"score": 5, "reason": "Fine."}))
    runtime = await runtime_factory("memory://", executors={"model": ModelExecutor(client)})
    seen: list[Any] = []
    runtime.store.live.subscribe("judged", seen.append)
    result = await runtime.run(workflow(JUDGE), {}, execution_id="judged")
    assert result.status == "completed", result.error
    assert [c.node for c in seen if c.node == "check"] == []
    assert "".join(c.text for c in seen) == "Tides rise and fall."  # the model node's, as before
    judge_request = ollama.chats()[-1].body
    assert judge_request["options"]["num_predict"] == 512  # max_tokens: no essay
