"""Commits held a moment, then followed together, in their order.

A node's telemetry observes every commit (:mod:`agent_node.store.notify`),
between the node's own work. Followed as each commits, its code and data
are evicted by that work in between and met cold each time; followed one
after the other, they stay in the caches from one commit to the next. So
the observers — the traces' follower, the metrics when they count alone —
hold what each commit wrote, :data:`HELD` commits at most and :data:`HOLD`
seconds at most, and follow them together (``bench/telemetry_bench.py
--paired``: for the traces, +7.0 → +6.1 % of a ``SendMessage``'s CPU and
+12 to 15 → +9 to 11 % of a sequential step's; for the metrics, measured in
one process with their observer on and off per unit, HELD 64 against 1:
+4.2 to 4.6 % of a sequential step's CPU against +4.8 to 5.4 %).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from agent_node.store.records import EventRecord, ExecutionRecord

__all__ = ["HELD", "HOLD", "Held", "call_later"]

#: Commits held before they are followed, at most, and how long the first
#: waits for the others, at most (seconds).
HELD, HOLD = 64, 0.05

Follow = Callable[[ExecutionRecord, Sequence[EventRecord]], None]


class Held:
    """Holds commits (:meth:`committed`, a store's commit observer) and hands
    each to ``follow`` when :data:`HELD` are held or :data:`HOLD` has passed,
    then calls ``after`` (when given) once for them all."""

    def __init__(self, follow: Follow, after: Callable[[], None] | None = None) -> None:
        self._follow = follow
        self._after = after
        self._held: list[tuple[ExecutionRecord, Sequence[EventRecord]]] = []
        self._due: asyncio.TimerHandle | None = None

    def committed(self, execution: ExecutionRecord, events: Sequence[EventRecord]) -> None:
        held = self._held
        held.append((execution, events))
        if len(held) >= HELD:
            self.flush()
        elif self._due is None:
            self._due = call_later(HOLD, self._over)

    def _over(self) -> None:
        # Left running when HELD commits go first: the commits held after
        # them wait less, and a busy node sets one timer per HOLD, not one
        # per HELD commits (each cancelled one stays in the loop's heap until
        # it is due, and every timer set compares against them).
        self._due = None
        self.flush()

    def flush(self) -> None:
        """Follow the commits held so far, in their order."""
        held, self._held = self._held, []
        follow = self._follow
        for execution, events in held:
            follow(execution, events)
        if self._after is not None:
            self._after()

    def stop(self) -> None:
        """No more waiting: follow what is held."""
        if self._due is not None:
            self._due.cancel()
            self._due = None
        self.flush()


def call_later(delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle | None:
    """``callback`` in ``delay`` s on the running loop; off the loop (a commit
    observed there): at once, and None."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        callback()
        return None
    return loop.call_later(delay, callback)
