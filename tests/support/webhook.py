"""A real HTTP webhook receiver for push notification tests.

It runs uvicorn in the test's own event loop on a free loopback port and
records every POST it gets. ``fail_with`` queues status codes to answer with
before it starts answering 200. Given a server SSL context it serves HTTPS
(through the node's own transport, so each push records the identity of the
client certificate it came with).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agent_node.scope import caller_of
from agent_node.transport import uvicorn_config


@dataclass
class Push:
    path: str
    headers: dict[str, str]
    body: Any
    #: The status code it was answered with.
    status: int
    #: The identity of the client certificate (HTTPS receivers only).
    caller: str | None = None


@dataclass
class Receiver:
    url: str
    pushes: list[Push] = field(default_factory=list)
    fail_with: list[int] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def accepted(self) -> list[Push]:
        return [p for p in self.pushes if 200 <= p.status < 300]

    async def wait_for(
        self, condition: Callable[[list[Push]], bool], what: str, timeout: float = 20
    ) -> None:
        """Wait until ``condition(accepted pushes)`` holds."""

        async def until() -> None:
            while not condition(self.accepted()):
                self._arrived.clear()
                await self._arrived.wait()

        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; got {self.pushes}") from None

    async def _receive(self, request: Request) -> Response:
        raw = await request.body()
        status = self.fail_with.pop(0) if self.fail_with else 200
        push = Push(
            request.url.path,
            dict(request.headers),
            json.loads(raw),
            status,
            caller_of(request.scope),
        )
        self.pushes.append(push)
        self._arrived.set()
        return Response(status_code=status)


@asynccontextmanager
async def receiving(tls: ssl.SSLContext | None = None) -> AsyncIterator[Receiver]:
    """A receiver listening on ``127.0.0.1`` at ``<url>/<any path>``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    scheme = "https" if tls else "http"
    receiver = Receiver(f"{scheme}://127.0.0.1:{sock.getsockname()[1]}")
    app = Starlette(routes=[Route("/{path:path}", receiver._receive, methods=["POST"])])
    server = uvicorn.Server(uvicorn_config(app, tls))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the webhook receiver did not start"
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
        sock.close()
