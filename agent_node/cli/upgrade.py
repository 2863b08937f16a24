"""``agent-node upgrade``: bring a store to this release's schema, on purpose."""

from __future__ import annotations

import click

from .common import handle_errors, run_async, store_option

__all__ = ["upgrade"]


@click.command()
@click.option(
    "--force",
    is_flag=True,
    help="Upgrade even while other processes have the store open: an agent-node that"
    " watches its store's schema stops by itself (exit 75); an older one fails until it"
    " is stopped.",
)
@store_option
@handle_errors
def upgrade(force: bool, store_url: str) -> None:
    """Upgrade a store to this release's schema (one way: back it up first).

    Refused while other processes have the store open, naming them, unless
    --force; every other command that opens an older store upgrades it on
    the same terms. A store of this schema is left as it is; a newer one is
    refused (an older agent-node cannot use it).
    """
    from agent_node.store import store_from_url

    async def run() -> int | None:
        store = store_from_url(store_url, create=False, force_upgrade=force)
        await store.open()
        try:
            return await store.schema_version()
        finally:
            await store.close()

    version = run_async(run())
    if version is None:
        click.echo(f"the store {store_url} keeps no schema: nothing to upgrade")
        return
    click.echo(f"the store {store_url} has schema {version}, this agent-node's")
