"""In-process fan-out of store notifications (see :mod:`agent_node.store.base`),
and of what each commit wrote, to observers (metrics, traces).

An observer is told, after a transaction committed, the execution as it
now is and the events the transaction appended — in the process that
committed it, in commit order per execution. It must be quick and must not
raise (a failing observer is logged); nothing waits for it. A store without
observers pays one truth test per commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent_node.store.base import CommitObserver, CommitTimer, Listener, Txn

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    """Calls every subscribed listener; a failing listener is logged, not fatal."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._observers: list[CommitObserver] = []
        self._timers: list[CommitTimer] = []
        #: Whether any observer is subscribed (an attribute, not a property:
        #: the writers ask on every commit).
        self.observed = False
        #: Tells every commit timer that ``writes`` (a batch committed
        #: together) waited ``seconds`` for their commit. With one timer, that
        #: timer itself: a call fewer on every commit.
        self.took: CommitTimer = _untimed

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
        self._observers.append(observer)
        if commit_timer is not None:
            self._timers.append(commit_timer)
        self.observed = True
        self._time()

        def forget() -> None:
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
        """Tell the observers what the committed ``txns`` wrote."""
        for observer in self._observers:
            for txn in txns:
                try:
                    observer(txn.execution, txn.events)
                except Exception:
                    log.exception("commit observer failed on %s", txn.execution.id)


def _untimed(seconds: float, writes: int) -> None:
    """No commit timer: nothing to tell."""
