"""Commands that act on one execution of a store: signal, cancel, retry.

They need no running engine: they change the store, and the process that
runs its work (a served node, a worker, ``resume``) carries on. Given the
node's ``--config``, they know the workflow versions its skills register,
an old one kept to finish its executions among them.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

import click

from agent_node.printable import printable
from agent_node.store import ExecutionRecord, Store, default_store_url

from .common import handle_errors, open_store, parse_json, run_async, started_runtime, store_option
from .configured import config_option, node_config, registry, skill_workflows, store_of
from .executions import get_execution
from .invoked import command_name

if TYPE_CHECKING:
    from agent_node.config import NodeConfig
    from agent_node.engine.control import Control

__all__ = ["cancel", "retry", "signal"]

#: Who a retry from the command line was asked by (``metadata.retried_by``).
_COMMAND_LINE = "agent-node retry (command line)"


@click.command()
@click.argument("execution_id", metavar="ID")
@click.argument("event")
@click.option(
    "--data", "data_text", metavar="JSON", help="The event's payload: JSON or @file.json."
)
@config_option
@store_option
@handle_errors
def signal(
    execution_id: str, event: str, data_text: str | None, config_path: str | None, store_url: str
) -> None:
    """Deliver EVENT to the execution ID, which waits for it."""
    payload = parse_json(data_text, "--data") if data_text is not None else None
    config = node_config(config_path)
    url = store_of(config, store_url)
    record = run_async(_signal(url, config, execution_id, event, payload))
    click.echo(printable(f"delivered {event!r} to {execution_id}; it is {record.status}"))
    if record.status in {"pending", "running"}:
        click.echo(_who_continues(record, url, config_path))


def _who_continues(record: ExecutionRecord, url: str, config_path: str | None) -> str:
    """Which process carries a pending execution on: for one a served node
    started (an A2A task), the node; ``resume`` only with the node's
    config (its nodes may need its mcp: servers or peers)."""
    program = command_name()
    store = "" if url == default_store_url() else f" --store {shlex.quote(url)}"
    if config_path is not None:
        config = shlex.quote(config_path)
        return (
            f"a running `{program} serve --config {config}` continues it,"
            f" or: {program} resume --config {config}"
        )
    if record.context_id is not None:
        return (
            f"the node that serves this store continues it (`{program} serve --config FILE`"
            f" when it is not running), or: {program} resume --config FILE{store}"
        )
    return f"a running `{program} worker` continues it, or: {program} resume{store}"


async def _signal(
    url: str, config: NodeConfig | None, execution_id: str, event: str, payload: Any
) -> ExecutionRecord:
    async with open_store(url) as store:
        await _control(store, config).signal(execution_id, event, payload)
        return await get_execution(store, execution_id)


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option(
    "--reason",
    default="cancelled from the command line",
    show_default=True,
    help="Why, recorded in the execution's events.",
)
@store_option
@handle_errors
def cancel(execution_id: str, reason: str, store_url: str) -> None:
    """Cancel the execution ID (a no-op when it has ended)."""
    cancelled, record = run_async(_cancel(store_url, execution_id, reason))
    if cancelled:
        click.echo(f"cancelled {printable(execution_id)}")
    else:
        said = f"{execution_id} had already ended ({record.status}); nothing to cancel"
        click.echo(printable(said))


async def _cancel(url: str, execution_id: str, reason: str) -> tuple[bool, ExecutionRecord]:
    async with open_store(url) as store:
        cancelled = await _control(store, None).cancel(execution_id, reason)
        return cancelled, await get_execution(store, execution_id)


@click.command()
@click.argument("execution_id", metavar="ID")
@config_option
@store_option
@handle_errors
def retry(execution_id: str, config_path: str | None, store_url: str) -> None:
    """Start a new execution of the failed or canceled execution ID: the same
    workflow version and input, in the same context (what the operator API's
    retry does)."""
    config = node_config(config_path)
    url = store_of(config, store_url)
    record, retried_as = run_async(_retry(url, config, execution_id))
    click.echo(printable(f"retried {execution_id} as {retried_as}"))
    click.echo(_who_continues(record, url, config_path))
    store = "" if url == default_store_url() else f" --store {shlex.quote(url)}"
    click.echo(f"follow it with: {command_name()} inspect {retried_as}{store}")


async def _retry(
    url: str, config: NodeConfig | None, execution_id: str
) -> tuple[ExecutionRecord, str]:
    from agent_node.a2a.server.ops_actions import retry_execution

    async with started_runtime(url, create=False) as runtime:
        for workflow in skill_workflows(config):
            runtime.workflows.add(workflow)
        record = await get_execution(runtime.store, execution_id)
        retried_as = await retry_execution(runtime, record, _COMMAND_LINE, run_here=False)
        return record, retried_as


def _control(store: Store, config: NodeConfig | None) -> Control:
    from agent_node.engine.control import Control
    from agent_node.nodes import default_executors

    return Control(store, registry(config), default_executors())
