"""The one error of every authentication scheme (:mod:`.authn`)."""

from __future__ import annotations

__all__ = ["Refused"]


class Refused(Exception):
    """Credentials that name nobody; the message says why (it goes to the caller)."""
