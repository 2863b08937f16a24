"""In-process fan-out of store notifications (see :mod:`agent_node.store.base`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent_node.store.base import Listener

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    """Calls every subscribed listener; a failing listener is logged, not fatal."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

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
