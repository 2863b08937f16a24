"""Who our client finds at the other end of a connection: the server's
certificate, read right after the handshake by the node's rule, over real
TLS to real uvicorn servers on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support.certs import issue_cn_only, make_certs

from agent_node.a2a.client import http_client, server_identity
from agent_node.a2a.discovery import CARD_PATH, PeerUnavailable, fetch_card
from agent_node.security.tls import client_context, server_context
from agent_node.transport import uvicorn_config

D = "spiffe://example.org/agent"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CA example.org: alice (us), writer, mallory; "spoof", whose CN reads writer's identity."""
    folder = make_certs(tmp_path_factory.mktemp("peer-identity") / "certs", "alice", "writer")
    issue_cn_only(folder, "spoof", f"{D}/writer")
    return folder


def ours(certs: Path) -> ssl.SSLContext:
    return client_context(certs / "alice.pem", certs / "alice-key.pem", [certs / "ca.pem"])


def card(url: str) -> dict[str, Any]:
    return {
        "name": "writer",
        "description": "Writes.",
        "version": "1.0.0",
        "supportedInterfaces": [
            {"url": f"{url}/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ],
        "capabilities": {},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "write", "name": "Write", "description": "Writes.", "tags": []}],
    }


class Server:
    """A peer serving a card on loopback as one certificate; what it was asked."""

    def __init__(self) -> None:
        self.url = ""
        self.seen: list[str] = []

    async def handle(self, request: Request) -> Response:
        self.seen.append(f"{request.method} {request.url.path}")
        if request.url.path == CARD_PATH:
            return Response(json.dumps(card(self.url)), media_type="application/json")
        return JSONResponse({"jsonrpc": "2.0", "id": 1, "result": {}})


@asynccontextmanager
async def serving(certs: Path, name: str) -> AsyncIterator[Server]:
    tls = server_context(certs / f"{name}.pem", certs / f"{name}-key.pem", [certs / "ca.pem"])
    peer = Server()
    app = Starlette(routes=[Route("/{path:path}", peer.handle, methods=["GET", "POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn_config(app, tls))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    peer.url = f"https://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield peer
    finally:
        server.should_exit = True
        await task
        sock.close()


# -- the rule ---------------------------------------------------------------------


@pytest.mark.parametrize(("from_cn", "expected"), [(False, None), (True, f"{D}/writer")])
async def test_a_server_without_uri_san_is_its_cn_only_with_the_flag(
    certs: Path, from_cn: bool, expected: str | None
) -> None:
    async with (
        serving(certs, "spoof") as peer,
        http_client(ours(certs), timeout=10, identity_from_cn=from_cn) as http,
    ):
        async with http.stream("GET", peer.url + CARD_PATH) as response:
            assert response.status_code == 200
            assert server_identity(response) == expected


async def test_a_cn_is_not_the_identity_a_peer_is_configured_with(certs: Path) -> None:
    async with serving(certs, "spoof") as peer:
        async with http_client(ours(certs), timeout=10) as http:
            with pytest.raises(
                PeerUnavailable, match="presented a certificate that names no identity"
            ):
                await fetch_card(http, peer.url, name="writer", expected_identity=f"{D}/writer")
        async with http_client(ours(certs), timeout=10, identity_from_cn=True) as http:
            found = await fetch_card(http, peer.url, name="writer", expected_identity=f"{D}/writer")
    assert found.identity == f"{D}/writer"
