"""``--config F``: a node's configuration, for the commands that work on its
store from outside it (``signal``, ``retry``, ``resume``, ``worker``) and
``run``, which runs a workflow as the node would.

It gives them the node's store (unless ``--store`` says another), the
workflows its skills register — an old version kept as a skill of its own
among them, so that executions parked on it can go on — and, for the
commands that run work, what the node's nodes run with (its ``mcp:``
servers, ``models:`` and ``peers:``: :class:`~agent_node.node_equipment.Equipment`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent_node.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from agent_node.config import NodeConfig
    from agent_node.engine.registry import WorkflowRegistry
    from agent_node.node_equipment import Equipment
    from agent_node.workflow.compiled import CompiledWorkflow

__all__ = [
    "DEFAULT_CONFIG",
    "config_option",
    "equipped",
    "node_config",
    "node_of",
    "note_unread_config",
    "registry",
    "skill_workflows",
    "store_of",
]

#: The file a node's configuration is in by convention (``serve``'s default).
DEFAULT_CONFIG = "agent-node.yaml"

config_option = click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="The node's configuration (agent-node.yaml): its store (unless --store), the"
    " workflows its skills register, and what its nodes run with (mcp:, models:, peers:).",
)


def node_config(path: str | None) -> NodeConfig | None:
    if path is None:
        return None
    from agent_node.config import load_config

    return load_config(path)


#: The node types that run with what a node's configuration gives (models:, mcp:, peers:).
_EQUIPPED = frozenset({"model", "tool", "delegate", "eval"})


def note_unread_config(workflow: CompiledWorkflow) -> None:
    """Say that ``./agent-node.yaml`` is not read when the workflow has nodes
    it would configure: they run with the defaults (a model's call goes to
    its provider, not the file's ``models.api_base``)."""
    if Path(DEFAULT_CONFIG).is_file() and any(
        node.type in _EQUIPPED for node in workflow.ir.nodes.values()
    ):
        click.echo(
            f"note: {DEFAULT_CONFIG} here is not read; give --config {DEFAULT_CONFIG}"
            " to run with its models:, mcp: and peers:",
            err=True,
        )


def store_of(config: NodeConfig | None, store_url: str) -> str:
    """``--store`` when given on the command line, else the config's ``store:``."""
    context = click.get_current_context()
    given = context.get_parameter_source("store_url") is click.core.ParameterSource.COMMANDLINE
    if config is None or given or config.store is None:
        return store_url
    return config.store


def skill_workflows(config: NodeConfig | None) -> list[CompiledWorkflow]:
    """The workflows of the node's skills; errors name the skill."""
    if config is None:
        return []
    from agent_node.workflow.loading import load_workflow

    loaded = []
    for skill in config.skills:
        try:
            loaded.append(load_workflow(config.workflow_ref(skill)))
        except UsageError as exc:
            raise ConfigError(f"skill {skill.id!r}: {exc}") from None
    return loaded


def registry(config: NodeConfig | None) -> WorkflowRegistry:
    """The workflows an execution may run here: the node's skills', then
    what the execution recorded (its file or module)."""
    from agent_node.engine.registry import WorkflowRegistry
    from agent_node.workflow.loading import load_workflow

    workflows = WorkflowRegistry(load_workflow)
    for workflow in skill_workflows(config):
        workflows.add(workflow)
    return workflows


def node_of(config: NodeConfig | None, node: str) -> str:
    """``--node`` when given on the command line, else the config's ``name``:
    the leases a dead process of the node held are taken at once."""
    context = click.get_current_context()
    given = context.get_parameter_source("node") is click.core.ParameterSource.COMMANDLINE
    return node if config is None or given else config.name


@asynccontextmanager
async def equipped(
    config: NodeConfig | None, *, check_skills: bool = True
) -> AsyncIterator[Equipment | None]:
    """What the node's nodes run with (None without a config), closed on the
    way out. With ``check_skills`` (a command that runs the skills' work), a
    tool node of theirs naming an MCP server the config does not have is a
    :class:`ConfigError`; a tool its server does not list, or arguments its
    schema refuses, a warning (:mod:`agent_node.tool_check`). ``run``, which
    runs one workflow of its own, leaves them unchecked (and unstarted)."""
    if config is None:
        yield None
        return
    from agent_node.node_equipment import Equipment
    from agent_node.tool_check import check_servers, warn_tools

    workflows: dict[str, CompiledWorkflow] = {}
    if check_skills:
        workflows = dict(zip((s.id for s in config.skills), skill_workflows(config), strict=True))
        check_servers(workflows, [server.name for server in config.mcp])
    equipment = Equipment.of(config)
    try:
        if workflows:
            await warn_tools(equipment.tools, workflows)
        yield equipment
    finally:
        await equipment.aclose()
