"""How a node calls out: one HTTP client setup for every outgoing request.

Push delivery, discovery and delegation go through :func:`http_client`: with
mutual TLS it presents the node's own certificate and verifies the server
against the node's trust bundle and host name
(:meth:`~agent_node.config.NodeConfig.client_ssl_context`). It never follows
redirects (a redirect could lead a push or a delegation somewhere its checks
did not see) and ignores proxy and certificate settings of the environment.

Its connections know who is at the other end: right after each TLS
handshake the server's certificate is read once, by the node's rule
(:func:`~agent_node.security.tls.identity_of`, ``identity_from_cn``), and
:func:`server_identity` gives it for any response of that connection.

httpx takes no network backend of its own, so the client's transport is
httpx's own with its httpcore pool rebuilt around one (httpcore 1.x).
"""

from __future__ import annotations

import ssl
from typing import Any

import httpcore
import httpx

from agent_node.security.tls import identity_of

__all__ = ["http_client", "server_identity"]

#: httpx's default pool limits (``httpx.Limits()`` as ``AsyncClient`` uses it).
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


def http_client(
    tls: ssl.SSLContext | None, *, timeout: float, identity_from_cn: bool = False
) -> httpx.AsyncClient:
    """An outgoing client; ``tls`` None (a node without TLS) verifies HTTPS
    servers against the default CA store. ``identity_from_cn``: how the
    servers' identities are read (:func:`~agent_node.security.tls.identity_of`)."""
    context = tls if tls is not None else httpx.create_ssl_context(trust_env=False)
    return httpx.AsyncClient(
        transport=_Transport(context, _Backend(identity_from_cn)),
        follow_redirects=False,
        timeout=timeout,
        trust_env=False,
    )


def server_identity(response: httpx.Response) -> str | None:
    """The identity of the certificate the server of ``response`` presented
    (None over plain HTTP, or for a certificate that names none). Read it
    while the response's connection is open."""
    stream = response.extensions.get("network_stream")
    if isinstance(stream, _Stream):
        return stream.identity
    # A client made elsewhere (a test's): the default rule.
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return identity_of(der) if der else None


class _Transport(httpx.AsyncHTTPTransport):
    """httpx's transport over a pool that connects through ``backend``."""

    def __init__(self, context: ssl.SSLContext, backend: httpcore.AsyncNetworkBackend) -> None:
        super().__init__(verify=context, trust_env=False, limits=_LIMITS)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=_LIMITS.max_connections,
            max_keepalive_connections=_LIMITS.max_keepalive_connections,
            keepalive_expiry=_LIMITS.keepalive_expiry,
            network_backend=backend,
        )


class _Backend(httpcore.AsyncNetworkBackend):
    """httpcore's asyncio backend, whose streams learn the server's identity."""

    def __init__(self, identity_from_cn: bool) -> None:
        self.identity_from_cn = identity_from_cn
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(stream, self)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_unix_socket(path, timeout, socket_options), self)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Stream(httpcore.AsyncNetworkStream):
    """A connection; after :meth:`start_tls`, ``identity`` is the server's."""

    def __init__(
        self, inner: httpcore.AsyncNetworkStream, backend: _Backend, identity: str | None = None
    ) -> None:
        self._inner = inner
        self._backend = backend
        self.identity = identity

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        tls = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        ssl_object = tls.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        identity = identity_of(der, from_cn=self._backend.identity_from_cn) if der else None
        return _Stream(tls, self._backend, identity)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)
