"""Giving the C heap's freed memory back to the system, on glibc.

A burst leaves the heap large: 200 TLS handshakes at once, say, allocate
and free some 50 KiB each in OpenSSL, and glibc keeps what they freed in
its arenas (here 11 MB free of a 12 MB growth, while the 200 streams they
opened held 1.6 MB). glibc only returns the top of a heap by itself; the
free pages inside it stay resident until something else reuses them. A
node that served a burst of streams would carry its high-water mark
forever: 105 KiB of RSS per open mutual-TLS stream, 70 KiB once trimmed
(bench/a2a/sse_memory.py).

:func:`keep_trimmed` looks every few seconds at how much the arenas hold
free (``mallinfo2``) and, past :data:`SLACK`, calls ``malloc_trim(0)``,
which hands the free pages inside the heaps back (``MADV_DONTNEED``). It
costs a walk of the free chunks, a millisecond or so, only after a burst.
Elsewhere (musl, macOS, a glibc older than 2.33) it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

__all__ = ["SLACK", "free_bytes", "keep_trimmed", "trim"]

log = logging.getLogger(__name__)

#: Free bytes in the arenas above which a look trims them.
SLACK = 4 * 1024 * 1024


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _glibc() -> tuple[Callable[[], _MallInfo2], Callable[[int], int]] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallinfo2, malloc_trim = libc.mallinfo2, libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    mallinfo2.restype = _MallInfo2
    mallinfo2.argtypes = []
    malloc_trim.restype = ctypes.c_int
    malloc_trim.argtypes = [ctypes.c_size_t]
    return mallinfo2, malloc_trim


_LIBC = _glibc()


def free_bytes() -> int | None:
    """Bytes the C heap's arenas hold free (None: not glibc)."""
    return None if _LIBC is None else int(_LIBC[0]().fordblks)


def trim() -> bool:
    """Return the arenas' free pages to the system; whether any were."""
    return _LIBC is not None and bool(_LIBC[1](0))


async def keep_trimmed(every: float = 5.0, slack: int = SLACK) -> None:
    """Every ``every`` seconds, trim the heap when its arenas hold more than
    ``slack`` bytes free; until cancelled (at once where there is no glibc)."""
    if _LIBC is None:
        return
    while True:
        await asyncio.sleep(every)
        free = free_bytes() or 0
        if free > slack:
            trim()
            log.debug("heap: %d bytes free in the arenas, trimmed", free)
