"""HTTP/2 as the gRPC server reads it (agent_node.http2.wire), on a
real socket: what RFC 9113 lets a client do that grpcio's client seldom does
(CONTINUATION, padding, priorities, pings, trailers, new settings), and the
breaches that must end a connection with the right GOAWAY — never the server."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("h2")
pytest.importorskip("hpack")

import h2.errors
import h2.events
import h2.settings
import hpack
from support.h2_client import Raw, framed

from agent_node.a2a.server.grpc.calls import Call, Method
from agent_node.a2a.server.grpc.server import Http2Server
from agent_node.http2.frames import PREFACE
from agent_node.transport import listening_socket

Errors = h2.errors.ErrorCodes


async def echo(call: Call, request: bytes) -> bytes:
    return request + call.metadata.get("x-tail", "").encode()


async def stream(call: Call, request: bytes) -> AsyncIterator[bytes]:
    count, size = (int(n) for n in request.split(b":"))
    for index in range(count):
        yield bytes([65 + index % 26]) * size


@pytest.fixture
async def server() -> AsyncIterator[Http2Server]:
    served = Http2Server(
        listening_socket("127.0.0.1", 0), None, max_body_bytes=1 << 20, max_header_bytes=1 << 16
    )
    await served.start({"/t.T/Echo": Method(False, echo), "/t.T/Stream": Method(True, stream)})
    yield served
    await served.stop(0)


def body_of(raw: Raw, sid: int) -> bytes:
    return b"".join(
        e.data for e in raw.events if isinstance(e, h2.events.DataReceived) and e.stream_id == sid
    )


async def still_serves(server: Http2Server) -> None:
    raw = await Raw.open(server.port)
    sid = raw.request("/t.T/Echo", framed(b"alive"))
    assert (await raw.answer(sid))["grpc-status"] == "0"
    assert body_of(raw, sid) == framed(b"alive")
    await raw.close()


async def test_big_metadata_arrives_in_continuation_frames(server: Http2Server) -> None:
    raw = await Raw.open(server.port)
    tail = "t" * 40_000  # a header block of more than two 16 KiB frames
    sid = raw.request("/t.T/Echo", framed(b"x"), x_tail=tail)
    assert (await raw.answer(sid))["grpc-status"] == "0"
    assert body_of(raw, sid) == framed(b"x" + tail.encode())
    await raw.close()


async def test_padding_priorities_pings_and_client_trailers(server: Http2Server) -> None:
    raw = await Raw.open(server.port)
    sid = raw.h2.get_next_available_stream_id()
    fields = [(":method", "POST"), (":scheme", "http"), (":path", "/t.T/Echo")]
    fields += [(":authority", "t"), ("content-type", "application/grpc")]
    raw.h2.send_headers(sid, fields, priority_weight=200, priority_depends_on=0)
    raw.h2.prioritize(sid, weight=10)  # a PRIORITY frame
    raw.h2.send_data(sid, framed(b"pad")[:3], pad_length=20)
    raw.h2.send_data(sid, framed(b"pad")[3:], pad_length=3)
    raw.h2.send_headers(sid, [("x-trailer", "1")], end_stream=True)  # the client's trailers
    raw.h2.ping(b"12345678")
    raw.flush()
    assert (await raw.answer(sid))["grpc-status"] == "0"
    assert body_of(raw, sid) == framed(b"pad")
    while not any(isinstance(e, h2.events.PingAckReceived) for e in raw.events):
        await raw.read()
    await raw.close()


async def test_a_stream_follows_the_client_s_windows_as_its_settings_change(
    server: Http2Server,
) -> None:
    raw = await Raw.open(server.port)
    raw.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    raw.flush()
    sid = raw.request("/t.T/Stream", framed(b"30:5000"))  # 150 KB through 1000-byte windows
    answer = await raw.answer(sid)
    assert answer["grpc-status"] == "0"
    data = body_of(raw, sid)
    assert data == b"".join(framed(bytes([65 + i % 26]) * 5000) for i in range(30))
    frames = [e for e in raw.events if isinstance(e, h2.events.DataReceived)]
    assert max(len(e.data) for e in frames) <= 1000
    await raw.close()


def frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    length = len(payload)
    return struct.pack(">HBBBL", length >> 8, length & 0xFF, kind, flags, sid) + payload


SETTINGS = frame(4, 0, 0, b"")
REQUEST = hpack.Encoder().encode(
    [(":method", "POST"), (":scheme", "http"), (":path", "/t.T/Echo"), (":authority", "t")]
)


async def goaway_after(server: Http2Server, data: bytes) -> int | None:
    """The GOAWAY error code the server answers ``data`` with (None: none came)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(data)
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 5):
            received += chunk
    except ConnectionError:
        pass
    writer.close()
    code = None
    at = 0
    while at + 9 <= len(received):
        high, low, kind, _, _ = struct.unpack_from(">HBBBL", received, at)
        length = (high << 8) | low
        if kind == 7:
            code = struct.unpack_from(">L", received, at + 13)[0]
        at += 9 + length
    return code


