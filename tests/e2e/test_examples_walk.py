"""Each example's README, in order, as a new user runs it on a fresh clone.

examples/README.md (hello, the approval example and what it prints to do
next, the greeter and a call to each skill), examples/network/README.md by
hand (its offline path, and without a model: the error says how to start
Ollama), and examples/conformance/README.md as far as this repository goes:
the agent it serves, which answers what the TCK sends (the TCK itself is
another project's checkout, run by hand: see that README). Walked as
:mod:`support.readme_walk` says. The delegation example's README is walked
with the top README, in test_readme_walk.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.procs import opened
from support.readme_walk import ROOT, Walk, shell_blocks, walking

pytestmark = pytest.mark.slow

EXAMPLES = ROOT / "examples"


@pytest.fixture
def walk(tmp_path: Path) -> Iterator[Walk]:
    with walking(tmp_path) as walked:
        yield walked


def printed_by(walk: Walk, *words: str) -> str:
    """What the last command with all of ``words`` printed."""
    found = [out for ran, out in walk.printed.items() if all(word in ran for word in words)]
    assert found, f"no command with {words} ran: {walk.ran}"
    return found[-1]


def test_the_examples_readme_in_order(walk: Walk) -> None:
    for block in shell_blocks(EXAMPLES / "README.md"):
        walk.run_block(block)
    walk.stop_servers()
    assert "Ada is a short name (3 letters)" in printed_by(walk, "examples/hello/workflow.yaml")
    started, approved, resumed = [ran for ran in walk.ran if "approval" in ran or "signal" in ran]
    assert ": waiting" in walk.printed[started]  # and what it printed to do next ran:
    assert approved.split()[1] == "signal" and resumed.startswith(started)
    assert ": completed" in walk.printed[resumed] and "'paid'" in walk.printed[resumed]
    assert walk.task is not None
    assert walk.task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert walk.task["artifacts"][0]["parts"][0]["text"] == "Booked Lisbon for early May."
    listed = printed_by(walk, "executions", "greeter.db")
    assert listed.count("completed") == 2 and "hello@1" in listed and "book@1" in listed


def test_the_network_example_by_hand_offline(walk: Walk) -> None:
    walk.env["AGENT_NODE_MODEL"] = "scripted/demo"  # its README's way without Ollama
    for block in shell_blocks(EXAMPLES / "network" / "README.md"):
        walk.run_block(block)
    walk.stop_servers()
    assert walk.task is not None and walk.task["status"]["state"] == "TASK_STATE_COMPLETED"
    shown = printed_by(walk, "inspect", walk.task["id"])
    assert shown.count("(via ") == 3, shown  # research, write, write again after the review
    assert "→ revise" in shown and "→ pass" in shown
    assert ", 0 ms (via" not in shown, shown  # the round trip of each delegation


def test_the_network_example_without_a_model_says_how_to_start_ollama(walk: Walk) -> None:
    walk.states = frozenset({"TASK_STATE_FAILED"})  # OLLAMA_API_BASE: a closed port
    for block in shell_blocks(EXAMPLES / "network" / "README.md"):
        walk.run_block(block)
    walk.stop_servers()
    assert walk.task is not None
    said = walk.task["status"]["message"]["parts"][0]["text"]
    assert "no Ollama answers" in said and "ollama serve" in said, said
    assert "AGENT_NODE_MODEL=scripted/demo" in said, said  # this example's offline way
    assert "failed" in printed_by(walk, "executions", "coordinator.db")


def test_the_conformance_agent_serves_as_its_readme_says(walk: Walk) -> None:
    blocks = shell_blocks(EXAMPLES / "conformance" / "README.md")
    walk.run_block(blocks[0])  # serve; the TCK's own command is not ours to run
    assert [ran.split()[1] for ran in walk.ran] == ["serve"]
    url = f"http://127.0.0.1:{walk.ports['8471']}"
    card = json.loads(curl(f"{url}/.well-known/agent-card.json"))
    assert "url" not in card and card["supportedInterfaces"][0]["url"] == f"{url}/a2a"
    sent = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {
            "message": {
                "messageId": "tck-complete-task-1",
                "role": "ROLE_USER",
                "parts": [{"text": "Hello"}],
            }
        },
    }
    answer = json.loads(
        curl(
            f"{url}/a2a",
            "-H",
            "A2A-Version: 1.0",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps(sent),
        )
    )
    status = answer["result"]["task"]["status"]
    assert status["state"] == "TASK_STATE_COMPLETED"
    assert status["message"]["parts"][0]["text"] == "Hello from TCK"
    for block in blocks[1:]:  # with gRPC; certificates and the agent over mTLS
        walk.run_block(block)
    ours = [ran.split()[1:3] for ran in walk.ran]  # the rest is the TCK's
    assert ours == [["serve", "--config"]] * 2 + [["certs", "init"]] + [["certs", "issue"]] * 2 + [
        ["serve", "--config"]
    ], walk.ran


def curl(*args: str) -> str:
    done = subprocess.run(["curl", "-s", *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_auth_example_each_credential_and_a_delegation_by_token(walk: Walk) -> None:
    callers = []
    for block in shell_blocks(EXAMPLES / "auth" / "README.md"):
        walk.run_block(block)
        for ran, out in walk.printed.items():
            if ran.startswith("curl") and out.startswith("{") and ran not in callers:
                callers.append(ran)
    answers = [json.loads(walk.printed[ran])["result"]["task"] for ran in callers]
    assert [a["status"]["state"] for a in answers] == ["TASK_STATE_COMPLETED"] * 4
    assert [a["metadata"]["caller"] for a in answers] == [
        "spiffe://example.org/agent/me",
        "ci",
        "alice",
        "spiffe://example.org/agent/me",  # the caller agent's task; the vault's is below
    ]
    assert "Barbara" in json.dumps(answers[3]["artifacts"])
    walk.stop_servers()
    vault = asyncio.run(_tasks(walk.home / ".agent-node" / "vault.db"))
    assert sorted(r.caller for r in vault) == sorted(
        ["spiffe://example.org/agent/me", "ci", "alice", "caller"]  # caller: the token's sub
    )
    assert {r.status for r in vault} == {"completed"}
    assert "X-API-Key: ank_" in (walk.home / "ci.header").read_text()
    assert "ank_" not in (walk.home / "examples/auth/api-keys.yaml").read_text()


async def _tasks(db: Path) -> list[Any]:
    async with opened(f"sqlite:///{db}") as store:
        return list(await store.list_executions(limit=100))
