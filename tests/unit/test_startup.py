"""Starting is cheap: ``import agent_node`` and ``agent-node --help`` import
no command module and none of the heavy dependencies (fresh interpreters)."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

import agent_node
from agent_node.cli.main import COMMANDS, cli

HEAVY = (
    "pydantic",
    "sqlalchemy",
    "httpx",
    "litellm",
    "rich",
    "uvicorn",
    "starlette",
    "asyncio",
    "grpc",
    "google",
)


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_import_agent_node_loads_nothing_heavy() -> None:
    modules = loaded_after("import agent_node")
    assert heavy_in(modules) == []
    assert not any(m.startswith(("agent_node.", "agent_node_")) for m in modules), modules


def test_help_imports_no_command_module() -> None:
    code = (
        "from agent_node.cli.main import cli\n"
        "try:\n"
        "    cli(['--help'], prog_name='agent-node')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
    )
    modules = loaded_after(code)
    assert heavy_in(modules) == []
    commands = {f"agent_node.cli.{c.module.lstrip('.')}" for c in COMMANDS.values()}
    assert not commands & modules


def test_a_command_imports_its_module_alone() -> None:
    modules = loaded_after(
        "from agent_node.cli.main import cli\n"
        "try:\n"
        "    cli(['certs', '--help'], prog_name='agent-node')\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    assert "agent_node.cli.certs" in modules
    assert "agent_node.cli.executions" not in modules


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_table_says_what_each_command_says(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert isinstance(command, click.Command)
    assert command.get_short_help_str(10_000) == COMMANDS[name].summary


def test_help_lists_every_command_with_its_line() -> None:
    output = subprocess.run(
        [sys.executable, "-m", "agent_node.cli.main", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for name in COMMANDS:
        assert f"\n  {name} " in output


def test_public_names_are_found_on_first_use() -> None:
    assert set(agent_node.__all__) <= set(dir(agent_node))
    for name in agent_node.__all__:
        assert getattr(agent_node, name) is not None
    from agent_node.sdk import Workflow

    assert agent_node.Workflow is Workflow
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = agent_node.Nope  # type: ignore[attr-defined]


def test_a_node_imports_grpc_only_to_serve_it() -> None:
    modules = loaded_after(
        "import agent_node.node, agent_node.a2a.server.app, agent_node.a2a.server.card,"
        " agent_node.cli.serve"
    )
    assert "agent_node.node" in modules
    assert not [m for m in modules if m.split(".")[0] == "grpc" or "grpc_binding" in m]
