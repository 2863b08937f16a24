"""What a gRPC method sees of its call, and how a request is read.

A call is ``POST`` (else HTTP 405) with ``content-type: application/grpc``
or ``application/grpc+proto`` (else HTTP 415, or UNIMPLEMENTED for another
``+`` codec), to a known method (else UNIMPLEMENTED), with metadata within
``max_header_bytes`` and one request message within ``max_body_bytes``
(else RESOURCE_EXHAUSTED, the body left unread), in ``identity`` or
``gzip`` encoding (else UNIMPLEMENTED, with ``grpc-accept-encoding``).

A request's body is length-prefixed messages (a flag byte, saying whether
the message is compressed, and a 4-byte length); a unary or
server-streaming method takes exactly one. ``grpc-encoding: gzip``
messages are inflated within the body limit (a small gzip bomb is refused
as the big message it is); ``grpc-timeout`` is ``<digits><unit>``.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent_node.a2a.server.grpc.status import Code, RpcError

__all__ = [
    "ENCODINGS",
    "PREFIX",
    "Call",
    "HttpRefusal",
    "Method",
    "request_head",
    "request_message",
    "timeout_seconds",
]

PREFIX = struct.Struct(">BI")  # compressed flag, message length
#: The message encodings this server reads (``grpc-accept-encoding``).
ENCODINGS = ("identity", "gzip")


@dataclass(slots=True)
class Call:
    """One call as its method sees it."""

    method: str
    metadata: Mapping[str, str]
    client: tuple[str, int] | None
    #: The client certificate (DER) of the connection, if it showed one.
    certificate: bytes | None


@dataclass(frozen=True, slots=True)
class Method:
    """A method: ``run(call, request)`` answers the reply message's bytes
    (``streaming``: an async iterator of the reply stream's messages)."""

    streaming: bool
    run: Callable[[Call, bytes], Any]


class HttpRefusal(Exception):
    """A request that is not a gRPC call: answered with an HTTP ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def request_head(
    fields: Mapping[str, str], size: int, methods: Mapping[str, Method], max_header_bytes: int
) -> tuple[str, Method, str, float | None]:
    """A request's path, method, message encoding and deadline (monotonic),
    from its header ``fields`` (``size``: as HTTP/2 counts them); raises
    HttpRefusal (not POST: 405, not gRPC: 415) or RpcError."""
    if fields.get(":method") != "POST":
        raise HttpRefusal(405)
    kind = fields.get("content-type", "")
    if not kind.startswith("application/grpc"):
        raise HttpRefusal(415)
    if kind not in ("application/grpc", "application/grpc+proto"):
        raise RpcError(Code.UNIMPLEMENTED, f"content-type {kind!r}")
    path = fields.get(":path", "")
    method = methods.get(path)
    if method is None:
        raise RpcError(Code.UNIMPLEMENTED, f"unknown method {path!r}")
    if size > max_header_bytes:
        raise RpcError(
            Code.RESOURCE_EXHAUSTED, f"metadata of {size} bytes, limit {max_header_bytes}"
        )
    encoding = fields.get("grpc-encoding", "identity")
    if encoding not in ENCODINGS:
        message = f"grpc-encoding {encoding!r}: this server takes {', '.join(ENCODINGS)}"
        raise RpcError(Code.UNIMPLEMENTED, message)
    deadline = None
    if (timeout := fields.get("grpc-timeout")) is not None:
        if (seconds := timeout_seconds(timeout)) is None:
            raise RpcError(Code.INTERNAL, f"grpc-timeout {timeout!r}")
        deadline = time.monotonic() + seconds
    return path, method, encoding, deadline


def request_message(body: bytes | bytearray, encoding: str, limit: int) -> bytes:
    """The one message of a request ``body`` (RpcError if it is not one, or
    is over ``limit`` bytes once inflated)."""
    if len(body) < PREFIX.size:
        raise RpcError(Code.INTERNAL, "no request message")
    compressed, length = PREFIX.unpack_from(body)
    if len(body) != PREFIX.size + length:
        raise RpcError(Code.INTERNAL, "one request message expected")
    message = bytes(body[PREFIX.size :])
    if not compressed:
        return message
    if encoding != "gzip":
        raise RpcError(Code.INTERNAL, "a compressed message without grpc-encoding")
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        plain = inflate.decompress(message, limit + 1)
    except zlib.error as exc:
        raise RpcError(Code.INTERNAL, f"gzip: {exc}") from None
    if len(plain) > limit or inflate.unconsumed_tail:
        raise RpcError(Code.RESOURCE_EXHAUSTED, f"message over {limit} bytes")
    return plain


_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def timeout_seconds(value: str) -> float | None:
    """``grpc-timeout`` (``100m``, ``5S``: at most 8 digits and a unit) in
    seconds; None if it is not one."""
    digits, unit = value[:-1], value[-1:]
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 8 or unit not in _UNITS:
        return None
    return int(digits) * _UNITS[unit]
