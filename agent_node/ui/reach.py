"""Whether the UI server reaches each of its nodes, and since when not.

Every call and stream of :mod:`.calls` tells it of the node it went to:
one the node answered (any HTTP status) ends an outage; one that never got
an answer (:class:`~.calls.NodeDown`: refused, no answer in time, cut, not
JSON) begins one, or goes on with it — its start is kept from the first
failure, so a page opened in the middle of an outage says since when it
lasts, not since when the page looked. The relay (:mod:`.relay`) also
tells it when a node's stream of changes is lost, since the page then hears
nothing of that node, however its other calls fare.

It also keeps the identity each node's certificate last named, so that a
node that has gone down is still known by it (the inbox tells who asked
whom by identity).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Outage", "Reach"]


@dataclass(frozen=True)
class Outage:
    """A node the UI server does not reach: since when (epoch seconds), and
    why, as its last failure said."""

    since: float
    error: str


class Reach:
    """The outages of the UI server's nodes, by key, and their identities."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._outages: dict[str, Outage] = {}
        self._identities: dict[str, str] = {}

    def heard(self, key: str, identity: str | None = None) -> None:
        """The node ``key`` answered (its certificate naming ``identity``)."""
        self._outages.pop(key, None)
        if identity is not None:
            self._identities[key] = identity

    def lost(self, key: str, error: str) -> Outage:
        """A call to ``key`` got no answer: its outage, begun now or before."""
        known = self._outages.get(key)
        outage = Outage(known.since if known else self._clock(), error)
        self._outages[key] = outage
        return outage

    def outage(self, key: str) -> Outage | None:
        """The outage ``key`` is in (None: its last call was answered)."""
        return self._outages.get(key)

    def learn_identity(self, key: str, identity: str) -> None:
        """What another node said ``key`` is (its certificate, seen by that node)."""
        self._identities.setdefault(key, identity)

    def identity(self, key: str) -> str | None:
        """The identity ``key``'s certificate named, as last seen (None: never)."""
        return self._identities.get(key)
