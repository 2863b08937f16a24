"""``agent-node tools``: every configured MCP server's tools and their input schemas.

It opens each server of the configuration's ``mcp:`` exactly as a node does
(:class:`~agent_node.integrations.mcp.McpPool`: stdio servers are started,
streamable-HTTP servers connected to, all at once), lists their tools and
closes them again. A server that cannot be reached is shown with the
reason, and the command exits 1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import click

from agent_node.config import NodeConfig, load_config

from .common import EXIT_FAILURE, handle_errors, run_async

if TYPE_CHECKING:
    from rich.console import RenderableType

    from agent_node.integrations.mcp import ToolInfo

__all__ = ["tools"]

DEFAULT_CONFIG = "agent-node.yaml"
#: What one server answered: its tools, or why it could not be asked.
Listing: TypeAlias = "list[ToolInfo] | str"


@click.command()
@click.option(
    "--config",
    "config_path",
    default=DEFAULT_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The node's configuration file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the listings as JSON.")
@handle_errors
def tools(config_path: str, as_json: bool) -> None:
    """List the tools of every MCP server the configuration names, with their
    input schemas. Exits 1 when a server cannot be reached."""
    config = load_config(config_path)
    if not config.mcp:
        click.echo(f"no MCP servers configured in {config_path}")
        return
    listings = run_async(_listings(config))
    if as_json:
        from agent_node.printable import printable_json

        click.echo(printable_json(_as_json(listings), indent=2))
    else:
        from .render import make_console

        make_console().print(_table(listings))
    if any(isinstance(listing, str) for listing in listings.values()):
        raise click.exceptions.Exit(EXIT_FAILURE)


async def _listings(config: NodeConfig) -> dict[str, Listing]:
    from agent_node.errors import NodeFailed
    from agent_node.integrations.mcp import McpPool

    async with McpPool.from_config(config) as pool:
        found = await asyncio.gather(
            *(pool.list_tools(name) for name in pool.servers), return_exceptions=True
        )
    result: dict[str, Listing] = {}
    for name, listing in zip(pool.servers, found, strict=True):
        if isinstance(listing, NodeFailed):
            result[name] = str(listing)
        elif isinstance(listing, BaseException):
            raise listing
        else:
            result[name] = listing[name]
    return result


def _as_json(listings: Mapping[str, Listing]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for server, listing in listings.items():
        if isinstance(listing, str):
            shown[server] = {"error": listing}
            continue
        shown[server] = {
            "tools": [
                {
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": tool.input_schema,
                    "output_schema": tool.output_schema,
                }
                for tool in listing
            ]
        }
    return shown


def _table(listings: Mapping[str, Listing]) -> RenderableType:
    from rich.table import Table
    from rich.text import Text

    from .render import plain

    table = Table()
    for column in ("server", "tool", "description", "arguments"):
        table.add_column(column, no_wrap=column in ("server", "tool"), overflow="fold")
    for server, listing in listings.items():
        if isinstance(listing, str):
            table.add_row(plain(server), Text("✗ unreachable", style="red"), plain(listing))
            continue
        if not listing:
            table.add_row(plain(server), Text("(no tools)", style="dim"))
        for tool in listing:
            description = (tool.description or "").strip().splitlines()
            table.add_row(
                plain(server),
                plain(tool.name, "bold"),
                plain(description[0] if description else ""),
                plain(_arguments(tool.input_schema), lines=True),
            )
    return table


def _arguments(schema: Mapping[str, Any]) -> str:
    """An input schema in one line per argument: ``name: type`` (``*`` = required)."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        return "(none)"
    required = set(schema.get("required") or [])
    lines = []
    for name, prop in properties.items():
        kind = _type_of(prop) if isinstance(prop, Mapping) else "any"
        default = ""
        if isinstance(prop, Mapping) and "default" in prop:
            default = f" = {json.dumps(prop['default'])}"
        lines.append(f"{name}{'*' if name in required else ''}: {kind}{default}")
    return "\n".join(lines)


def _type_of(prop: Mapping[str, Any]) -> str:
    kind = prop.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if isinstance(kind, str):
        items = prop.get("items")
        if kind == "array" and isinstance(items, Mapping):
            return f"array of {_type_of(items)}"
        return kind
    for key in ("anyOf", "oneOf"):
        options = prop.get(key)
        if isinstance(options, list):
            return " | ".join(_type_of(o) for o in options if isinstance(o, Mapping))
    return "any"
