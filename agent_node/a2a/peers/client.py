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

A request may say whom it expects (``extensions=expecting(identity)``): it
then goes out only on a connection whose server proved that identity at the
handshake. A server presenting another identity (or none, or plain HTTP) is
:class:`IdentityMismatch` before a byte of the request is written — no
message, no push token, no card request reaches an impostor. Connections
are pooled per expected identity, so a connection proven for one identity
never carries a request that expects another.

A request may also go out without the node's certificate
(``extensions=expecting(identity, certificate=False)``: a peer called with a
token instead, which may not take a certificate its CAs did not issue): it
then uses a pool of connections whose TLS presents none.

httpx takes no network backend of its own, so each pool is httpx's own
transport with its httpcore pool rebuilt around one (httpcore 1.x).
"""

from __future__ import annotations

import ssl
from typing import Any

import httpcore
import httpx

from agent_node.security.tls import identity_of

__all__ = [
    "EXPECTED_IDENTITY",
    "IdentityMismatch",
    "expecting",
    "http_client",
    "server_identity",
    "shown_identity",
]

#: The request extension naming the identity a request's server must prove.
EXPECTED_IDENTITY = "agent_node.expected_identity"
#: The request extension saying the request presents no client certificate.
WITHOUT_CERTIFICATE = "agent_node.without_certificate"

#: httpx's default pool limits (``httpx.Limits()`` as ``AsyncClient`` uses
#: it), but an idle connection is let go after 4 s, not 5: most servers (a
#: node of ours aside) close one after 5 s (uvicorn, Node.js, Apache), and a
#: request sent on a connection just as its server closes it is lost
#: ("server disconnected without sending a response"; a delegation then
#: waits for its retry).
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=4.0)


def http_client(
    tls: ssl.SSLContext | None,
    *,
    timeout: float,
    identity_from_cn: bool = False,
    bare: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """An outgoing client; ``tls`` None (a node without TLS) verifies HTTPS
    servers against the default CA store. ``identity_from_cn``: how the
    servers' identities are read (:func:`~agent_node.security.tls.identity_of`).
    ``bare``: ``tls`` without the node's certificate, for requests that must
    present none (default: ``tls`` itself)."""
    context = tls if tls is not None else httpx.create_ssl_context(trust_env=False)
    return httpx.AsyncClient(
        transport=_Transport(context, identity_from_cn, bare or context),
        follow_redirects=False,
        timeout=timeout,
        trust_env=False,
    )


class IdentityMismatch(httpx.ConnectError):
    """The server is not the identity the request expects: raised right after
    the TLS handshake (or, over plain HTTP, before connecting), before
    anything of the request is sent. Permanent: the peer is not who it must be.
    Its message names the address (for logs); ``expected`` and ``presented``
    (None: no identity at all) are for errors shown to callers."""

    def __init__(self, expected: str, presented: str | None, *, tls: bool, where: str) -> None:
        self.expected = expected
        self.presented = presented
        self.tls = tls
        super().__init__(
            f"{where} presented {shown_identity(presented, tls=tls)}, expected {expected}"
        )


def shown_identity(identity: str | None, *, tls: bool) -> str:
    """What a server presented, in words for an error."""
    if identity is not None:
        return identity
    return "a certificate that names no identity" if tls else "no certificate (plain HTTP)"


def expecting(identity: str | None, *, certificate: bool = True) -> dict[str, Any]:
    """Request extensions that send a request only to a server proven to be
    ``identity`` at the handshake (None: anyone the trust bundle vouches for);
    without our ``certificate`` when False."""
    found: dict[str, Any] = {EXPECTED_IDENTITY: identity} if identity is not None else {}
    if not certificate:
        found[WITHOUT_CERTIFICATE] = True
    return found


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


class _Transport(httpx.AsyncBaseTransport):
    """One pool per identity expected (None: none), made on first use."""

    def __init__(
        self, context: ssl.SSLContext, identity_from_cn: bool, bare: ssl.SSLContext
    ) -> None:
        self._context = context
        self._bare = bare
        self._identity_from_cn = identity_from_cn
        self._pools: dict[tuple[str | None, bool], _Pool] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        expected = request.extensions.get(EXPECTED_IDENTITY)
        if expected is not None and request.url.scheme != "https":
            where = f"{request.url.host}:{request.url.port or 80}"
            raise IdentityMismatch(expected, None, tls=False, where=where)
        bare = bool(request.extensions.get(WITHOUT_CERTIFICATE))
        pool = self._pools.get((expected, bare))
        if pool is None:
            backend = _Backend(expected, self._identity_from_cn)
            context = self._bare if bare else self._context
            pool = self._pools[(expected, bare)] = _Pool(context, backend)
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()


class _Pool(httpx.AsyncHTTPTransport):
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
    """httpcore's asyncio backend, whose streams learn the server's identity
    and refuse any other than ``expected`` (when given)."""

    def __init__(self, expected: str | None, identity_from_cn: bool) -> None:
        self.expected = expected
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
        return _Stream(stream, self, f"{host}:{port}")

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_unix_socket(path, timeout, socket_options)
        return _Stream(stream, self, path)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Stream(httpcore.AsyncNetworkStream):
    """A connection to ``where``; after :meth:`start_tls`, ``identity`` is the server's."""

    def __init__(
        self,
        inner: httpcore.AsyncNetworkStream,
        backend: _Backend,
        where: str,
        identity: str | None = None,
    ) -> None:
        self._inner = inner
        self._backend = backend
        self._where = where
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
        expected = self._backend.expected
        if expected is not None and identity != expected:
            # Closed without a word: not even a TLS close_notify is sent.
            await tls.aclose()
            raise IdentityMismatch(expected, identity, tls=True, where=self._where)
        return _Stream(tls, self._backend, self._where, identity)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)
