"""Nodes that serve one store, shown as one.

Executions belong to a store, not to a node: the replicas of a node (two
``agent-node serve`` on one database) and different nodes given one
database each list every execution of it. Each answer of the operator API
names its store (``store``: :mod:`agent_node.a2a.server.ops_store`), so of
the nodes that answered for one store, the first (in the order the nodes
were given) speaks for it — its rows are the store's, listed once — and
the others are its ``replicas``. A node that names no store (an older
one) is a store of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .calls import Reply
from .replicas import store_of
from .targets import Target

__all__ = ["Shared", "by_store", "mark_sharing"]


@dataclass(frozen=True)
class Shared:
    """One store's answer: the node that speaks for it, and the others of it."""

    target: Target
    reply: Reply
    #: The store's identity (None: the node did not say).
    store: str | None
    #: The keys of the other nodes that answered for the same store.
    replicas: tuple[str, ...]

    def mark(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` as the page lists it: under the speaking node, with its store."""
        marked = {**row, "node": self.target.key}
        if self.store is not None:
            marked["store"] = self.store
        if self.replicas:
            marked["replicas"] = list(self.replicas)
        return marked


def by_store(answered: Sequence[tuple[Target, Reply]]) -> list[Shared]:
    """One :class:`Shared` per store among ``answered`` (in their order)."""
    groups: dict[str, list[tuple[Target, Reply]]] = {}
    for target, reply in answered:
        store = store_of(reply.body)
        groups.setdefault(store if store is not None else f"node:{target.key}", []).append(
            (target, reply)
        )
    shared = []
    for members in groups.values():
        (target, reply), rest = members[0], members[1:]
        replicas = tuple(t.key for t, _ in rest)
        shared.append(Shared(target, reply, store_of(reply.body), replicas))
    return shared


def mark_sharing(nodes: Sequence[dict[str, Any]]) -> None:
    """Give each node of the nodes view (its ``/ops/node`` as ``node``) the
    keys of the others that serve its store (``shares_store_with``): their
    counts are the same store's, not to be added up."""
    keys: dict[str, list[str]] = {}
    for shown in nodes:
        store = store_of(shown.get("node"))
        if store is not None:
            keys.setdefault(store, []).append(shown["key"])
    for shown in nodes:
        store = store_of(shown.get("node"))
        others = [k for k in keys.get(store, []) if k != shown["key"]] if store else []
        if others:
            shown["shares_store_with"] = others
