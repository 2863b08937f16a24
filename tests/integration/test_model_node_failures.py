"""A model node over its budget, an eval node whose judge is refused or
over its budget: the NODE fails — ``node_failed`` (its type, no retry), never
``node_completed`` then ``execution_failed`` — and the calls it made count
all the same: in its ``node_failed``, in ``agent-node inspect`` (a real
subprocess) and in the node's metrics. The A2A task (a task service on
SQLite, served by real uvicorn, real litellm against the fake Ollama) ends
FAILED saying why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.fake_ollama import FakeOllama, Reply, error, json_reply, text
from support.served import served

from agent_node import Runtime
from agent_node.a2a.server.app import Guard, create_app
from agent_node.a2a.server.card import CardDocument
from agent_node.a2a.server.jsonrpc import jsonrpc_endpoint
from agent_node.a2a.server.tasks import TaskService
from agent_node.engine.registry import WorkflowRegistry
from agent_node.integrations.llm import LlmClient
from agent_node.nodes.eval import EvalExecutor
from agent_node.nodes.model import ModelExecutor
from agent_node.telemetry.metrics import NodeMetrics
from agent_node.workflow.loading import load_workflow
from agent_node.workflow.yaml_loader import load_yaml_text

CLI = (sys.executable, "-m", "agent_node.cli.main")
V10 = {"A2A-Version": "1.0"}

#: One model node whose answer needs its repair, and one call allowed.
REPAIR_OVER_BUDGET = """
workflow:
  id: weather
  version: '1'
  start: ask
  budget: {calls: 1}
  state_schema: {text: {type: string, default: ""}, answer: {default: null}}
nodes:
  ask: {type: model, prompt: "{{ state.text }}", output: answer, schema: {c: integer}, next: done}
  done: {type: end, output: [answer]}
"""

#: A draft, then an eval node of two judges (BUDGET and MODEL filled in per case).
JUDGED = """
workflow:
  id: judged
  version: '1'
  start: draft
  BUDGET
  state_schema: {text: {type: string, default: ""}, draft: {type: string, default: ""}}
nodes:
  draft: {type: model, prompt: "{{ state.text }}", output: draft, next: review}
  review:
    type: eval
    scorers:
      - {type: llm_judge, name: one, rubric: "Good?", input: "{{ state.draft }}"}
      - {type: llm_judge, name: two, rubric: "Still good?", input: "{{ state.draft }}"MODEL}
    next: done
  done: {type: end, output: [draft]}
"""


def judged(budget: str, model: str) -> str:
    return JUDGED.replace("BUDGET", budget).replace("MODEL", model)


@dataclass(frozen=True)
class Case:
    workflow: str
    script: tuple[Reply, ...]
    node: str
    #: The failure's type, as ``node_failed`` records it.
    type: str
    #: Requests the model server got; calls counted (answered), all and the failed node's.
    asked: int
    calls: int
    node_calls: int
    said: str


CASES = {
    "model-over-budget": Case(
        REPAIR_OVER_BUDGET,
        (text("warm, I think"),),
        "ask",
        "OverBudget",
        1,
        1,
        1,
        "model node 'ask': the next model call would cross the execution's budget of 1 model call",
    ),
    "judge-refused": Case(
        judged("", ", model: ollama_chat/nope"),
        (text("a draft"), json_reply({"score": 5, "reason": "Fine."}), error(404, "no nope")),
        "review",
        "ModelRefused",
        3,
        2,
        1,  # the first judge's (a refused request gave nothing to count)
        "eval node 'review': the judge 'two': model 'ollama_chat/nope': ",
    ),
    "judge-over-budget": Case(
        judged("budget: {calls: 2}", ""),
        (text("a draft"), json_reply({"score": 5, "reason": "Fine."})),
        "review",
        "OverBudget",
        2,
        2,
        1,
        "eval node 'review': the next model call would cross the execution's budget of 2",
    ),
}


def agent_node(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [*CLI, *args, "--store", f"sqlite:///{store}"]
    env = {**os.environ, "COLUMNS": "400"}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def model_calls(scraped: bytes) -> float:
    for family in text_string_to_metric_families(scraped.decode()):
        for sample in family.samples:
            if sample.name == "agent_node_model_calls_total":
                return sample.value
    return 0.0


async def send(url: str, words: str) -> dict[str, Any]:
    message = {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": words}]}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(f"{url}/a2a", json=body, headers=V10)
    task: dict[str, Any] = answer.json()["result"]["task"]
    return task


@pytest.mark.parametrize("name", list(CASES))
async def test_the_node_fails_its_calls_counted_everywhere(
    name: str, ollama: FakeOllama, client: LlmClient, tmp_path: Path
) -> None:
    case = CASES[name]
    ollama.script(*case.script)
    store = tmp_path / "store.db"
    models = ModelExecutor(client)
    executors = {"model": models, "eval": EvalExecutor(models)}
    async with Runtime(f"sqlite:///{store}", scope="all", executors=executors) as rt:
        metrics = NodeMetrics(rt.store, WorkflowRegistry(load_workflow), "n")
        service = TaskService(rt, {"w": load_yaml_text(case.workflow)}, default_skill="w")
        endpoint = jsonrpc_endpoint(service, capabilities={})
        app = create_app(CardDocument.of({"name": "n"}), endpoint, guard=Guard())
        async with served(app, None) as url:
            task = await send(url, "Weather in Paris as JSON")
        log = await rt.store.events(task["id"])
        scraped = await metrics.scrape()
        metrics.close()

    # The A2A task: FAILED, its message saying why.
    assert task["status"]["state"] == "TASK_STATE_FAILED"
    [said] = task["status"]["message"]["parts"]
    assert said["text"].startswith(f"node {case.node!r} failed: {case.said}"), said
    # The node failed, once and for good; it never completed.
    mine = [(e.kind, json.loads(e.data or "{}")) for e in log if e.node == case.node]
    assert [kind for kind, _ in mine] == ["node_started", "node_failed"], mine
    failed = mine[-1][1]
    assert failed["type"] == case.type and failed["retry_at"] is None
    assert failed["error"].startswith(case.said)
    assert failed["usage"]["calls"] == case.node_calls and failed["usage"]["total_tokens"] > 0
    assert [e.kind for e in log][-1] == "execution_failed"
    assert len(ollama.chats()) == case.asked  # nothing asked again, nothing over budget asked
    assert model_calls(scraped) == case.calls

    shown = agent_node(store, "inspect", task["id"])
    assert shown.returncode == 0, shown.stderr
    [row] = [line for line in shown.stdout.splitlines() if line.startswith(f"│ {case.node} ")]
    assert " failed " in row and case.said[:40] in row, shown.stdout
    calls = f"{case.calls} call{'s' if case.calls > 1 else ''} · "
    [models] = [line for line in shown.stdout.splitlines() if line.startswith("models ")]
    assert calls in models, shown.stdout
