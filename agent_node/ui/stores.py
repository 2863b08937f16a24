"""Nodes that serve one store, shown as one.

Executions belong to a store, not to a node: the replicas of a node (two
``agent-node serve`` of one configuration on one database) each list every
execution of it. Of the nodes that answered for one store — proved so, as
:mod:`.replicas` has it: the id kept in the store, and the same node's
certificate — the first (in the order the nodes were given) speaks for it:
its rows are the store's, listed once, and the others are its
``replicas``. A node whose store is not known (an older one) or not proved
shared is a store of its own. A row an answer holds that is not one (not
an object, no id, a creation time that is not a number) is left out, and
its node named in the page's ``errors``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .calls import Reply
from .replicas import Replicas, store_of
from .targets import Target

__all__ = ["Shared", "by_store", "mark_sharing"]


@dataclass(frozen=True)
class Shared:
    """One store's answer: the node that speaks for it, and the others of it."""

    target: Target
    reply: Reply
    #: The store as the page tells it apart (:meth:`.Replicas.shown`; None:
    #: the node did not say).
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

    def rows(self, field: str, fits: Callable[[Any], bool]) -> tuple[list[dict[str, Any]], int]:
        """The rows of the answer's ``field`` that ``fits`` takes, and how many
        it left out (a ``field`` that is not a list counts one)."""
        given = self.reply.body.get(field) if isinstance(self.reply.body, dict) else None
        if given is None:
            return [], 0
        if not isinstance(given, list):
            return [], 1
        rows = [row for row in given if isinstance(row, dict) and fits(row)]
        return rows, len(given) - len(rows)

    def unread(self, left_out: int) -> dict[str, Any]:
        """The page's error for ``left_out`` rows of this store that did not fit."""
        what = "row" if left_out == 1 else "rows"
        return {
            "node": self.target.key,
            "status": "unreadable",
            "message": f"{left_out} {what} of its answer could not be read: left out",
        }


def by_store(replicas: Replicas, answered: Sequence[tuple[Target, Reply]]) -> list[Shared]:
    """One :class:`Shared` per store among ``answered`` (in their order)."""
    groups: dict[str, list[tuple[Target, Reply]]] = {}
    for target, reply in answered:
        store = replicas.shown(target)
        groups.setdefault(store or f"node:{target.key}", []).append((target, reply))
    shared = []
    for members in groups.values():
        (target, reply), rest = members[0], members[1:]
        others = tuple(t.key for t, _ in rest)
        shared.append(Shared(target, reply, replicas.shown(target), others))
    return shared


def mark_sharing(
    replicas: Replicas, targets: Mapping[str, Target], nodes: Sequence[dict[str, Any]]
) -> None:
    """Give each node of the nodes view that named its store (its
    ``/ops/node`` as ``node``) the keys of the others that did and serve it
    (``shares_store_with``): their counts are the same store's, not to be
    added up."""
    named = {shown["key"] for shown in nodes if store_of(shown.get("node")) is not None}
    for shown in nodes:
        if shown["key"] not in named:
            continue
        others = [r.key for r in replicas.of(targets[shown["key"]]) if r.key in named]
        if others:
            shown["shares_store_with"] = others
