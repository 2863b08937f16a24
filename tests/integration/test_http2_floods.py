"""Floods of frames that cost the node CPU and the client nothing, on both of
the node's HTTP/2 servers (the HTTP port over TLS, the gRPC binding's): empty
DATA frames, PRIORITY or unknown frames (CVE-2019-9518), and a header block
in endless empty CONTINUATIONs (CVE-2023-45288). Past a bound counted in
frames the connection is ended with GOAWAY ENHANCE_YOUR_CALM, before the
bound it serves on; and a body answered unread (a 401) that comes in tiny
frames is reset after a bounded number of them."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from integration import test_http2_rules as rules
from integration.test_http2_rules import (
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    NO_ERROR,
    PRIORITY,
    PROTOCOL_ERROR,
    RST_STREAM,
    Client,
    Endpoint,
    frame,
    serves_on,
)
from support.certs import make_certs
from support.served import served
from support.tls import caller_context

from agent_node.http2 import wire
from agent_node.http2.wire import EMPTY_FRAMES
from agent_node.security.tls import server_context

CONTINUATION, ENHANCE_YOUR_CALM = 9, 0xB

endpoint = rules.endpoint  # the fixture: each of the node's two HTTP/2 servers


def nothing(kind: str, sid: int) -> bytes:
    """A frame of ``kind`` on ``sid`` that carries nothing."""
    if kind == "empty DATA":
        return frame(DATA, 0, sid, b"")
    if kind == "PRIORITY":
        return frame(PRIORITY, 0, sid, struct.pack(">LB", 0, 16))
    return frame(0xFA, 0, sid, b"")  # a type nobody defined: ignored


@pytest.mark.parametrize(
    ("kind", "on"),
    [
        ("empty DATA", "a stream whose body is read"),
        ("empty DATA", "a stream we reset"),
        ("PRIORITY", "a stream whose body is read"),
        ("unknown type", "a stream whose body is read"),
    ],
)
async def test_frames_that_carry_nothing_past_a_bound_end_the_connection(
    endpoint: Endpoint, kind: str, on: str
) -> None:
    client = await Client.open(endpoint)
    if on == "a stream we reset":
        client.headers(1, endpoint.request(X_Upper="1"), end=False)  # malformed: reset
        assert await client.reset_of(1) == PROTOCOL_ERROR
    else:
        client.headers(1, endpoint.request(), end=False)
    client.send(nothing(kind, 1) * EMPTY_FRAMES)  # the bound, not past it
    await serves_on(endpoint, client)  # a request: the count starts again
    client.send(nothing(kind, 1) * EMPTY_FRAMES + nothing(kind, 1))
    assert await client.goaway() == ENHANCE_YOUR_CALM
    await client.close()
    await serves_on(endpoint)


async def test_a_header_block_in_too_many_continuations_ends_the_connection(
    endpoint: Endpoint,
) -> None:
    client = await Client.open(endpoint)
    block = client.block(endpoint.request())
    limit = wire.CONTINUATIONS  # both servers' max_header_block fits it in full frames
    first, rest = block[:1], block[1:]
    step = -(-len(rest) // limit)
    pieces = [rest[at : at + step] for at in range(0, len(rest), step)]
    pieces = [b""] * (limit - len(pieces)) + pieces  # the most a block may have
    client.send(frame(HEADERS, END_STREAM, 1, first))
    client.send(b"".join(frame(CONTINUATION, 0, 1, p) for p in pieces[:-1]))
    client.send(frame(CONTINUATION, END_HEADERS, 1, pieces[-1]))
    await client.answered(1)
    client.send(frame(HEADERS, END_STREAM, 3, client.block(endpoint.request())[:1]))
    client.send(frame(CONTINUATION, 0, 3, b"") * (limit + 1))  # empty, endless
    assert await client.goaway() == ENHANCE_YOUR_CALM
    await client.close()
    await serves_on(endpoint)


async def test_a_body_answered_unread_is_cut_in_frames_not_only_bytes(tmp_path: Path) -> None:
    """A request answered before its body was read (a 401 to a caller with
    no credentials): its body's empty frames end the connection past the
    bound, and its tiny ones are reset (NO_ERROR) after DRAIN_BYTES //
    DRAIN_FRAME_BYTES of them, however few bytes they held."""
    certs = make_certs(tmp_path / "certs", "node", "alice")
    tls = server_context(certs / "node.pem", certs / "node-key.pem", [certs / "ca.pem"])
    client_tls = caller_context(certs, "alice")
    client_tls.set_alpn_protocols(["h2"])

    async def app(scope: Any, receive: Any, send: Any) -> None:  # answers unread
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"who are you?"})

    async with served(app, tls) as url:
        endpoint = Endpoint("http", int(url.rpartition(":")[2]), client_tls, "POST", "/")
        client = await Client.open(endpoint)
        client.headers(1, endpoint.request(), end=False)
        await client.answered(1)
        frames = wire.DRAIN_BYTES // wire.DRAIN_FRAME_BYTES
        client.send(frame(DATA, 0, 1, b"x") * frames)  # 16 KiB, in frames of a byte
        await serves_on(endpoint, client)
        assert not [f for f in client.frames if f[0] == RST_STREAM]
        client.send(frame(DATA, 0, 1, b"x"))
        assert await client.reset_of(1) == NO_ERROR
        client.headers(103, endpoint.request(), end=False)  # after serves_on's 101
        await client.answered(103)
        client.send(frame(DATA, 0, 103, b"") * (EMPTY_FRAMES + 1))
        assert await client.goaway() == ENHANCE_YOUR_CALM
        await client.close()
