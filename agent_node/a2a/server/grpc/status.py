"""gRPC statuses as the server sends them: the codes, and the trailers of a call's end."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from enum import IntEnum
from urllib.parse import quote

__all__ = ["OK", "Code", "RpcError", "Status"]

_MESSAGE_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if c != 0x25)


class Code(IntEnum):
    """gRPC's status codes (``grpc-status``)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


@dataclass(frozen=True, slots=True)
class Status:
    """How a call ended: its code, message, and the serialized
    ``google.rpc.Status`` sent as ``grpc-status-details-bin`` (if any)."""

    code: Code
    message: str = ""
    details: bytes | None = None

    def trailers(self) -> list[tuple[bytes, bytes]]:
        trailers = [(b"grpc-status", b"%d" % self.code)]
        if self.message:
            message = quote(self.message, safe=_MESSAGE_SAFE)  # UTF-8, percent-encoded
            trailers.append((b"grpc-message", message.encode("ascii")))
        if self.details is not None:  # -bin metadata: base64, unpadded
            trailers.append(
                (b"grpc-status-details-bin", base64.b64encode(self.details).rstrip(b"="))
            )
        return trailers


OK = Status(Code.OK)


class RpcError(Exception):
    """Ends a call with ``status`` (raised by a method, or by the transport)."""

    def __init__(self, code: Code, message: str, details: bytes | None = None) -> None:
        super().__init__(message)
        self.status = Status(code, message, details)
