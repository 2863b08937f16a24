"""A click group that imports a command's module only when it is invoked.

``agent-node --help`` lists every command with its one-line help from a
table, without importing a single command module (they import the engine,
pydantic, the stores, uvicorn…); ``agent-node run …`` imports ``run``'s
module alone. A test keeps the table's lines equal to the commands' own.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass

import click

__all__ = ["LazyCommand", "LazyGroup"]


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives (``module``, relative to the package of the
    group, and its ``attr``) and its one-line help, as ``--help`` shows it."""

    module: str
    attr: str
    summary: str


class LazyGroup(click.Group):
    def __init__(self, *args: object, lazy: Mapping[str, LazyCommand], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        known = self.commands.get(cmd_name)
        if known is not None or cmd_name not in self.lazy:
            return known
        entry = self.lazy[cmd_name]
        module = importlib.import_module(entry.module, package=__package__)
        command = getattr(module, entry.attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{entry.module}:{entry.attr} is not a click command")
        self.commands[cmd_name] = command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, self._short_help(ctx, name, limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def _short_help(self, ctx: click.Context, name: str, limit: int) -> str:
        entry = self.lazy.get(name)
        if entry is not None and name not in self.commands:
            return click.Command(name, help=entry.summary).get_short_help_str(limit)
        command = self.get_command(ctx, name)
        return command.get_short_help_str(limit) if command is not None else ""
