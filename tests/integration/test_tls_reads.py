"""TLS connections of one event loop read through one shared buffer
(:func:`agent_node.lean_tls.lean_tls_buffers`): many connections moving
large bodies at once, both ways, lose and mix nothing, and an idle
connection holds no read buffer of its own."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
from asyncio import sslproto
from pathlib import Path

from support.certs import make_certs
from support.tls import caller_context

from agent_node.lean_tls import TLS_READ_BUFFER, lean_tls_buffers
from agent_node.security.tls import server_context

BODY = 1_000_003  # not a multiple of any buffer or TLS record size
CONNECTIONS = 24


async def test_connections_sharing_the_read_buffer_mix_nothing(tmp_path: Path) -> None:
    lean_tls_buffers()
    lean_tls_buffers()  # twice: patched once
    certs = make_certs(tmp_path, "server", "client")
    served = server_context(certs / "server.pem", certs / "server-key.pem", [certs / "ca.pem"])
    calling = caller_context(certs, "client")

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Answers the body's digest and then the body itself, reversed.
        body = await reader.readexactly(BODY)
        writer.write(hashlib.sha256(body).digest() + body[::-1])
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=served)
    port = server.sockets[0].getsockname()[1]

    async def call(index: int) -> None:
        body = os.urandom(BODY)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=calling, server_hostname="localhost"
        )
        for start in range(0, BODY, 65_536):  # in pieces, interleaved with the others
            writer.write(body[start : start + 65_536])
            await writer.drain()
        digest = await reader.readexactly(32)
        back = await reader.readexactly(BODY)
        writer.close()
        assert digest == hashlib.sha256(body).digest(), f"connection {index}: mixed on the way in"
        assert back == body[::-1], f"connection {index}: mixed on the way back"

    try:
        await asyncio.gather(*(call(i) for i in range(CONNECTIONS)))
        # An idle connection keeps no read buffer: the loop's one is shared.
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=calling, server_hostname="localhost"
        )
        writer.write(os.urandom(BODY))
        assert len(await reader.readexactly(32)) == 32
        gc.collect()
        live = [p for p in gc.get_objects() if isinstance(p, sslproto.SSLProtocol)]
        assert live, "no TLS connection is open"
        assert all(p._ssl_buffer is None for p in live)
        views = {id(p._ssl_buffer_view) for p in live if p._ssl_buffer_view is not None}
        assert len(views) == 1 and sslproto.SSLProtocol.max_size <= TLS_READ_BUFFER
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_the_peer_certificate_is_still_told_when_asked(tmp_path: Path) -> None:
    lean_tls_buffers()
    certs = make_certs(tmp_path, "server", "client")
    served = server_context(certs / "server.pem", certs / "server-key.pem", [certs / "ca.pem"])
    seen: list[object] = []

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        seen.extend([writer.get_extra_info("peercert"), ssl_object.getpeercert()])
        writer.close()

    server = await asyncio.start_server(peer, "127.0.0.1", 0, ssl=served)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=caller_context(certs, "client"), server_hostname="localhost"
        )
        await reader.read()
        server_cert = writer.get_extra_info("peercert")
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    told, decoded = seen
    assert isinstance(told, dict) and told == decoded and told["subject"]
    assert isinstance(server_cert, dict) and server_cert["subject"]
