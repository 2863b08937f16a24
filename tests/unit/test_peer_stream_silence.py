"""A peer's event stream that goes silent is closed after ``silence``
seconds; one that only pings is kept. Against a real TCP server on
loopback that answers ``SubscribeToTask`` and then stalls, as a peer or a
network does (found by a walk: streams held open 17 minutes and more)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from agent_node.a2a.peers import calls
from agent_node.a2a.peers.discovery import PeerCard

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
EVENT = b'data: {"jsonrpc":"2.0","id":1,"result":{"task":{"id":"t","status":{"state":"x"}}}}\n\n'


class Peer:
    """Streams ``pings`` comments ``every`` seconds apart, then ``last``
    (or nothing: silence), and notes when the caller closed its end."""

    def __init__(self, pings: int, every: float, last: bytes | None) -> None:
        self.pings, self.every, self.last = pings, every, last
        self.closed_at: float | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        writer.write(HEAD)
        for _ in range(self.pings):
            writer.write(b": ping\n\n")
            await writer.drain()
            await asyncio.sleep(self.every)
        if self.last is not None:
            writer.write(self.last)
            await writer.drain()
            writer.close()
            return
        await reader.read()  # silent until the caller goes
        self.closed_at = time.monotonic()
        writer.close()


@asynccontextmanager
async def serving(peer: Peer) -> AsyncIterator[PeerCard]:
    server = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    try:
        yield PeerCard(
            name="p",
            base_url=url,
            card={},
            endpoint=f"{url}/a2a",
            version="1.0",
            identity=None,
            etag=None,
            fetched_at=0,
            expires_at=0,
            signed_by=None,
            card_url=f"{url}/.well-known/agent-card.json",
        )
    finally:
        server.close()


async def test_a_stream_silent_past_its_deadline_is_closed() -> None:
    peer = Peer(pings=1, every=0.0, last=None)
    async with serving(peer) as card, httpx.AsyncClient() as client:
        began = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            async for _ in calls.subscribe(client, card, "t", silence=0.5):
                pass
        assert time.monotonic() - began < 5
        for _ in range(100):
            if peer.closed_at is not None:
                break
            await asyncio.sleep(0.02)
        assert peer.closed_at is not None, "the connection stayed open"


async def test_a_stream_that_pings_is_kept_past_the_deadline() -> None:
    peer = Peer(pings=6, every=0.2, last=EVENT)  # 1.2 s of pings, none 0.5 s apart
    async with serving(peer) as card, httpx.AsyncClient() as client:
        events = [e async for e, _ in calls.subscribe(client, card, "t", silence=0.5)]
    assert [e["task"]["id"] for e in events] == ["t"]


def test_the_deadline_is_three_pings() -> None:
    assert calls.STREAM_SILENCE == 45.0
