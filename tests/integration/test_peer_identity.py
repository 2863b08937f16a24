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

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support.certs import issue_cn_only, make_certs
from support.impostor import impostor

from agent_node.a2a.peers.client import IdentityMismatch, expecting, http_client, server_identity
from agent_node.a2a.peers.discovery import CARD_PATH, PeerCard, PeerUnavailable, fetch_card
from agent_node.a2a.peers.peer_errors import unreachable
from agent_node.security.tls import client_context, server_context
from agent_node.transport import uvicorn_config

D = "spiffe://example.org/agent"
WRITER, MALLORY = f"{D}/writer", f"{D}/mallory"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CA example.org: alice (us), writer, mallory; "spoof", whose CN reads writer's identity."""
    names = ("alice", "writer", "mallory")
    folder = make_certs(tmp_path_factory.mktemp("peer-identity") / "certs", *names)
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


# -- the identity a request expects, checked at the handshake ---------------------


async def test_a_request_expecting_an_identity_sends_nothing_to_another(certs: Path) -> None:
    with impostor(certs, "mallory") as fake:
        async with http_client(ours(certs), timeout=10) as http:
            with pytest.raises(IdentityMismatch) as refused:
                await http.post(
                    f"https://127.0.0.1:{fake.port}/a2a",
                    content=b"the message and its push token",
                    extensions=expecting(WRITER),
                )
    assert (refused.value.expected, refused.value.presented) == (WRITER, MALLORY)
    assert str(refused.value) == f"127.0.0.1:{fake.port} presented {MALLORY}, expected {WRITER}"
    assert fake.connections == 1 and bytes(fake.received) == b""


async def test_the_impostor_records_what_a_client_that_does_not_check_sends(
    certs: Path,
) -> None:
    """The control: without an expectation the same request reaches it."""
    with impostor(certs, "mallory") as fake:
        async with http_client(ours(certs), timeout=httpx.Timeout(10, read=1)) as http:
            with pytest.raises(httpx.ReadTimeout):  # it never answers
                await http.post(f"https://127.0.0.1:{fake.port}/a2a", content=b"secret")
        for _ in range(500):
            if b"secret" in fake.received:
                break
            await asyncio.sleep(0.02)
    assert fake.received.startswith(b"POST /a2a HTTP/1.1") and b"secret" in fake.received
    assert fake.handshakes == [f"{D}/alice"]


async def test_a_connection_proven_for_no_one_carries_no_expecting_request(certs: Path) -> None:
    async with (
        serving(certs, "mallory") as peer,
        http_client(ours(certs), timeout=10) as http,
    ):
        anyone = await http.get(peer.url + CARD_PATH)
        assert server_identity(anyone) == MALLORY
        with pytest.raises(IdentityMismatch):
            await http.get(peer.url + CARD_PATH, extensions=expecting(WRITER))
        proven = await http.get(peer.url + CARD_PATH, extensions=expecting(MALLORY))
        assert server_identity(proven) == MALLORY
    assert peer.seen == [f"GET {CARD_PATH}", f"GET {CARD_PATH}"]


async def test_plain_http_fails_an_expectation_without_connecting(certs: Path) -> None:
    connections = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, http_client(None, timeout=10) as http:
        with pytest.raises(IdentityMismatch) as refused:
            await http.get(f"http://127.0.0.1:{port}/", extensions=expecting(WRITER))
    assert str(refused.value) == (
        f"127.0.0.1:{port} presented no certificate (plain HTTP), expected {WRITER}"
    )
    assert connections == 0


def test_a_mismatch_is_a_refusal_for_good_naming_the_peer_and_who_answered() -> None:
    card = PeerCard(
        name="writer",
        base_url="https://10.1.2.3:8443",
        card={},
        endpoint="https://10.1.2.3:8443/a2a",
        version="1.0",
        identity=WRITER,
        etag=None,
        fetched_at=0,
        expires_at=0,
        signed_by=None,
        card_url="https://10.1.2.3:8443" + CARD_PATH,
    )
    mismatch = IdentityMismatch(WRITER, MALLORY, tls=True, where="10.1.2.3:8443")
    error = unreachable(card, mismatch)
    assert not error.transient
    assert str(error) == (
        f"peer 'writer' rejected: the server presented {MALLORY}, expected {WRITER}"
    )
    nobody = unreachable(card, IdentityMismatch(WRITER, None, tls=True, where="10.1.2.3:8443"))
    assert "presented a certificate that names no identity" in str(nobody)
