"""``agent-node doctor``: check what this setup needs, one line each.

With a configuration (``--config``, or ``agent-node.yaml`` here) it checks
that node's store, certificates, model and port; without one, the default
store and model. The checks themselves are in :mod:`.checks`.
"""

from __future__ import annotations

from pathlib import Path

import click

from .checks import (
    Check,
    check_certificates,
    check_model,
    check_port,
    check_python,
    check_store,
)
from .common import EXIT_FAILURE, handle_errors

__all__ = ["doctor", "print_checks"]

DEFAULT_CONFIG = "agent-node.yaml"
_MARKS = {"ok": ("ok", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "red")}


@click.command()
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help=f"The node's configuration file [default: {DEFAULT_CONFIG} when there is one].",
)
@click.option(
    "--store",
    "store_url",
    default=None,
    metavar="URL",
    help="The store to check [default: the file's, else $AGENT_NODE_STORE, else SQLite].",
)
@handle_errors
def doctor(config_path: str | None, store_url: str | None) -> None:
    """Check this setup: Python, store, certificates, model and port.

    One line each: ok, or what to do. Exits 1 when a check fails.
    """
    from agent_node.config import ModelSettings, load_config
    from agent_node.store import default_store_url

    path = config_path or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None)
    config = load_config(path) if path is not None else None
    checks = [check_python()]
    checks.append(check_store(store_url or (config and config.store) or default_store_url()))
    if config is not None:
        checks.append(check_certificates(config))
    models = config.models if config is not None else ModelSettings()
    checks.append(check_model(models.default, models.api_base))
    if config is not None:
        checks.append(check_port(config.listen.host, config.listen.port))
    if path is None:
        click.echo(f"(no {DEFAULT_CONFIG} here: give --config to check a node's setup)")
    if not print_checks(checks):
        raise click.exceptions.Exit(EXIT_FAILURE)


def print_checks(checks: list[Check], *, only_problems: bool = False) -> bool:
    """One line per check (with ``only_problems``, for those that did not
    pass); whether none failed."""
    width = max(len(check.name) for check in checks)
    for check in checks:
        if only_problems and check.status == "ok":
            continue
        mark, color = _MARKS[check.status]
        click.echo(f"{click.style(f'{mark:<4}', fg=color)}  {check.name:<{width}}  {check.line}")
    return all(check.status != "fail" for check in checks)
