"""What makes a request that arrives over HTTP/2 malformed (RFC 9113 §8.1.1,
§8.2, §8.3.1).

A malformed request is reset by the wire (a stream error of type
PROTOCOL_ERROR) before a connection sees it, so neither the HTTP app nor
the gRPC binding is handed a field that HTTP/1.1 could not have carried: a
name in upper case or with a colon, white space or a control character; a
value with NUL, CR or LF, or white space at its ends; a connection-specific
field (``connection``, ``transfer-encoding``, …; ``te`` other than
``trailers``); an unknown, repeated, late or missing pseudo-header; a
``:method`` that is not a token (RFC 9110); a ``content-length`` that is
not a number. The body's length is checked
against ``content-length`` as DATA arrives (:mod:`.wire`).

The rules are those ``h2`` (python-hyper) applies to what it receives; they
run once per header block that changes the decoder's table, which a client
repeating a request does not send (:meth:`HeaderReader.read`).
"""

from __future__ import annotations

import re

import hpack
import hpack.exceptions

from agent_node.http2.frames import ErrorCode, WireError

__all__ = ["MALFORMED", "HeaderReader", "Malformed", "request_fields", "trailer_fields"]

#: :meth:`HeaderReader.read`'s content-length of a block that is no well-formed request.
MALFORMED = -2

_PSEUDO = frozenset((b":method", b":scheme", b":authority", b":path"))
_CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
#: A field name may not hold upper case, a colon, white space, controls or non-ASCII.
_BAD_NAME = re.compile(rb"[\x00-\x20A-Z:\x7f-\xff]")
#: A field value may not hold NUL, CR or LF, nor start or end with white space.
_BAD_VALUE = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]\Z")
#: A method is a token (RFC 9110 §9.1, §5.6.2), as HTTP/1.1's request line holds one.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class Malformed(Exception):
    """A header block no request may carry (the message says why)."""


class HeaderReader:
    """A connection's header blocks read: HPACK decoded (the client's
    dynamic table kept), and checked as a request's."""

    def __init__(self, max_header_block: int) -> None:
        self._decoder = hpack.Decoder(max_header_list_size=max_header_block)
        self._indexed: dict[bytes, tuple[list[tuple[bytes, bytes]], int]] = {}

    def read(self, block: bytes) -> tuple[list[tuple[bytes, bytes]], int]:
        """The fields of a header block and, if they are a well-formed
        request's, its content-length (-1: none); else :data:`MALFORMED`.

        A client repeating a request sends a block of table indexes only
        (every byte >= 0x80: one-byte indexed fields), which changes nothing
        in the table: what it means is kept and given again until a block
        that may change the table is decoded."""
        indexed = bool(block) and min(block) >= 0x80
        if indexed and (known := self._indexed.get(block)) is not None:
            return known
        try:
            fields: list[tuple[bytes, bytes]] = self._decoder.decode(block, raw=True)  # type: ignore[assignment]
        except hpack.exceptions.OversizedHeaderListError:
            raise WireError(ErrorCode.ENHANCE_YOUR_CALM, "a header list over the limit") from None
        except hpack.exceptions.HPACKError as exc:
            raise WireError(ErrorCode.COMPRESSION_ERROR, f"HPACK: {exc}") from None
        try:
            read = fields, request_fields(fields)
        except Malformed:
            read = fields, MALFORMED
        if not indexed:
            self._indexed.clear()
        elif len(self._indexed) < 64:
            self._indexed[block] = read
        return read


def request_fields(fields: list[tuple[bytes, bytes]]) -> int:
    """Check a request's header block; its ``content-length`` (-1: none).
    Raises :class:`Malformed`."""
    pseudo: dict[bytes, bytes] = {}
    length = -1
    regular = False
    for name, value in fields:
        if _BAD_VALUE.search(value) is not None:
            raise _bad_value(name)
        if name[:1] == b":":
            if regular:
                raise Malformed(f"the pseudo-header {name!r} follows a regular field")
            if name not in _PSEUDO:
                raise Malformed(f"an unknown pseudo-header {name!r}")
            if name in pseudo:
                raise Malformed(f"the pseudo-header {name!r} repeated")
            pseudo[name] = value
            continue
        regular = True
        length = _regular(name, value, length)
    method = pseudo.get(b":method")
    if not method:
        raise Malformed("no :method")
    if _TOKEN.fullmatch(method) is None:
        raise Malformed("a :method that is not a token")
    if method == b"CONNECT":
        if b":authority" not in pseudo or b":scheme" in pseudo or b":path" in pseudo:
            raise Malformed("a CONNECT needs :authority, and no :scheme or :path")
    elif b":scheme" not in pseudo or not pseudo.get(b":path"):
        raise Malformed("no :scheme, or no or an empty :path")
    return length


def trailer_fields(fields: list[tuple[bytes, bytes]]) -> None:
    """Check a request's trailers. Raises :class:`Malformed`."""
    for name, value in fields:
        if name[:1] == b":":
            raise Malformed(f"the pseudo-header {name!r} in trailers")
        if _BAD_VALUE.search(value) is not None:
            raise _bad_value(name)
        _regular(name, value, -1)


def _bad_value(name: bytes) -> Malformed:
    return Malformed(f"the value of {name!r} holds NUL, CR or LF, or white space at an end")


def _regular(name: bytes, value: bytes, length: int) -> int:
    """Check a regular field; ``length`` as a ``content-length`` moves it."""
    if not name or _BAD_NAME.search(name) is not None:
        raise Malformed(f"the field name {name!r} is not lower-case visible ASCII without colons")
    if name in _CONNECTION_SPECIFIC or (name == b"te" and value.lower() != b"trailers"):
        raise Malformed(f"the connection-specific field {name!r}")
    if name == b"content-length":
        # 18 digits at most: int() refuses thousands of them (ValueError).
        if not value.isdigit() or len(value) > 18 or (length >= 0 and int(value) != length):
            raise Malformed(f"content-length {value!r}")
        return int(value)
    return length
