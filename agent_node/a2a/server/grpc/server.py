"""The node's gRPC server: :mod:`.http2` on a port of its own, over the node's TLS.

:func:`bind` binds the port before the card is built (port 0 picks a free
one, which the card then lists); :func:`serve_service` starts serving the
:class:`~.service.A2AService`; the node stops it with :func:`stop` when it
stops (SIGTERM, SIGINT), letting calls in flight finish for the same grace
as the HTTP server's.

TLS is the HTTPS side's: the node's certificate and key, a client
certificate asked for and verified against the trust bundle when one is
shown (one of another CA fails the handshake), ALPN ``h2``; new files are
taken as the HTTPS side takes them (:mod:`agent_node.security.tls_reload`).
A client without one is let in, as on HTTPS, and its calls are judged by
the node's ``auth:`` — credentials in metadata, or ``UNAUTHENTICATED``
saying a certificate is needed.

Limits: a request message over ``limits.max_body_bytes`` is refused
(``RESOURCE_EXHAUSTED``) before it is parsed; metadata over
``limits.max_header_bytes`` likewise. A TLS handshake must end within
``limits.read_timeout``, and the port's connections count toward
``limits.max_connections`` with the HTTP port's (one budget of
descriptors, :mod:`agent_node.connection_cap`): past it the connection
idle longest, on either port, gives its place — never one with a call in
flight. The port is never shared (``SO_REUSEPORT`` off): a second node on
it fails to start, as on HTTP.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
from collections.abc import Mapping
from pathlib import Path

from agent_node.a2a.server.grpc.calls import Method
from agent_node.a2a.server.grpc.connection import Connection
from agent_node.a2a.server.grpc.service import A2AService
from agent_node.config import Limits
from agent_node.connection_cap import cap_of
from agent_node.http2.connection import SSL_CLOSE_GRACE
from agent_node.security.tls import server_context
from agent_node.security.tls_reload import serving, watched
from agent_node.transport import listening_socket

__all__ = ["GRACE", "Http2Server", "bind", "serve_service", "stop"]

#: Seconds a stopping node gives gRPC calls in flight (the HTTP server's grace).
GRACE = 5.0
#: Seconds a connection without calls stays open.
IDLE_CLOSE = 120.0
#: Seconds the calls a stop cut get to answer before connections close.
CUT_ANSWER_GRACE = 1.0


def bind(
    host: str,
    port: int,
    limits: Limits,
    tls: tuple[Path, Path, list[Path]] | None = None,
    *,
    mtls: bool = True,
) -> tuple[Http2Server, int]:
    """A gRPC server bound to ``host:port`` (``tls``: the certificate chain,
    key and trust files; ``mtls``: client certificates asked for), not
    started; and the port it bound."""
    context = None
    if tls is not None:
        cert, key, trust = tls
        build = functools.partial(
            server_context,
            cert,
            key,
            trust,
            require_client_cert=False,
            ask_client_cert=mtls,
            alpn=["h2"],
        )
        context = serving(watched(cert, key, trust), build)
    sock = listening_socket(host, port, " for gRPC", cap=cap_of(limits.max_connections))
    server = Http2Server(
        sock,
        context,
        max_body_bytes=limits.max_body_bytes,
        max_header_bytes=limits.max_header_bytes,
        read_timeout=limits.read_timeout,
    )
    return server, server.port


async def serve_service(server: Http2Server, service: A2AService) -> None:
    """Serve ``service`` on ``server`` (from :func:`bind`)."""
    await server.start(service.methods())


async def stop(server: Http2Server, grace: float = GRACE) -> None:
    """Stop accepting calls, let those in flight finish for ``grace`` seconds, cancel the rest."""
    await server.stop(grace)


class Http2Server:
    """gRPC methods (``"/package.Service/Method"`` → :class:`Method`) served
    on a bound socket, over ``tls`` when given."""

    def __init__(
        self,
        sock: socket.socket,
        tls: ssl.SSLContext | None,
        *,
        max_body_bytes: int,
        max_header_bytes: int,
        idle_close: float = IDLE_CLOSE,
        read_timeout: float | None = None,
    ) -> None:
        self.sock = sock
        self.tls = tls
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.idle_close = idle_close
        #: Seconds a client has for its TLS handshake (None: asyncio's 60).
        self.read_timeout = read_timeout
        self.methods: dict[str, Method] = {}
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    async def start(self, methods: Mapping[str, Method]) -> None:
        self.methods = dict(methods)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self), sock=self.sock, ssl=self.tls
        )

    async def stop(self, grace: float) -> None:
        """Stop serving: see the module doc. Idempotent."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self.connections):
            connection.go_away()
        deadline = time.monotonic() + grace
        while any(c.calls for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        cut = [s.task for c in self.connections for s in c.calls.values() if s.task]
        for connection in list(self.connections):
            connection.cut()
        if cut:
            await asyncio.wait(cut, timeout=CUT_ANSWER_GRACE)
        for connection in list(self.connections):
            connection.close()
        deadline = time.monotonic() + SSL_CLOSE_GRACE + 0.2
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self.sock.close()
