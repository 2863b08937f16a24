"""Which of the UI's nodes serve one store, as they proved it.

The replicas of a node (two ``agent-node serve`` of one configuration on
one database) hold the same executions, and their operator APIs take the
same keyset cursors: when one is down, another can answer for it
(:mod:`.calls` falls over to it), and their rows are listed once
(:mod:`.stores`). Standing in for a node means getting the operator's
cancels, signals and answers for its executions, and having one's rows
shown as its own — so a node stands in for another only when it proved
both that it serves the same store and that it is the same node:

* the same store: each answer of the operator API names its store
  (``/ops/node``, each page of ``/ops/executions`` and ``/ops/inbox``, the
  ``hello`` of ``/ops/stream``: :mod:`agent_node.a2a.server.ops_store`),
  a random id kept in the store itself, which only a process that reads
  the store can name (it was a digest of the host name and the file's
  path, which a hostile peer worked out and named);
* the same node: the same identity named by its certificate at the
  handshake of that very answer, which no other party's node can present
  (over plain HTTP — ``--insecure-dev`` — neither has one, and nothing is
  proven beyond the id);
* and both the operator's, or both not: a node named only as a peer in a
  configuration (:attr:`~.targets.Target.peer`, another party's) is never
  grouped with one the operator gave (``--config``, ``--peer``).

The latest word of each node counts. A node that never named its store
(down since the UI started, or an older node) has no replicas here, and
stands in for no other. Two different nodes (two identities) given one
database are not replicas: each lists the store's executions under its own
name.

What groups a node with its replicas (:meth:`Replicas.shown`) is also what
the page is told a row's ``store`` is, so that a change one of them tells
is applied to the one row the store's execution has — and a node outside
the group, whatever store it names, touches none of its rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .targets import Target

__all__ = ["Replicas", "store_of"]


def store_of(body: Any) -> str | None:
    """The store an answer of the operator API names (None: it names none)."""
    store = body.get("store") if isinstance(body, dict) else None
    return store if isinstance(store, str) and store else None


@dataclass(frozen=True)
class _Served:
    """What a node proved with one answer: the store it named, and the
    identity its certificate named (None: plain HTTP)."""

    store: str
    identity: str | None
    peer: bool


class Replicas:
    """The stores the configured ``targets`` proved they serve."""

    def __init__(self, targets: Mapping[str, Target]) -> None:
        self._targets = targets
        self._served: dict[str, _Served] = {}

    def learn(self, target: Target, body: Any, identity: str | None) -> None:
        """Take note of the store ``body`` (an answer of ``target``, over a
        connection whose certificate named ``identity``) names, if any."""
        store = store_of(body)
        if store is not None and self._targets.get(target.key) == target:
            self._served[target.key] = _Served(store, identity, target.peer)

    def of(self, target: Target) -> list[Target]:
        """The other targets proved to serve ``target``'s store as the same
        node, in the order given."""
        served = self._served.get(target.key)
        if served is None:
            return []
        return [
            other
            for key, other in self._targets.items()
            if key != target.key and self._served.get(key) == served
        ]

    def shown(self, target: Target) -> str | None:
        """``target``'s store as the page tells it apart (None: it named
        none): the same for its replicas, and no other node's."""
        served = self._served.get(target.key)
        if served is None:
            return None
        raw = json.dumps([served.store, served.identity, served.peer]).encode()
        return f"store-{hashlib.sha256(raw).hexdigest()[:24]}"
