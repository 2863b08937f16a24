"""A node's gRPC side: its server (``listen.grpc_port``; protobuf)
and its client of peers' gRPC interfaces (grpcio), each imported only when used."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from agent_node.config import NodeConfig
from agent_node.errors import ConfigError

__all__ = ["bind", "peers", "serve", "stop_with"]


def peers(config: NodeConfig, context: ssl.SSLContext | None) -> Any:
    """The client of peers' gRPC interfaces (made when one is first called)."""
    from agent_node.a2a.peers.grpc_calls import GrpcPeers

    return GrpcPeers(config.tls_files(), context, identity_from_cn=config.identity_from_cn)


def bind(config: NodeConfig) -> tuple[Any, int | None]:
    """The gRPC server (``listen.grpc_port``) bound, not started, and its port;
    (None, None) when the node serves no gRPC."""
    port = config.listen.grpc_port
    if port is None:
        return None, None
    try:
        from agent_node.a2a.server.grpc import server
    except ImportError as exc:
        raise ConfigError(
            f"listen.grpc_port needs protobuf ({exc}): pip install 'agent-node[grpc]'"
            " (from a clone: pip install -e '.[grpc]')"
        ) from None
    return server.bind(
        config.listen.host, port, config.limits, config.tls_files(), mtls=config.auth.mtls
    )


async def serve(grpc: Any, service: Any) -> None:
    from agent_node.a2a.server.grpc.server import serve_service

    await serve_service(grpc, service)


async def stop_with(http: Any, grpc: Any) -> None:
    """Stop ``grpc`` (calls in flight get the HTTP server's grace) as soon as
    the HTTP server is asked to stop, so both drain at once."""
    if grpc is None:
        return
    from agent_node.a2a.server.grpc.server import stop

    while not http.should_exit:
        await asyncio.sleep(0.05)
    await stop(grpc)
