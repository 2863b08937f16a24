"""HTTP/2's server side (RFC 9113): frames in, requests out.

A :class:`Wire` parses what a client sends and tells its :class:`Peer` (the
connection: gRPC's :mod:`agent_node.a2a.server.grpc.connection`,
the HTTP app's :mod:`.asgi`) of requests, their data, their ends and resets,
and of new send credit; it frames what the connection answers into
:attr:`Wire.out`. Header blocks are HPACK: the client's are read by the
``hpack`` library (the decoder's dynamic table, Huffman codes); ours are
written by :mod:`.fields`.

Why not ``h2``'s state machine, which this replaced: it cost ~0.1 ms of CPU
per call (an event object per frame, a state machine per stream, checks
of every header's HTTP form) — a fifth of a whole gRPC SendMessage, and the
difference between the gRPC binding and JSON-RPC. What a server needs
is a subset, held here whole:

* the preface, then SETTINGS first; frames up to our SETTINGS_MAX_FRAME_SIZE
  (16 KiB); padding; PRIORITY (read, ignored); unknown frame types ignored;
* stream ids: a client's are odd and increasing; more than
  ``max_streams`` open at once are refused (REFUSED_STREAM);
* a header block is HEADERS then CONTINUATIONs with nothing between; it is
  decoded even for a stream that is refused (the HPACK table must follow);
  one over ``max_header_block`` bytes ends the connection
  (ENHANCE_YOUR_CALM: the CONTINUATION flood);
* flow control both ways: the client's windows are honoured (what may be
  sent now: :meth:`Wire.credit`), ours are replenished as data is read;
  SETTINGS_INITIAL_WINDOW_SIZE changes move open streams' windows;
* PING answered; RST_STREAM and GOAWAY reported.

A breach of the protocol raises :class:`WireError` (the connection error's
code); the connection sends its GOAWAY and hangs up. Stream errors reset
the stream alone.
"""

from __future__ import annotations

import struct
from typing import Protocol

import hpack
import hpack.exceptions

