"""HTTP/2's vocabulary (RFC 9113 §4, §6, §7): the preface, frame types and
flags, error codes, the sizes and windows the node's servers use, and the
connection error a breach raises."""

from __future__ import annotations

import struct

__all__ = ["PREFACE", "ErrorCode", "WireError", "unpadded"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADER = struct.Struct(">HBBBL")  # length (24 bits: 16 + 8), type, flags, stream id
SETTING = struct.Struct(">HL")
U32 = struct.Struct(">L")

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


def unpadded(flags: int, payload: bytes) -> bytes:
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise WireError(ErrorCode.PROTOCOL_ERROR, "padding longer than its frame")
    return payload[1 : len(payload) - payload[0]]
