"""Ids of new executions (and so of A2A tasks): UUIDs that sort by time.

An execution's id is the first column of the keys of its rows — the
execution's own, its events', its work's — so where new ids fall decides
which pages a commit touches. Random ids (version 4) scatter the executions
running at one moment over the whole of each table: a batch of 200
concurrent commits dirtied some 400 pages of 1 KiB on SQLite, each written
whole to the log, and each B-tree descent went to a page of its own. Ids
that begin with their creation time (version 7, RFC 9562) put the executions
of one moment side by side, at the right edge of each index, as an
auto-increment key would, while staying unguessable: 74 random bits after
the millisecond (authorisation never rests on an id, it is only a name).
"""

from __future__ import annotations

import os
import time
import uuid

__all__ = ["new_id"]

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_A = (1 << 12) - 1
_RAND_B = (1 << 62) - 1


def new_id() -> str:
    """A version 7 UUID in its canonical text form."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits; 74 are used
    value = (ms << 80) | _VERSION | ((rand >> 62) & _RAND_A) << 64 | _VARIANT | (rand & _RAND_B)
    return str(uuid.UUID(int=value))
