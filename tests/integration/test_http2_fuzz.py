"""Random HTTP/2 traffic against both of the node's HTTP/2 servers (the HTTP
app's connection, the gRPC binding's): frames of every type with random
flags, stream ids, settings, windows, padding, priorities and header blocks
(well-formed, malformed, split over CONTINUATIONs, or garbage), sometimes a
byte flipped. Whatever a client sends, the server answers, resets or hangs
up on it; it never logs an error of its own, never leaves a connection or a
task behind, and serves the next client. Seeded: a failure names its case."""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from collections.abc import AsyncIterator
from typing import Any

import hpack
import pytest
from support.h2_plain import plain_http2

from agent_node.a2a.server.grpc.calls import Call, Method
from agent_node.a2a.server.grpc.server import Http2Server
from agent_node.http2.frames import PREFACE
from agent_node.transport import listening_socket

CASES = 300
AT_ONCE = 20


def frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    length = len(payload)
    return struct.pack(">HBBBL", length >> 8, length & 0xFF, kind, flags, sid) + payload


def fields_of(r: random.Random, grpc: bool) -> list[tuple[str, str]]:
    fields = [(":method", r.choice(["GET", "POST", "CONNECT", "HEAD"])), (":scheme", "http")]
    fields += [(":path", r.choice(["/echo", "/stream", "/crash", "/", "", "/x?y=1"]))]
    fields += [(":authority", "t")]
    if grpc and r.random() < 0.8:
        fields += [("content-type", "application/grpc"), ("te", "trailers")]
    if r.random() < 0.3:
        fields.append(("content-length", r.choice(["0", "5", "100", "x", "9" * 20])))
    if r.random() < 0.2:
        name = r.choice(["X-Up", "te", "connection", ":path", "a b", "ok"])
        fields.append((name, r.choice(["trailers", "v", " v", "a\r\nb"])))
    if r.random() < 0.2:
        r.shuffle(fields)
    if r.random() < 0.1:
        fields = fields[: r.randrange(len(fields) + 1)]
    return fields


