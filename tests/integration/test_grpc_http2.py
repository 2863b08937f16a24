"""The gRPC server's HTTP/2 side (agent_node.a2a.server.grpc.http2), on a real
socket, with methods of its own: grpcio's client for what clients do (calls,
errors, deadlines, cancels, compression, big streams, stops), and a raw h2
client for what they should not (wrong methods and types, floods, garbage).
The A2A service over it is tests/integration/test_grpc.py's."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

grpc = pytest.importorskip("grpc")
h2_connection = pytest.importorskip("h2.connection")

import h2.events  # noqa: E402
from support.h2_client import Raw, framed  # noqa: E402

from agent_node.a2a.server.grpc.calls import Call, Method  # noqa: E402
from agent_node.a2a.server.grpc.server import Http2Server  # noqa: E402
from agent_node.a2a.server.grpc.status import Code, RpcError  # noqa: E402
from agent_node.transport import listening_socket  # noqa: E402

Code_ = grpc.StatusCode


class Toy:
    """Methods that echo, wait, stream, fail and crash, and what they saw."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.release = asyncio.Event()
        self.cancelled = 0

    def methods(self) -> dict[str, Method]:
        return {
            "/t.T/Echo": Method(False, self.echo),
            "/t.T/Slow": Method(False, self.slow),
            "/t.T/Stream": Method(True, self.stream),
            "/t.T/Fail": Method(False, self.fail),
            "/t.T/Crash": Method(False, self.crash),
        }

    async def echo(self, call: Call, request: bytes) -> bytes:
        self.calls.append(call)
        return request

    async def slow(self, call: Call, request: bytes) -> bytes:
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return b"done"

    async def stream(self, call: Call, request: bytes) -> AsyncIterator[bytes]:
        count, size = (int(n) for n in request.split(b":"))
        for index in range(count):
            yield bytes([index % 256]) * size

    async def fail(self, call: Call, request: bytes) -> bytes:
        raise RpcError(Code.NOT_FOUND, "no such thing ✓ 100%", b"\x08\x05")

    async def crash(self, call: Call, request: bytes) -> bytes:
        raise ValueError("a bug")


Serve = Callable[..., Any]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[Http2Server] = []

    async def start(toy: Toy, **options: Any) -> Http2Server:
        options = {"max_body_bytes": 1 << 20, "max_header_bytes": 8192, **options}
        server = Http2Server(listening_socket("127.0.0.1", 0), None, **options)
        await server.start(toy.methods())
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop(0)


def unary(channel: Any, path: str) -> Any:
    return channel.unary_unary(path, request_serializer=None, response_deserializer=None)


def channel(server: Http2Server, **options: Any) -> Any:
    return grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", **options)


async def failure(call: Any) -> Any:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


# What clients do


async def test_a_call_reaches_its_method_with_its_metadata(serve: Serve) -> None:
    toy = Toy()
    server = await serve(toy)
    async with channel(server) as ch:
        answer = await unary(ch, "/t.T/Echo")(b"hello", metadata=(("x-key", "v1"),))
        assert answer == b"hello"
        assert await unary(ch, "/t.T/Echo")(b"") == b""  # an empty message is a message
    assert toy.calls[0].method == "Echo"
    assert toy.calls[0].metadata["x-key"] == "v1"
    assert toy.calls[0].client is not None and toy.calls[0].certificate is None


async def test_errors_are_statuses_with_their_details_and_a_crash_is_internal(
    serve: Serve,
) -> None:
    server = await serve(Toy())
    async with channel(server) as ch:
        failed = await failure(unary(ch, "/t.T/Fail")(b"x"))
        assert failed.code() == Code_.NOT_FOUND
        assert failed.details() == "no such thing ✓ 100%"  # percent-encoded on the wire
        trailers = dict(failed.trailing_metadata() or ())
        assert trailers["grpc-status-details-bin"] == b"\x08\x05"
        crashed = await failure(unary(ch, "/t.T/Crash")(b"x"))
        assert (crashed.code(), crashed.details()) == (Code_.INTERNAL, "internal error")
        unknown = await failure(unary(ch, "/t.T/Nope")(b"x"))
        assert unknown.code() == Code_.UNIMPLEMENTED
        assert await unary(ch, "/t.T/Echo")(b"still here") == b"still here"


async def test_a_deadline_or_a_cancel_cancels_the_method(serve: Serve) -> None:
    toy = Toy()
    server = await serve(toy)
    async with channel(server) as ch:
        late = await failure(unary(ch, "/t.T/Slow")(b"x", timeout=0.2))
        assert late.code() == Code_.DEADLINE_EXCEEDED
        call = unary(ch, "/t.T/Slow")(b"x")
        await asyncio.sleep(0.2)
        call.cancel()
        for _ in range(100):
            if toy.cancelled == 2:
                break
            await asyncio.sleep(0.02)
        assert toy.cancelled == 2


async def test_a_stream_bigger_than_every_window_arrives_whole(serve: Serve) -> None:
    server = await serve(Toy())
    async with channel(server) as ch:
        stream = ch.unary_stream("/t.T/Stream", request_serializer=None, response_deserializer=None)
        got = [message async for message in stream(b"40:200000")]  # 8 MB, windows of 64 KiB
    assert [len(m) for m in got] == [200000] * 40
    assert all(m == bytes([i]) * 200000 for i, m in enumerate(got))


