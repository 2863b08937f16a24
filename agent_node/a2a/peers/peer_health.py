"""What the watchdog knows of each peer's health: its calls in flight, and
whether it is down.

* **Isolation.** A peer not known to answer (not yet, or failed since)
  holds at most a quarter of the watchdog's slots at a time, one that
  answers three quarters (:meth:`PeerHealth.take`): a quarter is always
  left to the others, so a peer whose calls hang until their timeouts can
  never starve the delegations to them (a walk saw one hung peer hold all
  32 slots, and three delegations to a healthy peer take 54 s instead of
  one), while a node with one busy peer still sends on most slots.
* **Down and back.** A call that got no answer — a connection refused or
  reset, a timeout, a card that could not be fetched
  (:attr:`~.peer_errors.PeerError.down`: its kind, never its text) — marks
  the peer down: its rows due meanwhile are put back without a call, and
  one row a second probes it. The first answer marks it up again (the
  watchdog then makes its waiting rows due at once). Each change is one
  WARNING line, saying why, not one per delegation.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

__all__ = ["PROBE_INTERVAL", "PeerHealth"]

log = logging.getLogger("agent_node.a2a.peers.watchdog")

#: Seconds between two probes of a peer that is down.
PROBE_INTERVAL = 1.0


class PeerHealth:
    """Per-peer slots and down/up state of one watchdog (see the module doc)."""

    def __init__(self, slots: int) -> None:
        #: Most calls in flight to a peer not known to answer.
        self.cap = max(1, slots // 4)
        #: Most calls in flight to a peer that answers.
        self.most = max(1, slots - self.cap)
        self._busy: Counter[str] = Counter()
        #: Peers that are down: until when the next probe waits, and why.
        self._down: dict[str, tuple[float, str]] = {}
        #: Peers that answered since the watchdog started, and not failed since.
        self._up: set[str] = set()

    def take(self, peer: str) -> bool:
        """A slot of ``peer`` for one call; False when it holds its share already."""
        share = self.most if peer in self._up and peer not in self._down else self.cap
        if self._busy[peer] >= share:
            return False
        self._busy[peer] += 1
        return True

    def give_back(self, peer: str) -> None:
        self._busy[peer] -= 1
        if self._busy[peer] <= 0:
            del self._busy[peer]

    def busy(self, peer: str) -> int:
        """Calls in flight to ``peer``."""
        return self._busy[peer]

    def down_why(self, peer: str) -> str | None:
        """Why ``peer`` is not to be called now (it is down and this is no
        probe's turn); None: call it. One caller a :data:`PROBE_INTERVAL`
        gets None while it is down: the probe."""
        down = self._down.get(peer)
        if down is None:
            return None
        until, why = down
        now = time.time()
        if now < until:
            return why
        self._down[peer] = (now + PROBE_INTERVAL, why)  # this one probes
        return None

    def failed(self, peer: str, why: str) -> None:
        """A call to ``peer`` got no answer (``why``): it is down."""
        self._up.discard(peer)
        if peer not in self._down:
            log.warning(
                "peer %r is down: %s; its delegations wait, probing it every %.0f s",
                peer,
                why,
                PROBE_INTERVAL,
            )
        self._down[peer] = (time.time() + PROBE_INTERVAL, why)

    def answered(self, peer: str) -> bool:
        """``peer`` answered a call: True the first time since it started or
        came back (its waiting rows are then to be made due)."""
        if self._down.pop(peer, None) is not None:
            log.warning("peer %r is back: it answers again", peer)
        if peer in self._up:
            return False
        self._up.add(peer)
        return True
