"""Whether a ``Content-Length`` a client or a server declared is over a limit.

A declared length is read only when it is ASCII digits (``str.isdigit``
takes ``²`` too, and ``int`` then fails), and only its first 30 digits
(``int`` refuses strings past 4,300 digits; 30 are over any limit already):
anything else says nothing, and the body's own size is what is counted.
"""

from __future__ import annotations

__all__ = ["declared_over"]


def declared_over(declared: str, limit: int) -> bool:
    """Whether ``declared`` (a ``Content-Length`` value) says more than ``limit`` bytes."""
    return declared.isascii() and declared.isdigit() and int(declared[:30]) > limit