@pytest.mark.parametrize(
    ("case", "data", "code"),
    [
        ("no settings first", PREFACE + frame(6, 0, 0, b"8 bytes!"), Errors.PROTOCOL_ERROR),
        (
            "frame too big",
            PREFACE + SETTINGS + frame(0, 0, 1, b"x" * 16385),
            Errors.FRAME_SIZE_ERROR,
        ),
        (
            "interrupted header block",
            PREFACE + SETTINGS + frame(1, 0, 1, REQUEST) + frame(6, 0, 0, b"8 bytes!"),
            Errors.PROTOCOL_ERROR,
        ),
        ("even stream id", PREFACE + SETTINGS + frame(1, 4, 2, REQUEST), Errors.PROTOCOL_ERROR),
        (
            "stream ids going back",
            PREFACE + SETTINGS + frame(1, 4, 5, REQUEST) + frame(1, 4, 3, REQUEST),
            Errors.PROTOCOL_ERROR,
        ),
        (
            "HPACK garbage",
            PREFACE + SETTINGS + frame(1, 4, 1, b"\xff\xff\xff\xff"),
            Errors.COMPRESSION_ERROR,
        ),
        (
            "DATA on an idle stream",
            PREFACE + SETTINGS + frame(0, 1, 7, b"x"),
            Errors.PROTOCOL_ERROR,
        ),
        (
            "a client push",
            PREFACE + SETTINGS + frame(5, 4, 1, b"\x00\x00\x00\x02"),
            Errors.PROTOCOL_ERROR,
        ),
        (
            "window of 0",
            PREFACE + SETTINGS + frame(8, 0, 0, b"\x00\x00\x00\x00"),
            Errors.PROTOCOL_ERROR,
        ),
        (
            "window overflow",
            PREFACE + SETTINGS + frame(8, 0, 0, b"\x7f\xff\xff\xff"),
            Errors.FLOW_CONTROL_ERROR,
        ),
        (
            "bad settings",
            PREFACE + frame(4, 0, 0, b"\x00\x04\xff\xff\xff\xff"),
            Errors.FLOW_CONTROL_ERROR,
        ),
        (
            "bad padding",
            PREFACE + SETTINGS + frame(1, 0xC, 1, b"\x09" + REQUEST[:4]),
            Errors.PROTOCOL_ERROR,
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_a_breach_ends_its_connection_with_the_right_goaway(
    server: Http2Server, case: str, data: bytes, code: int
) -> None:
    assert await goaway_after(server, data) == code
    await still_serves(server)


async def test_what_is_not_http2_is_hung_up_on(server: Http2Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 5) is not None
    writer.close()
    await still_serves(server)


async def test_a_continuation_flood_is_cut(server: Http2Server) -> None:
    flood = PREFACE + SETTINGS + frame(1, 0, 1, REQUEST)
    flood += frame(9, 0, 1, b"\x40\x01a\x01b" * 3000) * 20  # no END_HEADERS, ever
    assert await goaway_after(server, flood) == Errors.ENHANCE_YOUR_CALM
    await still_serves(server)


async def test_what_a_client_sends_on_a_stream_already_answered_is_dropped(
    server: Http2Server,
) -> None:
    raw = await Raw.open(server.port)
    sid = raw.request("/t.T/Nope", None)  # headers only: the body would follow
    assert (await raw.answer(sid))["grpc-status"] == "12"  # answered, and reset: stop sending
    raw.writer.write(frame(0, 1, sid, framed(b"late")))  # in flight meanwhile
    second = raw.request("/t.T/Echo", framed(b"two"))
    assert (await raw.answer(second))["grpc-status"] == "0"
    assert not [e for e in raw.events if isinstance(e, h2.events.ConnectionTerminated)]
    await raw.close()


def string(value: bytes) -> bytes:
    return bytes([len(value)]) + value  # HPACK string literal, no Huffman, < 127 bytes


async def answers(server: Http2Server, blocks: list[bytes]) -> list[dict[bytes, bytes]]:
    """Send each header block as a request (with a one-message body) and
    read the answers' headers and trailers, by request (a reset: its code
    as ``:reset``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    data = PREFACE + SETTINGS
    for index, block in enumerate(blocks):
        sid = 2 * index + 1
        data += frame(1, 4, sid, block) + frame(0, 1, sid, framed(b"x"))
    writer.write(data)
    decoder = hpack.Decoder()
    fields: dict[int, dict[bytes, bytes]] = {}
    ended: set[int] = set()
    received = b""
    while len(ended) < len(blocks):
        received += await asyncio.wait_for(reader.read(65536), 5)
        while len(received) >= 9:
            high, low, kind, flags, sid = struct.unpack_from(">HBBBL", received)
            length = (high << 8) | low
            if len(received) < 9 + length:
                break
            payload, received = received[9 : 9 + length], received[9 + length :]
            if kind == 1:
                fields.setdefault(sid, {}).update(decoder.decode(payload, raw=True))
                if flags & 1:
                    ended.add(sid)
            elif kind == 3:
                fields[sid] = {b":reset": str(struct.unpack(">L", payload)[0]).encode()}
                ended.add(sid)
    writer.close()
    return [fields[2 * index + 1] for index in range(len(blocks))]


async def test_repeated_indexed_header_blocks_follow_the_table_as_it_changes(
    server: Http2Server,
) -> None:
    """A block of indexes only is read once and its fields reused while the
    HPACK table stays as it was; once a block changes the table, the same
    bytes mean other fields and are read again."""
    first = b"\x83\x86\x44" + string(b"/t.T/Echo") + b"\x41" + string(b"t")
    first += b"\x5f" + string(b"application/grpc") + b"\x40" + string(b"x-tail") + string(b"one")
    indexes = b"\x83\x86\xc1\xc0\xbf\xbe"  # :path, :authority, content-type, x-tail: one
    moving = b"\x83\x86\xc1\xc0\xbf\x40" + string(b"x-tail") + string(b"two")  # shifts them
    replies = await answers(server, [first, indexes, indexes, moving, indexes])
    assert [r[b"grpc-status"] for r in replies[:4]] == [b"0"] * 4
    # Now 65 is :authority and 62 x-tail: two: no :path, a malformed request,
    # reset with PROTOCOL_ERROR (1) before the binding sees it.
    assert replies[4] == {b":reset": b"1"}
    await still_serves(server)
