"""Lines of a text that comes in pieces, none longer than a limit.

httpx's own line reader holds a line whole, however long: a peer or a node
that sends one line of 400 MB is held in memory whole. :func:`bounded_lines`
splits on CR, LF or CRLF as it does, and raises :class:`LineTooLong` as
soon as the line under way is past the limit. Each piece of text is looked
through once.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

__all__ = ["LineTooLong", "bounded_lines"]


class LineTooLong(ValueError):
    """A line longer than the limit: not read further."""


async def bounded_lines(pieces: AsyncIterable[str], limit: int) -> AsyncIterator[str]:
    """The lines of the text ``pieces`` make, none longer than ``limit`` characters."""
    partial: list[str] = []  # the line under way, in pieces
    held = 0
    cr = False  # the last piece ended with a CR: maybe half of a CRLF
    async for piece in pieces:
        text = piece
        if cr:
            text, cr = "\r" + text, False
        if text.endswith("\r"):
            text, cr = text[:-1], True
        first, *lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        partial.append(first)
        held += len(first)
        if lines:
            yield "".join(partial)
            *whole, last = lines
            for line in whole:
                yield line
            partial, held = [last], len(last)
        if held > limit:
            raise LineTooLong(f"a line of more than {limit} characters")
    if cr or any(partial):
        yield "".join(partial)
