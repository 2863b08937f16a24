"""The node's gRPC server: grpc.aio on a port of its own, over the node's mutual TLS.

:func:`bind` makes the server and binds its port before the card is built
(port 0 picks a free one, which the card then lists); :func:`serve_service`
adds the :class:`~.service.A2AService` and starts it; the node stops it with
:func:`stop` when it stops (SIGTERM, SIGINT), letting calls in flight finish
for the same grace as the HTTP server's.

TLS: the node's certificate and key, client certificates verified against
its trust bundle. gRPC's Python server can require a client certificate or
not ask for one, not ask without requiring (as the HTTPS side does), so a
client without a certificate, or with one that does not chain to the
bundle, fails the handshake; a certificate that names no identity (no URI
SAN) is ``UNAUTHENTICATED`` at the first call.

Limits: a request message over ``limits.max_body_bytes`` is refused by gRPC
(``RESOURCE_EXHAUSTED``) before it is parsed; metadata over
``limits.max_header_bytes`` likewise. The port is never shared
(``SO_REUSEPORT`` off): a second node on it fails to start, as on HTTP.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grpc

from agent_node.a2a.server.grpc.service import A2AService
from agent_node.config import Limits
from agent_node.errors import ConfigError

__all__ = ["GRACE", "bind", "serve_service", "stop"]

log = logging.getLogger(__name__)

#: Seconds a stopping node gives gRPC calls in flight (the HTTP server's grace).
GRACE = 5.0


def bind(
    host: str,
    port: int,
    limits: Limits,
    tls: tuple[Path, Path, list[Path]] | None = None,
) -> tuple[grpc.aio.Server, int]:
    """A gRPC server listening on ``host:port`` (``tls``: the certificate
    chain, key and trust files), not started; and the port it bound."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", limits.max_body_bytes),
        # Both: between the soft limit and the hard one gRPC refuses only some.
        ("grpc.max_metadata_size", limits.max_header_bytes),
        ("grpc.absolute_max_metadata_size", limits.max_header_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        if tls is None:
            bound = server.add_insecure_port(address)
        else:
            cert, key, trust = tls
            credentials = grpc.ssl_server_credentials(
                [(key.read_bytes(), cert.read_bytes())],
                root_certificates=b"".join(path.read_bytes() for path in trust),
                require_client_auth=True,
            )
            bound = server.add_secure_port(address, credentials)
    except RuntimeError:  # grpcio: "Failed to bind to address …", no reason given
        bound = 0
    if not bound:
        raise ConfigError(
            f"cannot listen for gRPC on {address}: the port is in use, or the address"
            " is not one of this host's"
        )
    return server, bound


async def serve_service(server: grpc.aio.Server, service: A2AService) -> None:
    """Add ``service`` to ``server`` (from :func:`bind`) and start it."""
    server.add_generic_rpc_handlers((service.rpc_handler(),))
    await server.start()


async def stop(server: grpc.aio.Server, grace: float = GRACE) -> None:
    """Stop accepting calls, let those in flight finish for ``grace`` seconds, cancel the rest."""
    await server.stop(grace)
