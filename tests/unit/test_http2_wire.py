"""agent_node.http2.wire: what a connection's fault in reading one stream
does to the others (nothing)."""

from __future__ import annotations

import logging
import struct

import hpack
import pytest

from agent_node.http2.frames import PREFACE, ErrorCode
from agent_node.http2.wire import Wire

HEADERS, RST_STREAM, SETTINGS = 1, 3, 4
END_STREAM, END_HEADERS = 0x1, 0x4


def frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    length = len(payload)
    return struct.pack(">HBBBL", length >> 8, length & 0xFF, kind, flags, sid) + payload


def frames(data: bytes) -> list[tuple[int, int, bytes]]:
    found = []
    while data:
        high, low, kind, _, sid = struct.unpack_from(">HBBBL", data)
        length = (high << 8) | low
        found.append((kind, sid, data[9 : 9 + length]))
        data = data[9 + length :]
    return found


class Peer:
    """A connection whose reading of a request marked ``x-bug`` fails."""

    def __init__(self) -> None:
        self.requests: list[int] = []
        self.resets: list[int] = []

    def on_request(self, sid: int, headers: list[tuple[bytes, bytes]], end: bool) -> None:
        if (b"x-bug", b"1") in headers:
            raise ValueError("a bug")
        self.requests.append(sid)

    def on_data(self, sid: int, data: bytes, end: bool) -> None:
        pass

    def on_reset(self, sid: int) -> None:
        self.resets.append(sid)

    def on_credit(self) -> None:
        pass

    def on_goaway(self) -> None:
        pass


def test_a_fault_reading_one_stream_resets_that_stream_and_the_connection_reads_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    peer = Peer()
    wire = Wire(peer, max_streams=10, max_header_block=1 << 16)
    encoder = hpack.Encoder()
    request = [(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", "t")]
    flags = END_HEADERS | END_STREAM
    with caplog.at_level(logging.ERROR):
        wire.receive(
            PREFACE
            + frame(SETTINGS, 0, 0, b"")
            + frame(HEADERS, flags, 1, encoder.encode([*request, ("x-bug", "1")]))
            + frame(HEADERS, flags, 3, encoder.encode(request))
        )
    assert peer.requests == [3]
    assert peer.resets == [1]
    resets = [
        (sid, payload) for kind, sid, payload in frames(bytes(wire.out)) if kind == RST_STREAM
    ]
    assert resets == [(1, struct.pack(">L", ErrorCode.INTERNAL_ERROR))]
    assert [r.exc_info is not None for r in caplog.records] == [True]  # our bug: its traceback
