"""``agent-node doctor``: check what this setup needs, one line each.

With a configuration (``--config``, or ``agent-node.yaml`` here) it checks
that node's store, certificates, the models its workflows call and its port;
without one, the default store. The checks themselves are in :mod:`.checks`;
their advice is for this node's file and for `serve`, which runs it.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from agent_node.printable import printable

from .checks import (
    Check,
    check_certificates,
    check_models,
    check_port,
    check_python,
    check_store,
)
from .common import EXIT_FAILURE, handle_errors
from .invoked import command_name

__all__ = ["doctor", "print_checks"]

DEFAULT_CONFIG = "agent-node.yaml"
_MARKS = {
    "ok": ("ok", "green"),
    "skip": ("skip", "cyan"),
    "warn": ("warn", "yellow"),
    "fail": ("FAIL", "red"),
}


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
    from agent_node.config import load_config
    from agent_node.store import default_store_url

    path = config_path or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None)
    config = load_config(path) if path is not None else None
    checks = [check_python()]
    checks.append(check_store(store_url or (config and config.store) or default_store_url()))
    if path is None or config is None:
        checks.append(Check("model", "skip", "no configuration read, so no workflow calls a model"))
        click.echo(f"(no {DEFAULT_CONFIG} here: give --config to check a node's setup)")
    else:
        serve = f"{command_name()} serve --config {shlex.quote(path)}"
        checks.append(check_certificates(config, serve))
        checks += check_models(config, path)
        elsewhere = f"`{serve} --port PORT` (or listen.port in {path})"
        checks.append(check_port(config.listen.host, config.listen.port, elsewhere=elsewhere))
    if not print_checks(checks):
        raise click.exceptions.Exit(EXIT_FAILURE)


def print_checks(checks: list[Check], *, only_problems: bool = False) -> bool:
    """One line per check (with ``only_problems``, for those that warn or
    fail); whether none failed."""
    width = max(len(check.name) for check in checks)
    for check in checks:
        if only_problems and check.status in ("ok", "skip"):
            continue
        mark, color = _MARKS[check.status]
        said = printable(f"{check.name:<{width}}  {check.line}")  # a server's words, too
        click.echo(f"{click.style(f'{mark:<4}', fg=color)}  {said}")
    return all(check.status != "fail" for check in checks)