async def test_gzip_requests_are_read_and_limits_hold_after_inflating(serve: Serve) -> None:
    server = await serve(Toy(), max_body_bytes=4096)
    async with channel(server, compression=grpc.Compression.Gzip) as ch:
        assert await unary(ch, "/t.T/Echo")(b"z" * 3000) == b"z" * 3000
        bomb = await failure(unary(ch, "/t.T/Echo")(b"z" * 100_000))  # gzips to ~200 bytes
        assert bomb.code() == Code_.RESOURCE_EXHAUSTED
    async with channel(server) as ch:
        big = await failure(unary(ch, "/t.T/Echo")(b"x" * 5000))
        assert big.code() == Code_.RESOURCE_EXHAUSTED
        assert await unary(ch, "/t.T/Echo")(b"x" * 4000) == b"x" * 4000


async def test_a_stop_lets_calls_finish_within_the_grace_and_ends_the_rest(serve: Serve) -> None:
    toy = Toy()
    server = await serve(toy)
    async with channel(server) as ch:
        finishing = asyncio.ensure_future(unary(ch, "/t.T/Slow")(b"x"))
        await asyncio.sleep(0.2)
        stopping = asyncio.create_task(server.stop(5))
        await asyncio.sleep(0.2)
        toy.release.set()
        assert await finishing == b"done"
        await asyncio.wait_for(stopping, 5)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()

    toy = Toy()
    server = await serve(toy)
    async with channel(server) as ch:
        cut = asyncio.ensure_future(unary(ch, "/t.T/Slow")(b"x"))
        await asyncio.sleep(0.2)
        await asyncio.wait_for(server.stop(0.2), 5)
        ended = await failure(cut)
        assert ended.code() == Code_.UNAVAILABLE and "stopping" in ended.details()


# What clients should not do: a raw HTTP/2 client


async def test_what_is_not_a_grpc_call_is_refused_and_the_connection_lives_on(
    serve: Serve,
) -> None:
    server = await serve(Toy())
    raw = await Raw.open(server.port)
    get = raw.request("/t.T/Echo", None, **{":method": "GET"})
    assert (await raw.answer(get))[":status"] == "405"
    text = raw.request("/t.T/Echo", framed(b"x"), content_type="text/plain")
    assert (await raw.answer(text))[":status"] == "415"
    json = raw.request("/t.T/Echo", framed(b"x"), content_type="application/grpc+json")
    assert (await raw.answer(json))["grpc-status"] == str(Code.UNIMPLEMENTED)
    brotli = raw.request("/t.T/Echo", framed(b"x"), grpc_encoding="br")
    refused = await raw.answer(brotli)
    assert refused["grpc-status"] == str(Code.UNIMPLEMENTED)
    assert refused["grpc-accept-encoding"] == "identity,gzip"
    two = raw.request("/t.T/Echo", framed(b"a", b"b"))
    assert (await raw.answer(two))["grpc-status"] == str(Code.INTERNAL)
    none = raw.request("/t.T/Echo", b"")
    assert (await raw.answer(none))["grpc-status"] == str(Code.INTERNAL)
    bad_timeout = raw.request("/t.T/Echo", framed(b"x"), grpc_timeout="soon")
    assert (await raw.answer(bad_timeout))["grpc-status"] == str(Code.INTERNAL)
    fine = raw.request("/t.T/Echo", framed(b"ok"), grpc_timeout="5S")
    answered = await raw.answer(fine)
    assert (answered[":status"], answered["grpc-status"]) == ("200", "0")
    await raw.close()


async def test_garbage_closes_its_connection_only(serve: Serve) -> None:
    server = await serve(Toy())
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 10)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) is not None  # read to EOF: closed
    writer.close()
    await writer.wait_closed()
    async with channel(server) as ch:
        assert await unary(ch, "/t.T/Echo")(b"fine") == b"fine"


async def test_a_reset_flood_ends_the_connection(serve: Serve) -> None:
    toy = Toy()
    server = await serve(toy)
    raw = await Raw.open(server.port)
    for _ in range(400):
        sid = raw.request("/t.T/Slow", framed(b"x"))
        raw.h2.reset_stream(sid)
    raw.flush()
    events = await raw.closed()
    await raw.close()
    goaway = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway and goaway[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    async with channel(server) as ch:  # others are served
        assert await unary(ch, "/t.T/Echo")(b"fine") == b"fine"


async def test_an_idle_connection_is_closed_politely_and_clients_come_back(
    serve: Serve,
) -> None:
    server = await serve(Toy(), idle_close=0.3)
    raw = await Raw.open(server.port)
    events = await raw.closed()
    await raw.close()
    goaway = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway and goaway[0].error_code == h2.errors.ErrorCodes.NO_ERROR
    async with channel(server) as ch:
        assert await unary(ch, "/t.T/Echo")(b"one") == b"one"
        await asyncio.sleep(0.8)  # closed meanwhile
        assert await unary(ch, "/t.T/Echo")(b"two") == b"two"


async def test_a_grpc_timeout_in_unicode_digits_fails_its_call_alone(serve: Serve) -> None:
    """'²' passes str.isdigit() and not int(): the call is answered INTERNAL
    (as grpc-go answers a malformed grpc-timeout), not the connection ended
    with the other calls on it."""
    toy = Toy()
    server = await serve(toy)
    raw = await Raw.open(server.port)
    slow = raw.request("/t.T/Slow", framed(b"x"))
    bad = raw.request("/t.T/Echo", framed(b"x"), grpc_timeout=b"\xb2S")  # type: ignore[arg-type]
    refused = await asyncio.wait_for(raw.answer(bad), 10)
    assert refused["grpc-status"] == str(Code.INTERNAL)
    assert refused["grpc-message"].startswith("grpc-timeout")
    toy.release.set()
    answered = await raw.answer(slow)
    assert (answered[":status"], answered["grpc-status"]) == ("200", "0")
    await raw.close()
