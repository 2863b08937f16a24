"""An ASGI app served by the node's own transport (uvicorn) on a free loopback port."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from agent_node.config import Limits
from agent_node.transport import uvicorn_config

__all__ = ["served"]


@asynccontextmanager
async def served(
    app: Any, tls: ssl.SSLContext | None, *, http2: bool = True, limits: Limits | None = None
) -> AsyncIterator[str]:
    """``app`` served by the node's transport on ``127.0.0.1`` over ``tls``
    (HTTP/2 offered unless not ``http2``) within ``limits``; its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn_config(app, tls, limits, http2=http2))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()
