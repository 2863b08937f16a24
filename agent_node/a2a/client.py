"""How a node calls out: one HTTP client setup for every outgoing request.

Push delivery (and, later, delegation to peers) go through
:func:`http_client`: with mutual TLS it presents the node's own certificate
and verifies the server against the node's trust bundle and host name
(:meth:`~agent_node.config.NodeConfig.client_ssl_context`). It never follows
redirects (a redirect could lead a push or a delegation somewhere its checks
did not see) and ignores proxy and certificate settings of the environment.
"""

from __future__ import annotations

import ssl

import httpx

__all__ = ["http_client"]


def http_client(tls: ssl.SSLContext | None, *, timeout: float) -> httpx.AsyncClient:
    """An outgoing client; ``tls`` None (a node without TLS) verifies HTTPS
    servers against the default CA store."""
    return httpx.AsyncClient(
        verify=tls if tls is not None else True,
        follow_redirects=False,
        timeout=timeout,
        trust_env=False,
    )
