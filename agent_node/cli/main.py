"""The ``agent-node`` command line.

Each command lives in a small module of this package; this one only
assembles the group, from a table: a command's module is imported when the
command runs, so that ``agent-node --help`` imports none of them (see
:mod:`.lazy`). Commands import rich when they draw.
"""

from __future__ import annotations

import os
import signal
import sys

import click

from agent_node import __version__

from .lazy import LazyCommand, LazyGroup

__all__ = ["COMMANDS", "cli", "main"]

#: Every command: its module, its attribute, and its line in ``--help`` (the
#: first sentence of its docstring; a test keeps the two equal).
COMMANDS = {
    "batch": LazyCommand(
        ".batch",
        "batch",
        "Run TARGET once per line of INPUTS.jsonl (a JSON object: the input state).",
    ),
    "cancel": LazyCommand(
        ".operate", "cancel", "Cancel the execution ID (a no-op when it has ended)."
    ),
    "certs": LazyCommand(
        ".certs", "certs", "Make a development CA and node certificates for mutual TLS."
    ),
    "demo": LazyCommand(
        ".demo", "demo", "Run a network of three agents here and ask it one question."
    ),
    "doctor": LazyCommand(
        ".doctor", "doctor", "Check this setup: Python, store, certificates, model and port."
    ),
    "events": LazyCommand(
        ".executions", "events", "Print the event log of an execution, one JSON object per line."
    ),
    "executions": LazyCommand(".executions", "executions", "List executions, newest first."),
    "init": LazyCommand(
        ".init", "init", "Scaffold a new agent NAME: configuration, card, workflow, certificate."
    ),
    "inspect": LazyCommand(
        ".executions",
        "inspect",
        "Show an execution: status, waits, state and the timeline of its nodes.",
    ),
    "keys": LazyCommand(".keys", "keys", "Add, list and revoke the API keys callers may present."),
    "peers": LazyCommand(
        ".peers", "peers", "Fetch every configured peer's Agent Card and show what it offers."
    ),
    "prune": LazyCommand(
        ".prune",
        "prune",
        "Delete finished executions older than AGE, with their events, waits and push configs.",
    ),
    "resume": LazyCommand(
        ".workers",
        "resume",
        "Run every pending or running execution, and every one whose timer is due,"
        " until it ends or waits.",
    ),
    "retry": LazyCommand(
        ".operate",
        "retry",
        "Start a new execution of the failed or canceled execution ID: the same"
        " workflow version and input, in the same context (what the operator API's"
        " retry does).",
    ),
    "run": LazyCommand(
        ".executions",
        "run",
        "Run the workflow TARGET (file.yaml, file.py:attr or package.module:attr).",
    ),
    "serve": LazyCommand(
        ".serve", "serve", "Serve an agent node: its Agent Card, and A2A JSON-RPC at /a2a."
    ),
    "signal": LazyCommand(
        ".operate", "signal", "Deliver EVENT to the execution ID, which waits for it."
    ),
    "tools": LazyCommand(
        ".tools",
        "tools",
        "List the tools of every MCP server the configuration names, with their input schemas.",
    ),
    "tokens": LazyCommand(
        ".tokens", "tokens", "Issue development bearer JWTs that a node's auth.jwt accepts."
    ),
    "ui": LazyCommand(".ui", "ui", "Serve a web UI of the nodes: executions, delegations, inbox."),
    "upgrade": LazyCommand(
        ".upgrade",
        "upgrade",
        "Upgrade a store to this release's schema (one way: back it up first).",
    ),
    "worker": LazyCommand(
        ".workers", "worker", "Claim and run work of every execution until SIGTERM or SIGINT."
    ),
}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", prog_name="agent-node")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Durable agent workflows: run them, inspect them, keep workers running."""
    # Every command's log, one line a record whatever a record's text holds.
    from agent_node.telemetry.stderr_log import use_logs

    ctx.call_on_close(use_logs())


def main() -> None:
    # A process started with SIGINT ignored (`agent-node … &` from a script,
    # some supervisors) passes that on, and Python then leaves Ctrl-C ignored:
    # every command stops on SIGINT as it says, however it was launched.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # Like uvicorn and flask: `package.module:attr` references name modules of
    # the working directory, which a console script does not put on sys.path.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    cli(prog_name="agent-node")


if __name__ == "__main__":
    main()
