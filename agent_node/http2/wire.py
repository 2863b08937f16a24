"""HTTP/2's server side (RFC 9113): frames in, requests out.

A :class:`Wire` parses what a client sends and tells its :class:`Peer` (the
connection: gRPC's :mod:`agent_node.a2a.server.grpc.connection`,
the HTTP app's :mod:`.asgi`) of requests, their data, their ends and resets,
and of new send credit; its sending half (:mod:`.sender`) frames what the
connection answers into :attr:`Wire.out`. Header blocks are HPACK: the
client's are read and checked by :mod:`.messages`; ours are written by
:mod:`.fields`; the frames' vocabulary is :mod:`.frames`.

Why not ``h2``'s state machine, which this replaced: it cost ~0.1 ms of CPU
per call (an event object per frame, a state machine per stream, its
header checks run field by field in Python) — a fifth of a whole gRPC
SendMessage, and the difference between the gRPC binding and JSON-RPC.
What a server needs is a subset, held here whole (h2spec's 147 cases,
strict ones included, pass):

* the preface, then SETTINGS first; frames up to our SETTINGS_MAX_FRAME_SIZE
  (16 KiB); padding; PRIORITY (read, ignored); unknown frame types ignored;
* stream ids: a client's are odd and increasing; more than
  ``max_streams`` open at once are refused (REFUSED_STREAM);
* stream states: frames on a stream we reset are ignored (the client may
  have sent them before it knew); DATA or HEADERS on a stream the client
  ended or reset, or on one it skipped, are errors (STREAM_CLOSED,
  PROTOCOL_ERROR); a stream may not depend on itself;
* requests: malformed ones are reset (:mod:`.messages`), as is one whose
  body is not as long as its ``content-length``;
* a header block is HEADERS then CONTINUATIONs with nothing between; it is
  decoded even for a stream that is refused (the HPACK table must follow);
  one over ``max_header_block`` bytes, or in more CONTINUATIONs than
  :attr:`Wire.max_continuations`, ends the connection (ENHANCE_YOUR_CALM:
  the CONTINUATION floods, CVE-2023-45288 and its kin);
* more than :data:`EMPTY_FRAMES` frames that carry nothing in a row (empty
  DATA, PRIORITY, unknown types: :meth:`Wire._nothing`) end the connection
  (ENHANCE_YOUR_CALM: CVE-2019-9518); an empty DATA is not even reported;
* flow control both ways: the client's windows are honoured (what may be
  sent now: :meth:`Wire.credit`), ours are replenished as data is read;
  SETTINGS_INITIAL_WINDOW_SIZE changes move open streams' windows;
* PING answered; RST_STREAM and GOAWAY reported.

A breach of the protocol raises :class:`WireError` (the connection error's
code); the connection sends its GOAWAY and hangs up. Stream errors reset
the stream alone, and so does a fault of the connection's in reading one
stream's frames (INTERNAL_ERROR, logged): what a frame carries never ends
the connection's other streams.
"""

from __future__ import annotations

import logging
from typing import Protocol

from agent_node.http2.frames import (
    ACK,
    CONNECTION_WINDOW,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADER,
    HEADERS,
    MAX_FRAME,
    MAX_WINDOW,
    PING,
    PREFACE,
    PRIORITY,
    PRIORITY_FLAG,
    PUSH_PROMISE,
    RST_STREAM,
    SETTING,
    SETTINGS,
    STREAM_WINDOW,
    U32,
    WINDOW_UPDATE,
    ErrorCode,
    WireError,
    unpadded,
)
from agent_node.http2.messages import MALFORMED, HeaderReader, Malformed, trailer_fields
from agent_node.http2.sender import Sender, Stream

__all__ = ["Peer", "Wire"]

log = logging.getLogger(__name__)

#: How many runs of stream ids a client skipped are remembered (older ones
#: count as opened and closed: STREAM_CLOSED, not PROTOCOL_ERROR).
SKIPS_REMEMBERED = 32


