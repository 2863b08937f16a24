"""``agent-node keys``: the API keys callers may present (``auth.api_keys``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from agent_node.errors import UsageError

from .common import handle_errors

__all__ = ["keys"]

_CONFIG = click.option(
    "--config",
    "config_path",
    default="agent-node.yaml",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The node's configuration (its auth.api_keys names the key file).",
)


@click.group()
def keys() -> None:
    """Add, list and revoke the API keys callers may present."""


def _key_file(config_path: Path) -> Path:
    from agent_node.config import load_config

    config = load_config(config_path)
    if config.auth.api_keys is None:
        raise UsageError(
            f"{config_path} accepts no API keys: add `auth: {{api_keys: {{}}}}` to it"
            " (the keys then live in api-keys.yaml beside it)"
        )
    return config.path(config.auth.api_keys.file)


@keys.command("add")
@click.argument("name")
@click.option("--identity", default=None, help="Who the key stands for [default: NAME].")
@click.option("--as-header", is_flag=True, help="Print a header line (curl -H @FILE).")
@_CONFIG
@handle_errors
def add(name: str, identity: str | None, as_header: bool, config_path: Path) -> None:
    """Make a key for NAME and print it, once: only its hash is kept.

    The node reads the key file again when it changes: no restart needed.
    """
    from agent_node.config import load_config
    from agent_node.security.api_keys import add_key

    path = _key_file(config_path)
    key = add_key(path, name, identity)
    settings = load_config(config_path).auth.api_keys
    header = settings.header if settings is not None else "X-API-Key"
    click.echo(f"{header}: {key}" if as_header else key)
    click.echo(
        f"key {name!r} for {identity or name} added to {path}; it is shown only now",
        err=True,
    )


@keys.command("list")
@_CONFIG
@handle_errors
def list_keys(config_path: Path) -> None:
    """List the keys: name, identity, when made (never the keys)."""
    from agent_node.security.api_keys import read_keys

    for key in read_keys(_key_file(config_path)):
        made = datetime.fromtimestamp(key.created, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        click.echo(f"{key.name}\t{key.identity}\t{made}")


@keys.command("revoke")
@click.argument("name")
@_CONFIG
@handle_errors
def revoke(name: str, config_path: Path) -> None:
    """Revoke the key NAME: callers presenting it are refused from now on."""
    from agent_node.security.api_keys import revoke_key

    path = _key_file(config_path)
    if not revoke_key(path, name):
        raise UsageError(f"no key named {name!r} in {path}")
    click.echo(f"revoked {name!r}")