def traffic(r: random.Random, grpc: bool) -> bytes:
    """A client's bytes: the preface, then up to 24 random frames."""
    encoder = hpack.Encoder()
    out = [PREFACE, frame(4, 0, 0, b"")] if r.random() < 0.95 else [PREFACE]
    sids = [1, 3, 5, 7, 9, 11, 13, 2, 0, 2**31 - 1]
    for _ in range(r.randrange(1, 25)):
        kind = r.choice([0, 0, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 10, 0xFF])
        sid, flags = r.choice(sids), r.choice([0, 1, 4, 5, 8, 0x20, 0x24, 0x25, 0x2D, 0xFF])
        if kind in (1, 9):  # HEADERS, CONTINUATION
            block = encoder.encode(fields_of(r, grpc)) if r.random() < 0.9 else r.randbytes(9)
            if flags & 0x20:
                block = struct.pack(">LB", r.choice([0, sid, 3]), 16) + block
            if flags & 0x8:
                block = bytes([r.randrange(5)]) + block + b"\0" * r.randrange(5)
            if r.random() < 0.3 and len(block) > 2:
                cut = r.randrange(1, len(block))
                out.append(frame(kind, flags & ~4, sid, block[:cut]))
                out.append(frame(9, 4, sid if r.random() < 0.9 else 3, block[cut:]))
            else:
                out.append(frame(kind, flags, sid, block))
        elif kind == 0:  # DATA
            bodies = [b"", b"\0\0\0\0\x03abc", b"\0\0\0\0\x03ab", b"\0\xff\xff\xff\xffa"]
            body = r.choice([*bodies, b"z" * 16384, b"z" * 16385])
            out.append(frame(0, flags, sid, bytes([r.randrange(10)]) + body if flags & 8 else body))
        elif kind == 4:  # SETTINGS
            values = [0, 1, 100, 16384, 65535, 2**31 - 1, 2**31, 2**24]
            payload = b"".join(
                struct.pack(">HL", r.choice([1, 2, 3, 4, 5, 6, 9]), r.choice(values))
                for _ in range(r.randrange(3))
            )
            payload += b"x" if r.random() < 0.1 else b""
            out.append(frame(4, r.choice([0, 0, 1]), r.choice([0, 0, 1]), payload))
        elif kind == 8:  # WINDOW_UPDATE
            increment = struct.pack(">L", r.choice([0, 1, 1000, 2**31 - 1]))
            out.append(frame(8, 0, sid, increment if r.random() < 0.9 else b"abc"))
        else:
            out.append(frame(kind, flags, sid, r.randbytes(r.choice([0, 3, 4, 5, 8, 9]))))
    data = b"".join(out)
    if r.random() < 0.1:
        at = r.randrange(len(data))
        data = data[:at] + bytes([r.randrange(256)]) + data[at + 1 :]
    return data


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["path"] == "/crash":
        raise RuntimeError("the app's own failure")
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for _ in range(3 if scope["path"] == "/stream" else 1):
        await send({"type": "http.response.body", "body": body + b"x" * 20000, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def echo(call: Call, request: bytes) -> bytes:
    return request * 3


async def crash(call: Call, request: bytes) -> bytes:
    raise RuntimeError("the method's own failure")


async def stream(call: Call, request: bytes) -> AsyncIterator[bytes]:
    for _ in range(3):
        yield b"x" * 20000


@pytest.fixture(params=["http", "grpc"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, int, Any]]:
    """A server of each kind: its kind, port, and what tells if it is clean."""
    if request.param == "grpc":
        grpc = Http2Server(
            listening_socket("127.0.0.1", 0), None, max_body_bytes=1 << 16, max_header_bytes=1 << 14
        )
        methods = {"/echo": Method(False, echo), "/crash": Method(False, crash)}
        await grpc.start(methods | {"/stream": Method(True, stream)})
        yield "grpc", grpc.port, lambda: not grpc.connections
        await grpc.stop(0)
        return
    async with plain_http2(app, max_body_bytes=1 << 16) as served:
        yield "http", served.port, lambda: not served.connections and not served.tasks


async def one_client(port: int, data: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        while await asyncio.wait_for(reader.read(1 << 20), 0.3):
            pass
    except (TimeoutError, ConnectionError):
        pass
    writer.close()


async def test_random_traffic_never_breaks_the_server(
    server: tuple[str, int, Any], caplog: pytest.LogCaptureFixture
) -> None:
    kind, port, clean = server
    failures: list[Any] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: failures.append(context))
    caplog.set_level(logging.WARNING)
    r = random.Random(f"fuzz-{kind}")
    cases = [traffic(r, kind == "grpc") for _ in range(CASES)]
    for start in range(0, CASES, AT_ONCE):
        batch = cases[start : start + AT_ONCE]
        await asyncio.gather(*(one_client(port, data) for data in batch))
        errors = [
            record.getMessage()
            for record in caplog.records
            if "own failure" not in str(record.exc_info) and "refused a request" not in record.msg
        ]
        assert not errors and not failures, (start, errors, failures)
    for _ in range(100):  # every connection closed, every task ended
        if clean():
            break
        await asyncio.sleep(0.05)
    assert clean()
    good = hpack.Encoder().encode(
        [(":method", "POST"), (":scheme", "http"), (":path", "/echo"), (":authority", "t")]
        + ([("content-type", "application/grpc"), ("te", "trailers")] if kind == "grpc" else [])
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(PREFACE + frame(4, 0, 0, b"") + frame(1, 4, 1, good))
    writer.write(frame(0, 1, 1, b"\0\0\0\0\x02ok"))
    expected = b"okokok" if kind == "grpc" else b"\x02ok" + b"x" * 100
    answer = b""
    while expected not in answer:
        answer += await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
