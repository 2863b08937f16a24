"""``agent-node run --config``: a workflow run from the command line runs as
the node runs it — its ``models:`` (``api_base``), its ``mcp:`` servers, its
store. Before, ``run`` had no ``--config``: a model's call went to the
provider the model's name implies (OpenAI) and a tool node had no server.
The fake Ollama and ``tests/support/mcp_server.py`` (stdio) are real
servers; the command runs in-process through click's runner."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support.fake_ollama import MODEL, FakeOllama, serving, text

from agent_node.cli.main import cli

SERVER = Path(__file__).resolve().parents[1] / "support" / "mcp_server.py"

ASK_YAML = """
workflow:
  id: ask
  version: "1"
  start: add
  state_schema: {text: {type: string, default: ""}, sum: {}, reply: {type: string, default: ""}}
nodes:
  add: {type: tool, server: calc, tool: add, arguments: {a: 2, b: 3}, output: sum, next: write}
  write: {type: model, prompt: "{{ state.text }} {{ state.sum.result }}", output: reply, next: done}
  done: {type: end, output: [reply]}
"""


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with serving() as fake:
        yield fake


@pytest.fixture
def node(tmp_path: Path, ollama: FakeOllama) -> Path:
    """A node's folder: its configuration (no ``store:``: the test gives it)
    and the workflow to run."""
    (tmp_path / "ask.yaml").write_text(ASK_YAML)
    config = {
        "name": "asker",
        "store": f"sqlite:///{tmp_path}/node.db",
        "models": {"default": f"ollama_chat/{MODEL}", "api_base": ollama.url},
        "mcp": [{"name": "calc", "command": [sys.executable, str(SERVER)]}],
    }
    (tmp_path / "agent-node.yaml").write_text(json.dumps(config))
    return tmp_path


def agent_node(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_run_with_a_config_asks_its_models_and_tools_in_its_store(
    node: Path, ollama: FakeOllama
) -> None:
    ollama.script(text("Five it is."))
    workflow, config = str(node / "ask.yaml"), str(node / "agent-node.yaml")
    ran = agent_node("run", workflow, "--config", config, "--input", '{"text": "sum?"}')
    assert ran.exit_code == 0, ran.stderr + ran.stdout
    assert '"reply": "Five it is."' in ran.stdout
    (chat,) = ollama.chats()  # the call went to the config's api_base
    assert chat.body["model"] == MODEL
    assert chat.body["messages"][-1]["content"] == "sum? 5"  # the tool's answer, from mcp:
    listed = agent_node("executions", "--store", f"sqlite:///{node}/node.db")
    assert "ask" in listed.stdout  # the execution is in the node's store


def test_run_without_it_says_the_config_here_is_not_read(
    node: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(node)
    store = f"sqlite:///{node}/elsewhere.db"
    ran = agent_node("run", "ask.yaml", "--input", "{}", "--store", store)
    assert ran.exit_code == 1  # the tool node has no server without the config
    note = "note: agent-node.yaml here is not read; give --config agent-node.yaml"
    assert note in ran.stderr
    said = " ".join(ran.stdout.split())  # as wrapped to the terminal's width
    assert "tool node 'add': this runtime has no MCP servers" in said
    assert "`agent-node serve`, `run --config`" in said
