"""MCP: how a session reaches its server — stdio or streamable HTTP.

A server configured with a ``command`` is a child process spoken to over
its stdin and stdout (its stderr goes to the pool's ``errlog``, else to
ours); one configured with a ``url`` is reached over streamable HTTP by an
``httpx2`` client carrying the configured headers. The transport's read stream is watched
(:class:`Watched`), so a session learns that its server is gone before it
sends to it. Apart from the session because it is the one place that knows
the SDK's transports; they are imported on first use.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import anyio

from agent_node.config import McpServerConfig
from agent_node.errors import NodeFailed

if TYPE_CHECKING:
    from mcp.client import Transport
    from mcp.shared.message import SessionMessage

__all__ = ["Watched", "sse_cap", "transport"]


def transport(config: McpServerConfig, cwd: Path | None, errlog: TextIO | None) -> Transport:
    """The transport to ``config``'s server: stdio (``command``) or streamable HTTP."""
    if config.command is not None:
        from mcp.client.stdio import StdioServerParameters, stdio_client

        command, *args = config.command
        params = StdioServerParameters(
            command=command, args=args, env=dict(config.env) or None, cwd=cwd
        )
        return stdio_client(params, errlog=errlog or _stderr())
    return _http_transport(str(config.url), dict(config.headers), sse_cap(config.max_bytes))


def sse_cap(max_bytes: int) -> int:
    """The most bytes read of one streamable-HTTP answer (an SSE event):
    ``max_bytes`` of content may come JSON-escaped, and with its structured
    form beside it (a string result often is), so twice that and a margin;
    answers between the two are read, then refused by the pool's size check."""
    return 2 * max_bytes + 64 * 1024


def _http_transport(url: str, headers: dict[str, str], cap: int) -> Transport:
    """Streamable HTTP through an ``httpx2`` client carrying ``headers``,
    reading at most ``cap`` bytes of one SSE event (the SDK's default: 1 MiB)."""
    from contextlib import asynccontextmanager

    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    @asynccontextmanager
    async def connect() -> AsyncIterator[tuple[Any, Any]]:
        # The SDK's own timeouts: 30 s to connect or write, 300 s to read a stream.
        timeout = httpx2.Timeout(30.0, read=300.0)
        async with httpx2.AsyncClient(headers=headers, timeout=timeout) as client:
            connecting = streamable_http_client(url, http_client=client, max_sse_event_size=cap)
            async with connecting as streams:
                yield streams

    return connect()


def _stderr() -> TextIO:
    """Where a stdio server's stderr goes: ours, or the process's when ours is
    no file (a test runner capturing it); the child needs a descriptor."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None and stream.fileno() >= 0:
                return stream
        except (AttributeError, OSError, ValueError):
            continue
    raise NodeFailed("no stderr to give an MCP server")


class _Receiving(Protocol):
    async def receive(self) -> SessionMessage | Exception: ...

    async def aclose(self) -> None: ...


class Watched:
    """A transport's read stream that calls ``on_end`` when the transport
    ends, so the pool sees a dead server before sending to it."""

    def __init__(self, stream: _Receiving, on_end: Callable[[], None]) -> None:
        self._stream = stream
        self._on_end = on_end

    @property
    def last_context(self) -> contextvars.Context | None:
        # The dispatcher reads it (duck-typed) to run handlers in the sender's context.
        context = getattr(self._stream, "last_context", None)
        return context if isinstance(context, contextvars.Context) else None

    async def receive(self) -> SessionMessage | Exception:
        try:
            return await self._stream.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._stream.aclose()

    def __aiter__(self) -> Watched:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Watched:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
