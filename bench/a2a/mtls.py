"""The mutual-TLS material of the A2A SendMessage benchmark, shared by all its processes.

One certificate folder per run (``make``), written by the project's own PKI:
``ca.pem``, ``server.pem`` + ``server-key.pem`` (what every server presents)
and ``client.pem`` + ``client-key.pem`` (what the load client and the
readiness poll present). Every SSL context comes from
``agent_node.security.tls``, so agent-node, the a2a-sdk server, the Starlette
calibration server and the client all run with identical settings (TLS >= 1.2,
client certificate required, server host name checked).

agent-node is imported inside the functions only: a plain-HTTP process never
loads it (nor ``cryptography``), so the plain rows stay as they were.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

TRUST_DOMAIN = "bench.test"
CA = "ca.pem"
SERVER = "server"  # the identity every server presents (agent-node serve --identity)
CLIENT = "client"


def make(folder: Path) -> Path:
    """Write a fresh CA and the server and client certificates into ``folder``."""
    from agent_node.security import pki

    folder.mkdir(parents=True, exist_ok=True)
    pki.init_ca(folder, trust_domain=TRUST_DOMAIN)
    pki.issue(folder, SERVER)
    pki.issue(folder, CLIENT)
    return folder


def server_context(folder: Path) -> ssl.SSLContext:
    """What a server serves with: ``server.pem``, client certificates required."""
    from agent_node.security.tls import server_context as build

    return build(folder / f"{SERVER}.pem", folder / f"{SERVER}-key.pem", [folder / CA])


def client_context(folder: Path, *, certificate: bool = True) -> ssl.SSLContext:
    """What the client connects with: ``client.pem`` (none without
    ``certificate``: server TLS only), the server checked against ``ca.pem``."""
    from agent_node.security.tls import client_context as build

    if not certificate:
        return build(None, None, [folder / CA])
    return build(folder / f"{CLIENT}.pem", folder / f"{CLIENT}-key.pem", [folder / CA])


def uvicorn_options(folder: Path | None) -> dict[str, Any]:
    """Extra ``uvicorn.Config`` options: none for plain HTTP, else the server context.

    The context is built once, up front (bad files fail before binding), and
    handed over through ``ssl_context_factory`` as agent-node's own transport
    does, so uvicorn applies none of its own TLS defaults on top.
    """
    if folder is None:
        return {}
    context = server_context(folder)
    return {"ssl_context_factory": lambda _config, _default: context}
