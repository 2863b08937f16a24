"""The sending half of an HTTP/2 server connection (RFC 9113): what it
answers, framed.

A :class:`Sender` frames what its connection sends into :attr:`Sender.out`:
our preface (SETTINGS and the connection's larger window), HEADERS (with
CONTINUATIONs past the client's SETTINGS_MAX_FRAME_SIZE), DATA within the
client's windows (what may be sent now: :meth:`Sender.credit`), RST_STREAM
and GOAWAY. It holds the open streams (:class:`Stream`) and the ones we
reset, which the receiving half, :class:`~.wire.Wire` (a Sender that reads
what the client sends), opens, reads and moves; a stream ended both ways
is dropped.
"""

from __future__ import annotations

from agent_node.http2.frames import (
    CONNECTION_WINDOW,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADER,
    HEADERS,
    MAX_FRAME,
    RST_STREAM,
    SETTING,
    SETTINGS,
    STREAM_WINDOW,
    U32,
    WINDOW_UPDATE,
    ErrorCode,
)

__all__ = ["RESETS_REMEMBERED", "Sender", "Stream"]

#: How many of the streams we reset are remembered, so that frames the client
#: sent before it knew (within a round trip) are ignored, not taken for errors;
#: older ones count as closed by the client. As many as may be open at once
#: (asgi's MAX_STREAMS), so a burst of early answers forgets none still in
#: flight; ~17 KiB at most, on a connection that made that many resets.
RESETS_REMEMBERED = 256


class Stream:
    """One open stream: its windows both ways, and how far each side is."""

    __slots__ = ("answered", "dropped", "open_remote", "remaining", "send_window", "unacked")

    def __init__(self, send_window: int, remaining: int) -> None:
        self.open_remote = True
        self.answered = False  # our end sent while the client still sends
        self.dropped = 0  # bytes of its body that came after that
        self.send_window = send_window
        self.unacked = 0  # bytes read since our last WINDOW_UPDATE for it
        self.remaining = remaining  # of the body its content-length announced (-1: none)


class Sender:
    """What one HTTP/2 server connection sends, and the streams it keeps."""

    def __init__(self, *, max_streams: int, max_header_block: int) -> None:
        #: Our SETTINGS, announced in our preface (:meth:`start`).
        self.max_streams = max_streams
        self.max_header_block = max_header_block
        self.out = bytearray()
        self.streams: dict[int, Stream] = {}
        self.last_sid = 0  # the highest stream id the client opened
        self._reset: dict[int, None] = {}  # streams we reset, the latest RESETS_REMEMBERED
        self._send_window = 65535  # the connection's, as the client grants it
        self.max_frame = MAX_FRAME  # what the client accepts

    def start(self) -> None:
        """Our preface: SETTINGS and the connection's larger window."""
        settings = SETTING.pack(0x3, self.max_streams)  # MAX_CONCURRENT_STREAMS
        settings += SETTING.pack(0x4, STREAM_WINDOW)  # INITIAL_WINDOW_SIZE
        settings += SETTING.pack(0x6, self.max_header_block)  # MAX_HEADER_LIST_SIZE
        self._frame(SETTINGS, 0, 0, settings)
        self._frame(WINDOW_UPDATE, 0, 0, U32.pack(CONNECTION_WINDOW - 65535))

    def credit(self, sid: int) -> int:
        """Bytes of DATA ``sid`` may send now (0: wait for :meth:`~.wire.Peer.on_credit`)."""
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
        self._frame(RST_STREAM, 0, sid, U32.pack(code))
        self.forget(sid)

    def forget(self, sid: int) -> None:
        """Drop ``sid`` unanswered: a stream opened past our GOAWAY's last,
        which its client knows was not served (a reset now would be an error
        to clients whose connection the GOAWAY closed, as h2's). What the
        client sent on it before it knew is ignored."""
        self.streams.pop(sid, None)
        self._reset[sid] = None
        if len(self._reset) > RESETS_REMEMBERED:
            del self._reset[next(iter(self._reset))]

    def goaway(self, code: int = ErrorCode.NO_ERROR) -> None:
        self._frame(GOAWAY, 0, 0, U32.pack(self.last_sid) + U32.pack(code))

    def _closed_locally(self, sid: int) -> None:
        stream = self.streams.get(sid)
        if stream is not None:
            if stream.open_remote:
                stream.answered = True
            else:
                del self.streams[sid]

    def _frame(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        length = len(payload)
        self.out += HEADER.pack(length >> 8, length & 0xFF, kind, flags, sid)
        self.out += payload
