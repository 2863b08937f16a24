"""Client SSL contexts for tests that call a node over mutual TLS."""

from __future__ import annotations

import ssl
from pathlib import Path

from agent_node.security.tls import client_context


def caller_context(certs: Path, name: str | None, issued_by: Path | None = None) -> ssl.SSLContext:
    """Trust ``certs/ca.pem``; present ``name``'s certificate, as ``agent-node certs
    issue`` wrote it in ``issued_by`` (default ``certs``), or none for None."""
    if name is None:
        return client_context(None, None, [certs / "ca.pem"])
    folder = issued_by or certs
    return client_context(folder / f"{name}.pem", folder / f"{name}-key.pem", [certs / "ca.pem"])
