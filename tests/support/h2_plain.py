"""An ASGI app served by the node's HTTP/2 connection (AsgiConnection) on
plain TCP, without uvicorn or TLS in front: for tests that drive the
connection frame by frame."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from agent_node.http2.asgi import AsgiConnection
from agent_node.scope import WHEN_GONE, WhenGone

__all__ = ["PlainHttp2", "plain_http2"]


@dataclass
class PlainHttp2:
    port: int
    connections: set[Any] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


@asynccontextmanager
async def plain_http2(
    app: Any,
    *,
    max_body_bytes: int = 1 << 20,
    keep_alive: float = 5,
    read_timeout: float = 20,
) -> AsyncIterator[PlainHttp2]:
    """``app`` served on ``127.0.0.1`` (its port, open connections and
    running streams); at the end, what is still open is closed and awaited."""
    found = PlainHttp2(0)

    def connection() -> AsgiConnection:
        return AsgiConnection(
            app,
            connections=found.connections,
            tasks=found.tasks,
            stamp=lambda scope: scope.setdefault(WHEN_GONE, WhenGone()),
            max_headers=100,
            max_header_bytes=16384,
            max_body_bytes=max_body_bytes,
            keep_alive=keep_alive,
            read_timeout=read_timeout,
        )

    server = await asyncio.get_running_loop().create_server(connection, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    try:
        yield found
    finally:
        server.close()
        for open_one in list(found.connections):
            open_one.close()
        await asyncio.gather(*found.tasks, return_exceptions=True)
