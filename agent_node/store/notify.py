"""In-process fan-out of store notifications (see :mod:`agent_node.store.base`),
and of what each commit wrote, to observers (metrics, traces).

An observer is told what commits of this process wrote — each as the
execution as it now is and the events the transaction appended — in
commit order per execution, a few commits at a time: they are held until
:data:`HELD` are, or :data:`HOLD` seconds have passed, or
:meth:`Notifier.tell` is called (a scrape wants them counted; an observer
that stops hears what was held first). Followed as each commits, an
observer's code and data are evicted by the node's own work in between and
met cold each time; told together, they stay in the caches from one commit
to the next, and each commit costs an observer no call of its own
(``bench/telemetry_bench.py --paired``). Commit timers are told as each
batch of writes commits: how long it waited, and how many writes it held.

An observer must be quick and must not raise (a failing observer is
logged); nothing waits for it. A store without observers pays one truth
test per commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agent_node.store.base import Commit, CommitObserver, CommitTimer, Listener
from agent_node.store.txn import Txn

__all__ = ["HELD", "HOLD", "Notifier", "Notifying", "call_later"]

log = logging.getLogger(__name__)

#: Commits held before the observers are told, at most, and how long the
#: first waits for the others, at most (seconds).
HELD, HOLD = 64, 0.05


class Notifier:
    """Calls every subscribed listener at once, and tells the observers what
    commits wrote, held a moment; a failing listener or observer is logged,
    not fatal."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._observers: list[CommitObserver] = []
        self._timers: list[CommitTimer] = []
        #: Whether any observer is subscribed (an attribute, not a property:
        #: the writers ask on every commit).
        self.observed = False
        #: Tells every commit timer that ``writes`` (a batch committed
        #: together) waited ``seconds`` for their commit (asked only while
        #: :attr:`observed`). With one timer, that timer itself: a call fewer
        #: on every commit.
        self.took: CommitTimer = _untimed
        #: What commits wrote, not told yet.
        self._held: list[Commit] = []
        self._due: asyncio.TimerHandle | None = None

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def publish(self, kind: str, execution_id: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, execution_id)
            except Exception:
                log.exception("store listener failed on %s %s", kind, execution_id)

    def observe(
        self, observer: CommitObserver, commit_timer: CommitTimer | None = None
    ) -> Callable[[], None]:
        self.tell()  # what was committed before it is not its to hear
        self._observers.append(observer)
        if commit_timer is not None:
            self._timers.append(commit_timer)
        self.observed = True
        self._time()

        def forget() -> None:
            self.tell()  # it hears what was committed before it stopped
            if observer in self._observers:
                self._observers.remove(observer)
            if commit_timer in self._timers:
                self._timers.remove(commit_timer)
            self.observed = bool(self._observers)
            self._time()

        return forget

    def _time(self) -> None:
        timers = self._timers
        self.took = timers[0] if len(timers) == 1 else self._took_all if timers else _untimed

    def _took_all(self, seconds: float, writes: int) -> None:
        for timer in self._timers:
            timer(seconds, writes)

    def committed(self, txns: list[Txn]) -> None:
        """What the committed ``txns`` wrote, for the observers (asked only
        while :attr:`observed`)."""
        held = self._held
        for txn in txns:
            held.append((txn.execution, txn.events))
        if len(held) >= HELD:
            self.tell()
        elif self._due is None:
            self._due = call_later(HOLD, self._over)

    def _over(self) -> None:
        # Left running when HELD commits go first: the commits held after
        # them wait less, and a busy node sets one timer per HOLD, not one
        # per HELD commits (each cancelled one stays in the loop's heap until
        # it is due, and every timer set compares against them).
        self._due = None
        self.tell()

    def tell(self) -> None:
        """Tell the observers what is held, now."""
        held = self._held
        if held:
            self._held = []
            for observer in self._observers:
                try:
                    observer(held)
                except Exception:
                    log.exception("commit observer failed on %d commits", len(held))


class Notifying:
    """A store's listeners and commit observers, kept by its :class:`Notifier`
    (the :class:`~agent_node.store.base.Store` methods, for each store)."""

    _notifier: Notifier

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self._notifier.subscribe(listener)

    def observe(
        self, observer: CommitObserver, commit_timer: CommitTimer | None = None
    ) -> Callable[[], None]:
        return self._notifier.observe(observer, commit_timer)

    def tell_observers(self) -> None:
        self._notifier.tell()


def call_later(delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle | None:
    """``callback`` in ``delay`` s on the running loop; off the loop (a commit
    made there): at once, and None."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        callback()
        return None
    return loop.call_later(delay, callback)


def _untimed(seconds: float, writes: int) -> None:
    """No commit timer: nothing to tell."""
