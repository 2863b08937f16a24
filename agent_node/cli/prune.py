"""``agent-node prune``: delete finished executions older than a period."""

from __future__ import annotations

import time

import click

from agent_node.errors import UsageError

from .common import handle_errors, open_store, run_async, store_option

__all__ = ["prune"]


@click.command()
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="AGE",
    help="Finished (completed, failed, canceled) and last changed longer ago than this:"
    " 30d, 12h, 90m (the unit is required).",
)
@click.option(
    "--batch",
    default=500,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Executions deleted per transaction (a serving node keeps serving between them).",
)
@store_option
@handle_errors
def prune(older_than: str, batch: int, store_url: str) -> None:
    """Delete finished executions older than AGE, with their events, waits and push configs.

    Executions whose caller is still owed a push notification, or whose
    delegation's peer task is still being canceled, are kept whatever their
    age. Safe while nodes serve the store: it deletes in small batches, and
    on PostgreSQL one process prunes at a time. A node prunes by itself with
    'retention:' in its configuration.
    """
    from agent_node.store.retention import prune_all
    from agent_node.workflow.durations import parse_age

    try:
        age = parse_age(older_than)
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from None

    async def run() -> int:
        async with open_store(store_url) as store:
            return await prune_all(store, time.time() - age, batch=batch, pause=0.01)

    pruned = run_async(run())
    click.echo(
        f"pruned {pruned} finished execution{'s' if pruned != 1 else ''} older than {older_than}"
    )
