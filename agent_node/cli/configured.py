"""``--config F``: a node's configuration, for the commands that work on its
store from outside it (``signal``, ``retry``, ``resume``, ``worker``).

It gives them the node's store (unless ``--store`` says another), the
workflows its skills register — an old version kept as a skill of its own
among them, so that executions parked on it can go on — and, for the
commands that run work, what the node's nodes run with (its ``mcp:``
servers, ``models:`` and ``peers:``: :class:`~agent_node.node_equipment.Equipment`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import click

from agent_node.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from agent_node.config import NodeConfig
    from agent_node.engine.registry import WorkflowRegistry
    from agent_node.node_equipment import Equipment
    from agent_node.workflow.compiled import CompiledWorkflow

__all__ = [
    "config_option",
    "equipped",
    "node_config",
    "node_of",
    "registry",
    "skill_workflows",
    "store_of",
]

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
async def equipped(config: NodeConfig | None) -> AsyncIterator[Equipment | None]:
    """What the node's nodes run with (None without a config), closed on the
    way out. A tool node naming an MCP server the config does not have is a
    :class:`ConfigError`; a tool its server does not list, or arguments its
    schema refuses, a warning (:mod:`agent_node.tool_check`)."""
    if config is None:
        yield None
        return
    from agent_node.node_equipment import Equipment
    from agent_node.tool_check import check_servers, warn_tools

    workflows = dict(zip((s.id for s in config.skills), skill_workflows(config), strict=True))
    check_servers(workflows, [server.name for server in config.mcp])
    equipment = Equipment.of(config)
    try:
        await warn_tools(equipment.tools, workflows)
        yield equipment
    finally:
        await equipment.aclose()
