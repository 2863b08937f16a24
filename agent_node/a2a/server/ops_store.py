"""Which store a node serves: one identity for every process that shares it.

Executions belong to a store, not to a node: the replicas of a node (one
configuration, several processes on one database) and different nodes
given one database all run, and list, every execution of it. So the
operator API names its store (``store`` on ``/ops/node``, each page of
``/ops/executions`` and ``/ops/inbox``, the ``hello`` of ``/ops/stream``),
and a viewer of several nodes (``agent-node ui``) tells which of them
serve one store.

The identity is ``kind:id``: the kind of store (``sqlite``,
``postgresql``, ``memory``) and the random id kept in the store itself
(:mod:`agent_node.store.store_id`). It cannot be worked out from outside:
a node names it only because it reads the store. (It was a digest of the
store's URL — host name and file path, or server and database — which a
hostile peer worked out, and named, to be taken for the node's replica.)
One server reached under two names is one store; a memory store is its
own.
"""

from __future__ import annotations

from agent_node.store import Store

__all__ = ["store_identity"]


async def store_identity(store: Store) -> str:
    """``kind:id``, the same for every process serving ``store``'s data."""
    scheme = store.url.split("://", 1)[0].lower()
    kind = "sqlite" if scheme == "sqlite" else "postgresql" if "postgres" in scheme else "memory"
    return f"{kind}:{await store.store_id()}"