__all__ = ["ErrorCode", "Peer", "Wire", "WireError"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEADER = struct.Struct(">HBBBL")  # length (24 bits: 16 + 8), type, flags, stream id
_SETTING = struct.Struct(">HL")
_U32 = struct.Struct(">L")

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 2, 3, 4, 5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

MAX_FRAME = 16384  # what we accept (the default SETTINGS_MAX_FRAME_SIZE)
MAX_WINDOW = (1 << 31) - 1
#: Our receive windows: a stream's (SETTINGS_INITIAL_WINDOW_SIZE) and the connection's.
STREAM_WINDOW = 1 << 20
CONNECTION_WINDOW = 1 << 24


class ErrorCode:
    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    ENHANCE_YOUR_CALM = 0xB


class WireError(Exception):
    """A connection error: ``code`` goes in the GOAWAY."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Peer(Protocol):
    """What a :class:`Wire` reports to."""

    def on_request(self, sid: int, headers: list[tuple[bytes, bytes]], end: bool) -> None: ...
    def on_data(self, sid: int, data: bytes, end: bool) -> None: ...
    def on_reset(self, sid: int) -> None: ...
    def on_credit(self) -> None: ...
    def on_goaway(self) -> None: ...


class _Stream:
    __slots__ = ("open_remote", "send_window", "unacked")

    def __init__(self, send_window: int) -> None:
        self.open_remote = True
        self.send_window = send_window
        self.unacked = 0  # bytes read since our last WINDOW_UPDATE for it


class Wire:
    """One HTTP/2 server connection's protocol state."""

    def __init__(self, peer: Peer, *, max_streams: int, max_header_block: int) -> None:
        self.peer = peer
        self.max_streams = max_streams
        self.max_header_block = max_header_block
        self.out = bytearray()
        self.streams: dict[int, _Stream] = {}
        self.last_sid = 0  # the highest stream id the client opened
        self._buffer = b""
        self._preface = False
        self._settled = False  # the client's first SETTINGS came
        self._decoder = hpack.Decoder(max_header_list_size=max_header_block)
        self._block: tuple[int, bool, bytearray] | None = None  # a header block in CONTINUATIONs
        self._indexed: dict[bytes, list[tuple[bytes, bytes]]] = {}  # see _decode
        self._send_window = 65535  # the connection's, as the client grants it
        self._initial_window = 65535  # a new stream's, as the client grants it
        self.max_frame = MAX_FRAME  # what the client accepts
        self._unacked = 0  # connection bytes read since our last WINDOW_UPDATE
        self._handlers = {
            DATA: self._data,
            HEADERS: self._headers,
            PRIORITY: self._priority,
            RST_STREAM: self._rst_stream,
            SETTINGS: self._settings,
            PUSH_PROMISE: self._push_promise,
            PING: self._ping,
            GOAWAY: self._goaway,
            WINDOW_UPDATE: self._window_update,
            CONTINUATION: self._continuation,
        }

    def start(self) -> None:
        """Our preface: SETTINGS and the connection's larger window."""
        settings = _SETTING.pack(0x3, self.max_streams)  # MAX_CONCURRENT_STREAMS
        settings += _SETTING.pack(0x4, STREAM_WINDOW)  # INITIAL_WINDOW_SIZE
        settings += _SETTING.pack(0x6, self.max_header_block)  # MAX_HEADER_LIST_SIZE
        self._frame(SETTINGS, 0, 0, settings)
        self._frame(WINDOW_UPDATE, 0, 0, _U32.pack(CONNECTION_WINDOW - 65535))

    # Receiving

    def receive(self, data: bytes) -> None:
        """Read ``data``; raises WireError on a connection error."""
        buffer = self._buffer + data if self._buffer else data
        at = 0
        if not self._preface:
            if len(buffer) < len(PREFACE):
                if not PREFACE.startswith(buffer):
                    raise WireError(ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 preface")
                self._buffer = buffer
                return
            if not buffer.startswith(PREFACE):
                raise WireError(ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 preface")
            self._preface = True
            at = len(PREFACE)
        size = len(buffer)
        while size - at >= 9:
            high, low, kind, flags, sid = _HEADER.unpack_from(buffer, at)
            length = (high << 8) | low
            if length > MAX_FRAME:
                raise WireError(ErrorCode.FRAME_SIZE_ERROR, f"a frame of {length} bytes")
            end = at + 9 + length
            if end > size:
                break
            self._dispatch(kind, flags, sid & MAX_WINDOW, buffer[at + 9 : end])
            at = end
        self._buffer = buffer[at:]

    def _dispatch(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        if not self._settled:
            if kind != SETTINGS or flags & ACK:
                raise WireError(ErrorCode.PROTOCOL_ERROR, "the client's preface lacks SETTINGS")
            self._settled = True
        if self._block is not None and (kind != CONTINUATION or sid != self._block[0]):
            raise WireError(ErrorCode.PROTOCOL_ERROR, "a header block was interrupted")
        handler = self._handlers.get(kind)
        if handler is not None:  # other types are ignored (RFC 9113 §4.1)
            handler(flags, sid, payload)

    def _ping(self, flags: int, sid: int, payload: bytes) -> None:
        if sid or len(payload) != 8:
            raise WireError(ErrorCode.PROTOCOL_ERROR, "a malformed PING")
        if not flags & ACK:
            self._frame(PING, ACK, 0, payload)

    def _rst_stream(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid or len(payload) != 4:
            raise WireError(ErrorCode.PROTOCOL_ERROR, "a malformed RST_STREAM")
        if sid > self.last_sid:
            raise WireError(ErrorCode.PROTOCOL_ERROR, f"RST_STREAM on idle stream {sid}")
        if self.streams.pop(sid, None) is not None:
            self.peer.on_reset(sid)

    def _goaway(self, flags: int, sid: int, payload: bytes) -> None:
        if sid:
            raise WireError(ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream")
        self.peer.on_goaway()

    def _priority(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid or len(payload) != 5:
            raise WireError(ErrorCode.PROTOCOL_ERROR, "a malformed PRIORITY")

    def _push_promise(self, flags: int, sid: int, payload: bytes) -> None:
        raise WireError(ErrorCode.PROTOCOL_ERROR, "a client may not push")

    def _data(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid or sid > self.last_sid:
            raise WireError(ErrorCode.PROTOCOL_ERROR, f"DATA on idle stream {sid}")
        length = len(payload)
        self._unacked += length
        if self._unacked >= CONNECTION_WINDOW // 2:
            self._frame(WINDOW_UPDATE, 0, 0, _U32.pack(self._unacked))
            self._unacked = 0
        stream = self.streams.get(sid)
        if stream is None:
            return  # closed by us (answered or reset): what was in flight is dropped
        if not stream.open_remote:
            return self._reset_stream(sid, ErrorCode.STREAM_CLOSED)
        data = _unpadded(flags, payload)
        end = bool(flags & END_STREAM)
        if end:
            stream.open_remote = False
        else:
            stream.unacked += length
            if stream.unacked >= STREAM_WINDOW // 2:
                self._frame(WINDOW_UPDATE, 0, sid, _U32.pack(stream.unacked))
                stream.unacked = 0
        self.peer.on_data(sid, data, end)

    def _headers(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid % 2:
            raise WireError(ErrorCode.PROTOCOL_ERROR, f"HEADERS on stream {sid}")
        block = _unpadded(flags, payload)
        if flags & PRIORITY_FLAG:
            if len(block) < 5:
                raise WireError(ErrorCode.PROTOCOL_ERROR, "a malformed HEADERS")
            block = block[5:]
        end = bool(flags & END_STREAM)
        if flags & END_HEADERS:
            self._header_block(sid, end, block)
        else:
            self._block = (sid, end, bytearray(block))

    def _continuation(self, flags: int, sid: int, payload: bytes) -> None:
        if self._block is None:
            raise WireError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        _, end, block = self._block
        block += payload
        if len(block) > self.max_header_block:
            raise WireError(ErrorCode.ENHANCE_YOUR_CALM, "a header block over the limit")
        if flags & END_HEADERS:
            self._block = None
            self._header_block(sid, end, bytes(block))

    def _header_block(self, sid: int, end: bool, block: bytes) -> None:
        fields = self._decode(block)
        if sid <= self.last_sid:  # the client's trailers, or a stream closed meanwhile
            stream = self.streams.get(sid)
            if stream is None:
                if not end:  # not late trailers: a new stream, its id not increasing
                    raise WireError(ErrorCode.PROTOCOL_ERROR, f"HEADERS on closed stream {sid}")
                return  # closed by us: what was in flight is dropped (decoded, for HPACK)
            if not stream.open_remote or not end:
                return self._reset_stream(sid, ErrorCode.PROTOCOL_ERROR)
            stream.open_remote = False
            self.peer.on_data(sid, b"", True)  # trailers end the request
            return
        self.last_sid = sid
        if len(self.streams) >= self.max_streams:
            self._frame(RST_STREAM, 0, sid, _U32.pack(ErrorCode.REFUSED_STREAM))
            return
        stream = _Stream(self._initial_window)
        stream.open_remote = not end
        self.streams[sid] = stream
        self.peer.on_request(sid, fields, end)

    def _decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """The fields of a header block. A client repeating a request sends
        a block of table indexes only (every byte >= 0x80: one-byte indexed
        fields), which changes nothing in the table: its fields are kept and
        given again until a block that may change the table is decoded."""
        indexed = bool(block) and min(block) >= 0x80
        if indexed and (known := self._indexed.get(block)) is not None:
            return known
        try:
            fields: list[tuple[bytes, bytes]] = self._decoder.decode(block, raw=True)  # type: ignore[assignment]
        except hpack.exceptions.OversizedHeaderListError:
            raise WireError(ErrorCode.ENHANCE_YOUR_CALM, "a header list over the limit") from None
        except hpack.exceptions.HPACKError as exc:
            raise WireError(ErrorCode.COMPRESSION_ERROR, f"HPACK: {exc}") from None
        if not indexed:
            self._indexed.clear()
        elif len(self._indexed) < 64:
            self._indexed[block] = fields
        return fields

    def _window_update(self, flags: int, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise WireError(ErrorCode.FRAME_SIZE_ERROR, "a malformed WINDOW_UPDATE")
        increment = _U32.unpack(payload)[0] & MAX_WINDOW
        if not sid:
            if not increment:
                raise WireError(ErrorCode.PROTOCOL_ERROR, "a WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise WireError(ErrorCode.FLOW_CONTROL_ERROR, "the window overflowed")
        else:
            if sid > self.last_sid:
                raise WireError(ErrorCode.PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {sid}")
            stream = self.streams.get(sid)
            if stream is None:
                return
            if not increment:
                return self._reset_stream(sid, ErrorCode.PROTOCOL_ERROR)
            stream.send_window += increment
            if stream.send_window > MAX_WINDOW:
                return self._reset_stream(sid, ErrorCode.FLOW_CONTROL_ERROR)
        self.peer.on_credit()

    def _settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid:
            raise WireError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise WireError(ErrorCode.FRAME_SIZE_ERROR, "a SETTINGS ack with a payload")
            return
        if len(payload) % 6:
            raise WireError(ErrorCode.FRAME_SIZE_ERROR, "a malformed SETTINGS")
        for at in range(0, len(payload), 6):
            key, value = _SETTING.unpack_from(payload, at)
            if key == 0x2 and value > 1:
                raise WireError(ErrorCode.PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH > 1")
            if key == 0x4:  # INITIAL_WINDOW_SIZE: open streams' windows move with it
                if value > MAX_WINDOW:
                    raise WireError(ErrorCode.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too big")
                delta, self._initial_window = value - self._initial_window, value
                for stream in self.streams.values():
                    stream.send_window += delta
            elif key == 0x5:
                if not MAX_FRAME <= value <= (1 << 24) - 1:
                    raise WireError(ErrorCode.PROTOCOL_ERROR, f"MAX_FRAME_SIZE {value}")
                self.max_frame = value
        self._frame(SETTINGS, ACK, 0, b"")
        self.peer.on_credit()

    # Sending

    def credit(self, sid: int) -> int:
        """Bytes of DATA ``sid`` may send now (0: wait for :meth:`Peer.on_credit`)."""
        stream = self.streams.get(sid)
        if stream is None:
            return 0
        return min(self._send_window, stream.send_window, self.max_frame)

    def send_headers(self, sid: int, block: bytes, end: bool = False) -> None:
        flags = END_STREAM if end else 0
        if len(block) <= self.max_frame:
            self._frame(HEADERS, flags | END_HEADERS, sid, block)
        else:
            step = self.max_frame
            self._frame(HEADERS, flags, sid, block[:step])
            for at in range(step, len(block), step):
                last = at + step >= len(block)
                self._frame(CONTINUATION, END_HEADERS if last else 0, sid, block[at : at + step])
        if end:
            self._closed_locally(sid)

    def send_data(self, sid: int, data: bytes, end: bool = False) -> None:
        """Send ``data`` (at most :meth:`credit` bytes); ``end``: the last of the stream."""
        stream = self.streams[sid]
        stream.send_window -= len(data)
        self._send_window -= len(data)
        self._frame(DATA, END_STREAM if end else 0, sid, data)
        if end:
            self._closed_locally(sid)

    def reset(self, sid: int, code: int) -> None:
        """End ``sid`` with RST_STREAM (``NO_ERROR`` once answered: stop sending)."""
        self._frame(RST_STREAM, 0, sid, _U32.pack(code))
        self.streams.pop(sid, None)

    def forget(self, sid: int) -> None:
        """Drop ``sid`` unanswered: a stream opened past our GOAWAY's last,
        which its client knows was not served (a reset now would be an error
        to clients whose connection the GOAWAY closed, as h2's)."""
        self.streams.pop(sid, None)

    def open_remotely(self, sid: int) -> bool:
        stream = self.streams.get(sid)
        return stream is not None and stream.open_remote

    def goaway(self, code: int = ErrorCode.NO_ERROR) -> None:
        self._frame(GOAWAY, 0, 0, _U32.pack(self.last_sid) + _U32.pack(code))

    def _closed_locally(self, sid: int) -> None:
        stream = self.streams.get(sid)
        if stream is not None and not stream.open_remote:
            del self.streams[sid]

    def _refuse(self, sid: int, code: int) -> None:
        self._frame(RST_STREAM, 0, sid, _U32.pack(code))
        self.streams.pop(sid, None)

    def _reset_stream(self, sid: int, code: int) -> None:
        self._refuse(sid, code)
        self.peer.on_reset(sid)

    def _frame(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        length = len(payload)
        self.out += _HEADER.pack(length >> 8, length & 0xFF, kind, flags, sid)
        self.out += payload


def _unpadded(flags: int, payload: bytes) -> bytes:
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise WireError(ErrorCode.PROTOCOL_ERROR, "padding longer than its frame")
    return payload[1 : len(payload) - payload[0]]
