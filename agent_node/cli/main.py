"""The ``agent-node`` command line.

Each command lives in a small module of this package; this one only
assembles the group. Commands import rich when they draw, so that
``agent-node --help`` stays fast.
"""

from __future__ import annotations

import os
import sys

import click

from agent_node import __version__

from .batch import batch
from .certs import certs
from .demo import demo
from .executions import cancel, events, executions, inspect, run, signal
from .init import init
from .peers import peers
from .serve import serve
from .tools import tools
from .workers import resume, worker

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="agent-node")
def cli() -> None:
    """Durable agent workflows: run them, inspect them, keep workers running."""


for command in (
    demo,
    init,
    run,
    executions,
    inspect,
    events,
    signal,
    cancel,
    resume,
    worker,
    batch,
    serve,
    peers,
    tools,
    certs,
):
    cli.add_command(command)


def main() -> None:
    # Like uvicorn and flask: `package.module:attr` references name modules of
    # the working directory, which a console script does not put on sys.path.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    cli(prog_name="agent-node")


if __name__ == "__main__":
    main()
