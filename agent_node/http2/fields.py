"""Header blocks as the node's HTTP/2 servers write them (HPACK, RFC 7541).

Literals that never touch the client's dynamic table, so a block means the
same whatever the connection did before it: the usual ones (the response's
headers, an OK call's trailers) are made once, as constants.
"""

from __future__ import annotations

__all__ = ["header_block"]


def _integer(value: int, prefix: int, first: int = 0) -> bytes:
    """An HPACK integer with a ``prefix``-bit prefix (RFC 7541 §5.1)."""
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def header_block(fields: list[tuple[bytes, bytes]]) -> bytes:
    """``fields`` as an HPACK block that leaves the client's dynamic table
    alone: ``:status: 200`` indexed, the rest literals without indexing."""
    block = bytearray()
    for name, value in fields:
        if name == b":status" and value == b"200":
            block.append(0x88)  # static table entry 8
            continue
        block.append(0x00)  # literal without indexing, new name
        block += _integer(len(name), 7) + name
        block += _integer(len(value), 7) + value
    return bytes(block)
