"""What a gRPC method sees of its call, and how a request is read.

A request's body is length-prefixed messages (a flag byte, saying whether
the message is compressed, and a 4-byte length); a unary or
server-streaming method takes exactly one. ``grpc-encoding: gzip``
messages are inflated within the body limit (a small gzip bomb is refused
as the big message it is); ``grpc-timeout`` is ``<digits><unit>``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent_node.a2a.server.grpc.status import Code, RpcError

__all__ = ["ENCODINGS", "PREFIX", "Call", "Method", "request_message", "timeout_seconds"]

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
    if not digits.isdigit() or len(digits) > 8 or unit not in _UNITS:
        return None
    return int(digits) * _UNITS[unit]
