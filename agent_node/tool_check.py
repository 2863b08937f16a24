"""The tools a node's workflows call, checked against its MCP servers at start.

A tool node's server, tool and arguments were looked at only when a task
reached the node: a workflow naming an MCP server the node's ``mcp:`` does
not configure, a tool its server does not have, or literal arguments its
input schema refuses, was served, and failed its first task. Now, as
``serve`` (and ``resume``/``worker`` with ``--config``) starts:

* :func:`check_servers`, no I/O: a tool node (or a model node's
  ``server/tool``) naming a server that ``mcp:`` does not configure is a
  :class:`~agent_node.errors.ConfigError` — the node refuses to start,
  naming the skill's workflow, the node and the server.
* :func:`warn_tools`, once the servers list their tools: a tool that its
  server (or, unnamed, no server) does not list, a model node's tool that
  its server (or, unnamed, no server) does not list, and literal arguments
  that the tool's ``input_schema`` refuses are
  warnings, one line each — a server may gain a tool later, so the node
  starts. Arguments built from the state (``{{ … }}``) are known only when
  a task runs: they are left out, and so is a ``required`` they fill. A
  server that does not list its tools within ``timeout`` is one warning,
  and what it serves goes unchecked.

Only the servers the workflows call are asked (a node whose workflows call
no tool spawns nothing). Apart from :mod:`.node_equipment` because that one
builds what nodes run with, and this reads workflows against it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from agent_node.errors import ConfigError
from agent_node.nodes.tool import ToolNode
from agent_node.nodes.tool_refs import ToolRef
from agent_node.printable import printable
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.values import expressions_in, templates_in

if TYPE_CHECKING:
    from agent_node.integrations.mcp import McpPool, ToolInfo

__all__ = ["CHECK_TIMEOUT", "check_servers", "warn_in_background", "warn_tools"]

log = logging.getLogger("agent_node.tool_check")
#: Seconds a server may take to start and list its tools for the check.
CHECK_TIMEOUT = 10.0
#: Tool names quoted in a warning, at most.
_NAMED = 12
#: Characters of a schema's complaint quoted in a warning, at most.
_LONGEST = 300


def check_servers(workflows: Mapping[str, CompiledWorkflow], servers: Collection[str]) -> None:
    """Refuse a tool node of ``workflows`` (by skill) naming a server not in
    ``servers`` (the node's ``mcp:``); raises :class:`ConfigError`."""
    named = [(s, w, n.id, n.server) for s, w, n in _tool_nodes(workflows)]
    named += [(s, w, node, ref.server) for s, w, node, ref in _model_tools(workflows)]
    for skill, workflow, node, server in named:
        if server is not None and server not in servers:
            configured = f"its mcp: names {', '.join(servers)}" if servers else "it has no mcp:"
            raise ConfigError(
                f"skill {skill!r}: {_named(workflow)}, node {node!r}: MCP server"
                f" {server!r} is not configured on this node ({configured})"
            )


async def warn_tools(
    pool: McpPool, workflows: Mapping[str, CompiledWorkflow], *, timeout: float = CHECK_TIMEOUT
) -> list[str]:
    """Log a warning for each tool call of ``workflows`` that the pool's
    servers say cannot work (see the module doc); returns them."""
    calls = list(_tool_nodes(workflows))
    offered = [ref for *_, ref in _model_tools(workflows)]
    wanted = {n.server for _, _, n in calls if n.server is not None}
    wanted |= {ref.server for ref in offered if ref.server is not None}
    if any(n.server is None for _, _, n in calls) or any(r.server is None for r in offered):
        wanted = set(pool.servers)
    wanted &= set(pool.servers)
    listed, warnings = await _listings(pool, sorted(wanted), timeout)
    for _, workflow, node in calls:
        warnings.extend(_check_call(workflow, node, listed, pool.servers))
    for _, workflow, model_node, ref in _model_tools(workflows):
        warnings.extend(_check_model_tool(workflow, model_node, ref, listed, pool.servers))
    # Tool names, schemas and errors are the servers' words: no line feed or
    # escape of theirs reaches a log line or a terminal.
    warnings = [printable(w) for w in warnings]
    for warning in warnings:
        log.warning("%s", warning)
    return warnings


async def _listings(
    pool: McpPool, servers: list[str], timeout: float
) -> tuple[dict[str, dict[str, ToolInfo]], list[str]]:
    """The tools of ``servers`` by name, and a warning per server not listed in time."""

    async def one(server: str) -> dict[str, ToolInfo]:
        async with asyncio.timeout(timeout):
            tools = (await pool.list_tools(server))[server]
        return {info.name: info for info in tools}

    found = await asyncio.gather(*(one(s) for s in servers), return_exceptions=True)
    listed: dict[str, dict[str, ToolInfo]] = {}
    warnings: list[str] = []
    for server, tools in zip(servers, found, strict=True):
        if isinstance(tools, dict):
            listed[server] = tools
            continue
        if not isinstance(tools, Exception):
            raise tools  # cancellation and other control flow
        why = f"no answer within {timeout:g} s" if isinstance(tools, TimeoutError) else str(tools)
        warnings.append(
            f"MCP server {server!r} did not list its tools at start ({why}): the tool nodes"
            " calling it are not checked"
        )
    return listed, warnings


def _check_call(
    workflow: CompiledWorkflow,
    node: ToolNode,
    listed: Mapping[str, Mapping[str, ToolInfo]],
    servers: Collection[str],
) -> Iterator[str]:
    """What cannot work in one tool node's call."""
    where = f"{_named(workflow)}, node {node.id!r}"
    if node.server is not None:
        tools = listed.get(node.server)
        if tools is None:  # not reached: said once for the server
            return
        if node.tool not in tools:
            yield (
                f"{where}: MCP server {node.server!r} lists no tool {node.tool!r}"
                f" (it lists {_names(tools)}); a task reaching the node fails unless it gains it"
            )
            return
        server = node.server
    else:
        owners = [s for s, tools in listed.items() if node.tool in tools]
        if not owners:
            if len(listed) == len(servers):  # every server answered
                listing = f"servers: {_names(servers)}"
                yield f"{where}: no MCP server lists tool {node.tool!r} ({listing})"
            return
        if len(owners) > 1:
            yield f"{where}: tool {node.tool!r} is listed by {_names(owners)}: name its server"
            return
        server = owners[0]
    problem = _refused(node.arguments, listed[server][node.tool].input_schema)
    if problem is not None:
        schema = f"the input schema of {server}/{node.tool}"
        yield f"{where}: its arguments do not fit {schema}: {problem}"


def _check_model_tool(
    workflow: CompiledWorkflow,
    node: str,
    ref: ToolRef,
    listed: Mapping[str, Mapping[str, ToolInfo]],
    servers: Collection[str],
) -> Iterator[str]:
    """What cannot work in one tool a model node offers its model."""
    where = f"{_named(workflow)}, node {node!r}"
    if ref.server is not None:
        tools = listed.get(ref.server)
        if tools is not None and ref.tool not in tools:
            lacking = f"MCP server {ref.server!r} lists no tool {ref.tool!r}"
            yield f"{where}: {lacking}, which the model may call"
        return
    owners = [s for s, tools in listed.items() if ref.tool in tools]
    if len(owners) > 1:
        named = ", ".join(f"'{s}/{ref.tool}'" for s in sorted(owners))
        yield f"{where}: tool {ref.tool!r} is listed by {_names(owners)}: name its server ({named})"
    elif not owners and len(listed) == len(servers):  # else it may be the silent one's
        yield f"{where}: no MCP server lists tool {ref.tool!r}, which the model may call"


def _refused(arguments: Mapping[str, Any], schema: Mapping[str, Any]) -> str | None:
    """Why ``schema`` refuses the literal ``arguments`` (those built from the
    state left out), or None; a schema that cannot be used is not checked."""
    from jsonschema import exceptions, validators

    literal = {k: v for k, v in arguments.items() if not _templated(v, k)}
    missing = [k for k in schema.get("required", ()) if isinstance(k, str) and k not in arguments]
    if missing:
        return f"{', '.join(map(repr, missing))} required, not given"
    try:
        readable = dict(schema)
        validator_class = validators.validator_for(readable)
        validator_class.check_schema(readable)
        errors = [
            e
            for e in validator_class(readable).iter_errors(literal)
            if not (e.validator == "required" and not e.path)  # filled from the state
        ]
    except Exception:  # a schema we cannot read (a remote $ref): its tool checks it
        return None
    error = exceptions.best_match(errors)
    if error is None:
        return None
    at = "/".join(str(p) for p in error.absolute_path)
    said = str(error.message)
    if len(said) > _LONGEST:  # a long enum, a large value
        said = said[:_LONGEST] + "…"
    return f"{said} (at {at})" if at else said


def _templated(value: Any, field: str) -> bool:
    """Whether ``value`` is built from the state when a task runs."""
    return bool(expressions_in(value, field) or templates_in(value, field))


def _tool_nodes(
    workflows: Mapping[str, CompiledWorkflow],
) -> Iterator[tuple[str, CompiledWorkflow, ToolNode]]:
    for skill, workflow in workflows.items():
        for node in workflow.ir.nodes.values():
            if isinstance(node, ToolNode):
                yield skill, workflow, node


def _model_tools(
    workflows: Mapping[str, CompiledWorkflow],
) -> Iterator[tuple[str, CompiledWorkflow, str, ToolRef]]:
    """``(skill, workflow, node, tool)`` of the tools model nodes may call."""
    for skill, workflow in workflows.items():
        for node in workflow.ir.nodes.values():
            for tool in getattr(node, "tools", None) or ():
                if node.type == "model" and isinstance(tool, str):
                    yield skill, workflow, node.id, ToolRef.parse(tool)


def _named(workflow: CompiledWorkflow) -> str:
    where = f" ({workflow.ref})" if workflow.ref else ""
    return f"workflow {workflow.key}{where}"


def _names(names: Collection[str]) -> str:
    shown = sorted(names)
    more = f", … ({len(shown) - _NAMED} more)" if len(shown) > _NAMED else ""
    return (", ".join(shown[:_NAMED]) or "none") + more


def warn_in_background(
    pool: McpPool, workflows: Mapping[str, CompiledWorkflow]
) -> asyncio.Task[None]:
    """:func:`warn_tools` in a task of its own: a node is ready without
    waiting for its servers (its warnings follow shortly)."""

    async def run() -> None:
        try:
            await warn_tools(pool, workflows)
        except Exception:  # a check must not take the node down
            log.exception("checking the tools the workflows call failed")

    return asyncio.create_task(run(), name="agent-node tool check")
