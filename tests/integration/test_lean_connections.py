"""What an open stream's connection holds on a node (agent_node.lean_http,
agent_node.lean_tls), measured: real uvicorn served by the node's transport,
real mutual TLS, and clients on blocking sockets in a thread of their own
(no asyncio on their side), each holding one streamed response open."""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
import time
import tracemalloc
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from support.certs import make_certs
from support.served import served
from support.tls import caller_context

from agent_node.lean_tls import lean_tls_buffers
from agent_node.security.tls import server_context

STREAMS = 40
#: Bytes of Python objects the server's asyncio, uvicorn and agent_node code
#: may hold per open stream. Before agent_node.lean_http and the slotted TLS
#: protocol: ~14.9 KB; with them ~8.8 KB.
HELD_AT_MOST = 11_000
#: ... and once closed, without the cyclic collector: asyncio's socket
#: transport (~1.7 KB) stays in a cycle of its own. Before the lost connection
#: let go of its last request: ~4.9 KB, and the TLS state (C, not counted here).
LEFT_AT_MOST = 3_000


class Streams:
    """Answers every request with a stream that stays open until its client
    goes away; counts the streams open and the disconnects it noticed."""

    def __init__(self) -> None:
        self.open = 0
        self.gone = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"data: {}\n\n", "more_body": True})
        self.open += 1
        while (await receive())["type"] != "http.disconnect":
            pass
        self.open -= 1
        self.gone += 1


def open_streams(port: int, tls: ssl.SSLContext, count: int, held: ExitStack) -> None:
    request = b"GET /stream HTTP/1.1\r\nhost: localhost\r\n\r\n"
    for _ in range(count):
        raw = socket.create_connection(("127.0.0.1", port))
        conn = held.enter_context(tls.wrap_socket(raw, server_hostname="localhost"))
        conn.sendall(request)
        seen = b""
        while b"data: {}" not in seen:
            seen += conn.recv(4096)


def held_by_the_server(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> int:
    server_side = [
        tracemalloc.Filter(True, "*/asyncio/*"),
        tracemalloc.Filter(True, "*/uvicorn/*"),
        tracemalloc.Filter(True, "*/agent_node/*"),
    ]
    diff = after.filter_traces(server_side).compare_to(
        before.filter_traces(server_side), "filename"
    )
    return sum(stat.size_diff for stat in diff)


async def settled(app: Streams, open_: int) -> None:
    for _ in range(500):
        if app.open == open_:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{app.open} streams open, not {open_}")


async def test_an_open_stream_holds_little_and_a_closed_one_is_freed_at_once(
    tmp_path: Path,
) -> None:
    lean_tls_buffers()  # as agent_node.transport.uvicorn_server does
    certs = make_certs(tmp_path, "server", "client")
    tls = server_context(certs / "server.pem", certs / "server-key.pem", [certs / "ca.pem"])
    calling = caller_context(certs, "client")
    app = Streams()
    async with served(app, tls) as url:
        port = int(url.rsplit(":", 1)[1])
        with ExitStack() as warm:  # one-time costs are not counted
            await asyncio.to_thread(open_streams, port, calling, 2, warm)
            await settled(app, 2)
        await settled(app, 0)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            with ExitStack() as held:
                await asyncio.to_thread(open_streams, port, calling, STREAMS, held)
                await settled(app, STREAMS)
                gc.collect()
                per_stream = held_by_the_server(before, tracemalloc.take_snapshot()) / STREAMS
                gc.disable()  # what the closed connections leave, without the collector
            await settled(app, 0)
            await asyncio.sleep(0.5)  # their connections are lost a few loop passes after
            left = held_by_the_server(before, tracemalloc.take_snapshot()) / STREAMS
        finally:
            gc.enable()
            tracemalloc.stop()
    assert app.gone == STREAMS + 2, "a client that left was not noticed"
    assert per_stream < HELD_AT_MOST, f"{per_stream:.0f} bytes held per open stream"
    assert left < LEFT_AT_MOST, f"{left:.0f} bytes left per closed stream"


async def echo_path(scope: Any, receive: Any, send: Any) -> None:
    """Answers a request's path; /big, 4 MiB in pieces of 64 KiB."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    pieces = [PIECE] * 64 if scope["path"] == "/big" else [scope["path"].encode()]
    for piece in pieces:  # past the transport's high water, each waits for it to drain
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


PIECE = b"x" * 65536


def exchange(port: int, tls: ssl.SSLContext, requests: bytes, until: bytes) -> bytes:
    """Sends ``requests`` at once and reads, slowly, until ``until`` came."""
    raw = socket.create_connection(("127.0.0.1", port))
    with tls.wrap_socket(raw, server_hostname="localhost") as conn:
        conn.sendall(requests)
        seen = b""
        while not seen.endswith(until):
            time.sleep(0.001)
            chunk = conn.recv(65536)
            assert chunk, "the server closed the connection"
            seen += chunk
        return seen


def chunks(answer: bytes) -> bytes:
    """The body of a chunked HTTP/1.1 answer."""
    body, rest = b"", answer.split(b"\r\n\r\n", 1)[1]
    while True:
        size, rest = rest.split(b"\r\n", 1)
        if int(size, 16) == 0:
            return body
        body, rest = body + rest[: int(size, 16)], rest[int(size, 16) + 2 :]


async def test_pipelined_requests_and_a_slow_reader_are_answered_whole(tmp_path: Path) -> None:
    lean_tls_buffers()
    certs = make_certs(tmp_path, "server", "client")
    tls = server_context(certs / "server.pem", certs / "server-key.pem", [certs / "ca.pem"])
    calling = caller_context(certs, "client")
    paths = [f"/{n}" for n in range(5)]
    pipelined = b"".join(f"GET {p} HTTP/1.1\r\nhost: localhost\r\n\r\n".encode() for p in paths)
    big = b"GET /big HTTP/1.1\r\nhost: localhost\r\n\r\n"
    async with served(echo_path, tls) as url:
        port = int(url.rsplit(":", 1)[1])
        answers = await asyncio.to_thread(exchange, port, calling, pipelined, b"/4\r\n0\r\n\r\n")
        whole = await asyncio.to_thread(exchange, port, calling, big, b"\r\n0\r\n\r\n")
    in_order = [chunks(b"HTTP/1.1 " + a) for a in answers.split(b"HTTP/1.1 ")[1:]]
    assert in_order == [p.encode() for p in paths]
    assert chunks(whole) == PIECE * 64