class Peer(Protocol):
    """What a :class:`Wire` reports to."""

    def on_request(self, sid: int, headers: list[tuple[bytes, bytes]], end: bool) -> None: ...
    def on_data(self, sid: int, data: bytes, end: bool) -> None: ...
    def on_reset(self, sid: int) -> None: ...
    def on_credit(self) -> None: ...
    def on_goaway(self) -> None: ...


#: Bytes of a request body answered unread that are let in and dropped, at
#: most (see :meth:`Wire.drains`).
DRAIN_BYTES = 16 << 20
#: What a frame of such a body counts for against DRAIN_BYTES, at least: a
#: frame costs CPU whatever it holds, so tiny ones are stopped after 16 Ki.
DRAIN_FRAME_BYTES = 1024
#: Frames that carry nothing a client may send with no request or body
#: between; no client's habit (a few PRIORITY frames, an empty DATA) nears it.
EMPTY_FRAMES = 100
#: CONTINUATIONs a header block may have, at least (nghttp2 allows 8).
CONTINUATIONS = 16


class Wire(Sender):
    """One HTTP/2 server connection's protocol state: what it reads, and
    (a :class:`Sender`) what it sends."""

    def __init__(self, peer: Peer, *, max_streams: int, max_header_block: int) -> None:
        super().__init__(max_streams=max_streams, max_header_block=max_header_block)
        self.peer = peer
        self._buffer = b""
        self._preface = False
        self._settled = False  # the client's first SETTINGS came
        self._headers_in = HeaderReader(max_header_block)
        #: CONTINUATIONs a header block may have: room for one of max_header_block in full frames.
        self.max_continuations = max(CONTINUATIONS, max_header_block // MAX_FRAME)
        #: A header block in CONTINUATIONs: stream, END_STREAM, the block, self-dependent.
        self._block: tuple[int, bool, bytearray, bool] | None = None
        self._continuations = 0  # of the header block in progress
        self._empty = 0  # frames that carried nothing since the last request or body
        self._skipped: list[tuple[int, int]] = []  # runs of ids the client never opened
        self._initial_window = 65535  # a new stream's, as the client grants it
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
            high, low, kind, flags, sid = HEADER.unpack_from(buffer, at)
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
        if handler is None:  # other types are ignored (RFC 9113 §4.1)
            return self._nothing()
        try:
            handler(flags, sid, payload)
        except WireError:
            raise
        except Exception:  # our fault: one stream's ends that stream alone
            log.exception("HTTP/2 frame of type %d on stream %d: reading it failed", kind, sid)
            if not sid:
                raise WireError(ErrorCode.INTERNAL_ERROR, "an internal error") from None
            self._reset_stream(sid, ErrorCode.INTERNAL_ERROR)

    def _ping(self, flags: int, sid: int, payload: bytes) -> None:
        if sid:
            raise WireError(ErrorCode.PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise WireError(ErrorCode.FRAME_SIZE_ERROR, "a PING not of 8 bytes")
        if not flags & ACK:
            self._frame(PING, ACK, 0, payload)

    def _rst_stream(self, flags: int, sid: int, payload: bytes) -> None:
        if self._idle(sid):
            raise WireError(ErrorCode.PROTOCOL_ERROR, f"RST_STREAM on idle stream {sid}")
        if len(payload) != 4:
            raise WireError(ErrorCode.FRAME_SIZE_ERROR, "a RST_STREAM not of 4 bytes")
        if self.streams.pop(sid, None) is not None:  # later DATA on it: STREAM_CLOSED
            self.peer.on_reset(sid)

    def _goaway(self, flags: int, sid: int, payload: bytes) -> None:
        if sid:
            raise WireError(ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream")
        self.peer.on_goaway()

    def _priority(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid:
            raise WireError(ErrorCode.PROTOCOL_ERROR, "PRIORITY on stream 0")
        if len(payload) != 5:
            return self._reset_stream(sid, ErrorCode.FRAME_SIZE_ERROR)
        if U32.unpack_from(payload)[0] & MAX_WINDOW == sid:
            return self._reset_stream(sid, ErrorCode.PROTOCOL_ERROR)  # depends on itself
        self._nothing()  # read, and ignored

    def _push_promise(self, flags: int, sid: int, payload: bytes) -> None:
        raise WireError(ErrorCode.PROTOCOL_ERROR, "a client may not push")

    def _data(self, flags: int, sid: int, payload: bytes) -> None:
        if self._idle(sid):
            raise WireError(ErrorCode.PROTOCOL_ERROR, f"DATA on idle stream {sid}")
        length = len(payload)
        self._unacked += length
        if self._unacked >= CONNECTION_WINDOW // 2:
            self._frame(WINDOW_UPDATE, 0, 0, U32.pack(self._unacked))
            self._unacked = 0
        data = unpadded(flags, payload)  # bad padding: a connection error, whatever the stream
        end = bool(flags & END_STREAM)
        if not data and not end:
            self._nothing()
        stream = self.streams.get(sid)
        if stream is None or not stream.open_remote:
            if stream is None and sid in self._reset:
                return  # sent before the client knew of our reset: dropped
            return self._reset_stream(sid, ErrorCode.STREAM_CLOSED)  # the client ended it
        if stream.remaining >= 0:
            stream.remaining -= len(data)
            if stream.remaining < 0 or (end and stream.remaining):
                return self._reset_stream(sid, ErrorCode.PROTOCOL_ERROR)  # not its content-length
        if stream.answered:  # the rest of a body read by nobody: dropped
            stream.dropped += max(length, DRAIN_FRAME_BYTES)
            if end:
                del self.streams[sid]
                return
            if stream.dropped > DRAIN_BYTES:
                return self.reset(sid, ErrorCode.NO_ERROR)
        if end:
            stream.open_remote = False
        else:
            stream.unacked += length
            if stream.unacked >= STREAM_WINDOW // 2:
                self._frame(WINDOW_UPDATE, 0, sid, U32.pack(stream.unacked))
                stream.unacked = 0
        if not stream.answered and (data or end):  # an empty part tells the app nothing
            self._empty = 0
            self.peer.on_data(sid, data, end)

    def _headers(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid % 2:
            raise WireError(ErrorCode.PROTOCOL_ERROR, f"HEADERS on stream {sid}")
        block = unpadded(flags, payload)
        itself = False  # the stream depends on itself: a stream error
        if flags & PRIORITY_FLAG:
            if len(block) < 5:
                raise WireError(ErrorCode.PROTOCOL_ERROR, "a malformed HEADERS")
            itself = U32.unpack_from(block)[0] & MAX_WINDOW == sid
            block = block[5:]
        end = bool(flags & END_STREAM)
        if flags & END_HEADERS:
            self._header_block(sid, end, block, itself)
        else:
            self._block = (sid, end, bytearray(block), itself)
            self._continuations = 0

    def _continuation(self, flags: int, sid: int, payload: bytes) -> None:
        if self._block is None:
            raise WireError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        _, end, block, itself = self._block
        block += payload
        if len(block) > self.max_header_block:
            raise WireError(ErrorCode.ENHANCE_YOUR_CALM, "a header block over the limit")
        self._continuations += 1
        if self._continuations > self.max_continuations:
            raise WireError(ErrorCode.ENHANCE_YOUR_CALM, "a header block in too many frames")
        if flags & END_HEADERS:
            self._block = None
            self._header_block(sid, end, bytes(block), itself)

    def _header_block(self, sid: int, end: bool, block: bytes, itself: bool) -> None:
        # Read even for a stream refused: HPACK's table moves with every block.
        fields, length = self._headers_in.read(block)
        if sid <= self.last_sid:
            return self._trailers(sid, end, fields)
        expected = self.last_sid + 2 if self.last_sid else 1
        if sid > expected:
            self._skipped.append((expected, sid - 2))
            if len(self._skipped) > SKIPS_REMEMBERED:
                del self._skipped[0]
        self.last_sid = sid
        if itself or length == MALFORMED or (end and length > 0):
            return self.reset(sid, ErrorCode.PROTOCOL_ERROR)
        if len(self.streams) >= self.max_streams:
            return self.reset(sid, ErrorCode.REFUSED_STREAM)
        stream = Stream(self._initial_window, length)
        stream.open_remote = not end
        self.streams[sid] = stream
        self._empty = 0
        self.peer.on_request(sid, fields, end)

    def _trailers(self, sid: int, end: bool, fields: list[tuple[bytes, bytes]]) -> None:
        """A header block on a stream the client opened before: its trailers."""
        stream = self.streams.get(sid)
        if stream is None:
            if sid in self._reset:
                return  # sent before the client knew of our reset: dropped
            skipped = any(low <= sid <= high for low, high in self._skipped)
            code = ErrorCode.PROTOCOL_ERROR if skipped else ErrorCode.STREAM_CLOSED
            raise WireError(code, f"HEADERS on closed stream {sid}")
        if not stream.open_remote:
            return self._reset_stream(sid, ErrorCode.STREAM_CLOSED)
        try:
            trailer_fields(fields)
        except Malformed:
            return self._reset_stream(sid, ErrorCode.PROTOCOL_ERROR)
        if not end or stream.remaining > 0:  # trailers end the request, its body whole
            return self._reset_stream(sid, ErrorCode.PROTOCOL_ERROR)
        if stream.answered:
            del self.streams[sid]
            return
        stream.open_remote = False
        self._empty = 0
        self.peer.on_data(sid, b"", True)

    def _window_update(self, flags: int, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise WireError(ErrorCode.FRAME_SIZE_ERROR, "a malformed WINDOW_UPDATE")
        increment = U32.unpack(payload)[0] & MAX_WINDOW
        if not sid:
            if not increment:
                raise WireError(ErrorCode.PROTOCOL_ERROR, "a WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise WireError(ErrorCode.FLOW_CONTROL_ERROR, "the window overflowed")
        else:
            if self._idle(sid):
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
            key, value = SETTING.unpack_from(payload, at)
            if key == 0x2 and value > 1:
                raise WireError(ErrorCode.PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH > 1")
            if key == 0x4:  # INITIAL_WINDOW_SIZE: open streams' windows move with it
                if value > MAX_WINDOW:
                    raise WireError(ErrorCode.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too big")
                delta, self._initial_window = value - self._initial_window, value
                for stream in self.streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        raise WireError(ErrorCode.FLOW_CONTROL_ERROR, "a window overflowed")
            elif key == 0x5:
                if not MAX_FRAME <= value <= (1 << 24) - 1:
                    raise WireError(ErrorCode.PROTOCOL_ERROR, f"MAX_FRAME_SIZE {value}")
                self.max_frame = value
        self._frame(SETTINGS, ACK, 0, b"")
        self.peer.on_credit()

    # Asked by the connection

    def open_remotely(self, sid: int) -> bool:
        stream = self.streams.get(sid)
        return stream is not None and stream.open_remote

    def drains(self, sid: int) -> bool:
        """Whether the rest of ``sid``'s request body, answered unread, is
        let in (and dropped) rather than stopped: unless it announced more
        than :data:`DRAIN_BYTES` (what comes past that is stopped anyway)."""
        stream = self.streams.get(sid)
        return stream is not None and stream.open_remote and stream.remaining <= DRAIN_BYTES

    def _nothing(self) -> None:
        """A frame that carried nothing was read: each costs what any frame
        costs, and neither flow control nor a stream's state bounds them."""
        self._empty += 1
        if self._empty > EMPTY_FRAMES:
            raise WireError(ErrorCode.ENHANCE_YOUR_CALM, "frames that carry nothing, flooded")

    def _idle(self, sid: int) -> bool:
        """Whether the client never opened ``sid`` (ours, the even ones, included)."""
        return not sid & 1 or sid > self.last_sid

    def _reset_stream(self, sid: int, code: int) -> None:
        """A stream error: the stream reset, its connection told if it was open."""
        was_open = sid in self.streams
        self.reset(sid, code)
        if was_open:
            self.peer.on_reset(sid)
