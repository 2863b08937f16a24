"""A small MCP server the tool-node tests and the tool bench start.

Run as ``python tests/support/mcp_server.py`` it serves stdio; with
``--http PORT`` it serves streamable HTTP on ``127.0.0.1:PORT/mcp``;
``--prefix P`` names every tool ``P<name>`` (two servers with distinct
tools). Tools:

* ``add(a, b)`` — the sum, as text and as structured content ``{"result": …}``;
* ``echo(text)`` — the text back (text content only);
* ``forecast(city, days)`` — structured content only (a dict);
* ``fail(message)`` — an error result (``is_error``) with ``message``;
* ``pid()`` — the server's process id (tests kill it);
* ``sleep(seconds)`` — answers after a delay (concurrency checks);
* ``hang()`` — never answers (deadlines);
* ``wedge(seconds, until)`` — blocks the server's whole event loop for
  ``seconds`` (600 by default) or until the file ``until`` exists: it
  answers nothing meanwhile, not even ``ping`` (a wedged server);
* ``big(kib)`` — ``kib`` KiB of text (size caps);
* ``picture()`` — an image block, an audio block, a blob resource and a text;
* ``seen()`` — the request's ``_meta`` and ``X-Test`` header, the server's
  working directory and ``$MCP_TEST_VALUE``.

``--start-delay S`` waits ``S`` seconds before serving (a slow start).
"""

from __future__ import annotations

import argparse
import base64
import os
import time
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import (
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    TextContent,
)

#: The bytes of :func:`picture`'s image (a PNG header and some padding).
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


def forecast(city: str, days: int = 1) -> dict[str, Any]:
    """A made-up weather forecast."""
    return {"city": city, "days": [{"day": d + 1, "high": 20 + d} for d in range(days)]}


def fail(message: str = "it failed") -> CallToolResult:
    """Always an error result."""
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def broken() -> str:
    """Raises inside the tool (the SDK turns it into an error result)."""
    raise ToolError("the tool raised")


def pid() -> int:
    """This server's process id."""
    return os.getpid()


async def sleep(seconds: float) -> float:
    """Answer after ``seconds``."""
    await anyio.sleep(seconds)
    return seconds


async def hang() -> str:
    """Never answers."""
    await anyio.sleep_forever()
    return "never"


async def wedge(seconds: float = 600.0, until: str = "") -> str:
    """Blocks the whole server for ``seconds``, or until the file ``until``
    exists: sleeps that never yield to its event loop."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (until and os.path.exists(until)):
        time.sleep(0.01)  # not awaited: the point is that nothing else runs meanwhile
    return "unwedged"


def big(kib: int) -> str:
    """``kib`` KiB of text."""
    return "y" * (kib * 1024)


def picture() -> CallToolResult:
    """An image, a sound, a blob resource and a caption."""
    png = base64.b64encode(PNG).decode()
    wav = base64.b64encode(b"RIFF0000WAVE").decode()
    blob = BlobResourceContents(uri="file:///charts/q3.pdf", mime_type="application/pdf", blob=png)
    return CallToolResult(
        content=[
            ImageContent(type="image", data=png, mime_type="image/png"),
            AudioContent(type="audio", data=wav, mime_type="audio/wav"),
            EmbeddedResource(type="resource", resource=blob),
            TextContent(type="text", text="a chart"),
        ]
    )


def build(prefix: str = "") -> MCPServer:
    server = MCPServer("agent-node-test-tools", log_level="WARNING")
    for tool in (add, forecast, fail, broken, pid, sleep, seen, hang, wedge, big, picture):
        server.add_tool(tool, name=prefix + tool.__name__)
    server.add_tool(echo, name=prefix + "echo", structured_output=False)
    return server


def seen(ctx: Context) -> dict[str, Any]:
    """What the request carried — its ``_meta`` and (over HTTP) the ``X-Test``
    header — and where this server runs: its directory and ``$MCP_TEST_VALUE``."""
    return {
        "meta": dict(ctx.request_context.meta or {}),
        "x_test": (ctx.headers or {}).get("x-test"),
        "cwd": os.getcwd(),
        "env": os.environ.get("MCP_TEST_VALUE"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, default=None, metavar="PORT")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--start-delay", type=float, default=0.0)
    args = parser.parse_args()
    time.sleep(args.start_delay)
    server = build(args.prefix)
    if args.http is None:
        server.run()
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.http)


if __name__ == "__main__":
    main()
