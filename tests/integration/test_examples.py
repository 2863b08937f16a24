"""The README's Python example and the shipped examples run as documented."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.readme_blocks import python_block

from agent_node import Workflow, load_workflow

ROOT = Path(__file__).resolve().parents[2]


def test_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    block = python_block("A workflow in Python")
    monkeypatch.chdir(tmp_path)  # the default store lives under ./.agent-node/
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(block, "README.md", "exec"), namespace)
    result = namespace["result"]
    assert getattr(result, "status", None) == "waiting"
    assert (tmp_path / ".agent-node" / "agent-node.db").exists()
    wf = namespace["wf"]
    assert isinstance(wf, Workflow)
    execution_id = getattr(result, "execution_id", "")
    resumed = wf.run_sync(execution_id=execution_id)
    assert resumed.status == "waiting"


def test_hello_example_through_the_cli(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/hello.db"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent_node.cli.main",
            "run",
            str(ROOT / "examples/hello/workflow.yaml"),
            "--input",
            '{"name": "Ada Lovelace"}',
            "--store",
            store,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Ada Lovelace is a long name (11 letters)" in done.stdout
    assert re.search(r"execution \S+ completed", done.stdout)


async def test_approval_example_waits_then_pays(tmp_path: Path) -> None:
    compiled = load_workflow(str(ROOT / "examples/approval/approval.py") + ":wf")
    from agent_node import Runtime

    async with Runtime(f"sqlite:///{tmp_path}/approval.db") as runtime:
        parked = await runtime.run(compiled, {"employee": "Ada", "amount": 250})
        assert parked.status == "waiting"
        await runtime.engine.control.signal(parked.execution_id, "decision", {"approved": True})
        paid = await runtime.run(compiled, execution_id=parked.execution_id)
        small = await runtime.run(compiled, {"employee": "Bob", "amount": 20})
    assert (
        paid.status == "completed" and json.loads(paid.state.model_dump_json())["status"] == "paid"
    )
    assert small.status == "completed" and small.state.model_dump()["status"] == "paid"


def test_the_greeter_agent_example_loads_and_builds_its_card() -> None:
    from agent_node.a2a.server.card import build_card
    from agent_node.config import load_config
    from agent_node.node import AgentNode

    config = load_config(ROOT / "examples/greeter/agent-node.yaml")
    node = AgentNode(config)
    card = build_card(config, node.load_workflows())
    assert card["name"] == "Greeter"
    assert [(s["id"], s["name"]) for s in card["skills"]] == [
        ("greet", "Greet"),
        ("book", "Book a trip"),
    ]
    assert card["skills"][1]["description"] == (
        "Asks when you want to travel to the place you name, then books it."
    )


@pytest.mark.parametrize("agent", ["coordinator", "researcher", "writer"])
def test_the_network_agents_load_as_written(agent: str) -> None:
    """examples/network/ runs by hand as its README says: certificates from
    the repository's certs/, the identities the peers and policies name."""
    from agent_node.a2a.server.card import build_card
    from agent_node.config import load_config
    from agent_node.node import AgentNode

    config = load_config(ROOT / f"examples/network/{agent}.yaml")
    assert config.tls is not None
    assert "models" not in config.model_fields_set  # $AGENT_NODE_MODEL chooses (its README)
    assert config.path(config.tls.cert).resolve() == ROOT / "certs" / f"{agent}.pem"
    card = build_card(config, AgentNode(config).load_workflows())
    assert card["name"] == agent.title()
    if agent == "coordinator":
        assert [(p.name, p.identity) for p in config.peers] == [
            ("researcher", "spiffe://example.org/agent/researcher"),
            ("writer", "spiffe://example.org/agent/writer"),
        ]
    else:
        assert config.policy.callers == ["spiffe://example.org/agent/coordinator"]


def test_agent_node_model_runs_the_network_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent_node.config import load_config

    monkeypatch.setenv("AGENT_NODE_MODEL", "scripted/demo")
    for agent in ("coordinator", "researcher", "writer"):
        config = load_config(ROOT / f"examples/network/{agent}.yaml")
        assert config.models.default == "scripted/demo"
