"""Which of the UI's nodes serve one store, as their answers said.

The replicas of a node (two ``agent-node serve`` on one database) hold the
same executions, and their operator APIs take the same keyset cursors: when
one is down, another of its store can answer for it (:mod:`.calls` falls
over to it). Which nodes those are is learned, never guessed: every answer
naming its ``store`` (``/ops/node``, each page of ``/ops/executions`` and
``/ops/inbox``: :mod:`agent_node.a2a.server.ops_store`) tells it for the
node that gave it, and the latest word of each node counts. A node that
never named its store (down since the UI started, or an older node) has no
replicas here, and stands in for no other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .targets import Target

__all__ = ["Replicas", "store_of"]


def store_of(body: Any) -> str | None:
    """The store an answer of the operator API names (None: it names none)."""
    store = body.get("store") if isinstance(body, dict) else None
    return store if isinstance(store, str) and store else None


class Replicas:
    """The stores the configured ``targets`` said they serve."""

    def __init__(self, targets: Mapping[str, Target]) -> None:
        self._targets = targets
        self._stores: dict[str, str] = {}

    def learn(self, target: Target, body: Any) -> None:
        """Take note of the store ``body`` (an answer of ``target``) names, if any."""
        store = store_of(body)
        if store is not None and self._targets.get(target.key) == target:
            self._stores[target.key] = store

    def of(self, target: Target) -> list[Target]:
        """The other targets known to serve ``target``'s store, in the order given."""
        store = self._stores.get(target.key)
        if store is None:
            return []
        return [
            other
            for key, other in self._targets.items()
            if key != target.key and self._stores.get(key) == store
        ]
