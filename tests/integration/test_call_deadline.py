"""A call to a peer is answered whole within its deadline, however the peer
sends it: one that drips its answer (a space every 0.1 s) keeps every read
within httpx's per-read timeout, and was waited on until it finished (a
walk's peer held a send 60 s). Past the deadline the call fails as a
timeout: for a while (transient), the peer taken as down. A real peer
(uvicorn, mutual TLS) on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from support.certs import make_certs
from support.served import served

from agent_node.a2a.peers.calls import call
from agent_node.a2a.peers.client import http_client
from agent_node.a2a.peers.discovery import PeerCard
from agent_node.a2a.peers.peer_errors import unreachable
from agent_node.security.tls import client_context, server_context

WRITER = "spiffe://example.org/agent/writer"
TASK = {"id": "t1", "contextId": "c1", "status": {"state": "TASK_STATE_WORKING"}}
SEND = {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("deadline") / "certs", "alice", "writer")


def dripping(every: float, total: float) -> Starlette:
    """A peer that answers a space every ``every`` seconds, then, after
    ``total`` seconds, its whole answer: a working task."""

    async def answer(request: Request) -> StreamingResponse:
        await request.body()

        async def drip() -> AsyncIterator[bytes]:
            began = time.monotonic()
            while time.monotonic() - began < total:
                yield b" "
                await asyncio.sleep(every)
            yield json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"task": TASK}}).encode()

        return StreamingResponse(drip(), media_type="application/json")

    return Starlette(routes=[Route("/a2a", answer, methods=["POST"])])


def card_of(url: str) -> PeerCard:
    return PeerCard(
        name="writer",
        base_url=url,
        card={},
        endpoint=f"{url}/a2a",
        version="1.0",
        identity=WRITER,
        etag=None,
        fetched_at=0,
        expires_at=0,
        signed_by=None,
        card_url=f"{url}/.well-known/agent-card.json",
    )


async def send(certs: Path, app: Starlette, deadline: float) -> object:
    tls = server_context(certs / "writer.pem", certs / "writer-key.pem", [certs / "ca.pem"])
    ours = client_context(certs / "alice.pem", certs / "alice-key.pem", [certs / "ca.pem"])
    async with served(app, tls) as url, http_client(ours, timeout=30) as client:
        result, identity = await call(
            client, card_of(url), "SendMessage", SEND, {}, deadline=deadline
        )
        assert identity == WRITER
        return result


async def test_a_peer_that_drips_its_answer_is_cut_at_the_deadline_as_a_timeout(
    certs: Path,
) -> None:
    began = time.monotonic()
    with pytest.raises(httpx.ReadTimeout) as caught:
        await send(certs, dripping(every=0.1, total=30.0), deadline=1.0)
    assert time.monotonic() - began < 3.0
    failure = unreachable(card_of("https://x"), caught.value)
    assert str(failure) == "peer 'writer' unreachable: ReadTimeout: no whole answer within 1 s"
    assert failure.transient and failure.down  # tried again later; the peer is down meanwhile


async def test_an_answer_dripped_within_the_deadline_is_read(certs: Path) -> None:
    result = await send(certs, dripping(every=0.1, total=0.3), deadline=5.0)
    assert result == {"task": TASK}
