"""``GET /ops/node``: who this node is and how busy it is.

Its name, URL, version, the words of its card (name, description,
skills), which workflow each skill runs, the store it serves (``store``:
:func:`~.ops_store.store_identity`, the same on every node of one store,
whose counts are the store's) and its load: how many executions
are pending, running and waiting, and how many ask a person (input,
authorization) — each an indexed count of the few that are active — and
what this process runs itself (``here``: the node visits running in it, of
how many at once), which is its own among replicas that share one store. The
ended ones (completed, failed, canceled) are counted only when asked
(``?counts=all``): they are most of a store, and counting them reads an
index entry each (tens of milliseconds a million), which a page that
refreshes its nodes as they change must not cost the node. The node
hands what it knows of itself in a :class:`NodeAbout`; without one
(an app assembled by hand) the name comes from the engine and the rest
is None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from agent_node import __version__
from agent_node.runtime import Runtime
from agent_node.store import ExecutionStatus

from .ops_store import store_identity

__all__ = ["NodeAbout", "node_view", "public_card"]

_STATUSES = get_args(ExecutionStatus)
_ACTIVE = ("pending", "running", "waiting")


@dataclass(frozen=True)
class NodeAbout:
    """What a node says of itself on ``/ops/node``."""

    name: str
    #: The base URL peers reach it at.
    url: str | None = None
    #: Its Agent Card (the document it serves).
    card: Mapping[str, Any] | None = None
    #: Skill id → the id of the workflow it runs (``skill=`` filters on it).
    skills: Mapping[str, str] = field(default_factory=dict)
    #: Whether the node still serves: False once it drains, and its operator
    #: streams end (a stream would otherwise hold the stop for its graceful
    #: timeout).
    serving: Callable[[], bool] = lambda: True


async def node_view(runtime: Runtime, about: NodeAbout | None, every: bool) -> dict[str, Any]:
    """The node's view; ``every``: count the ended executions too."""
    store = runtime.store
    counted = _STATUSES if every else _ACTIVE
    counts = {s: await store.count_executions(status=[s]) for s in counted}
    asking = {kind: await store.count_executions(asking=kind) for kind in ("input", "auth")}
    engine = runtime.engine
    return {
        "name": about.name if about else engine.owner.node,
        "url": about.url if about else None,
        "version": __version__,
        "card": public_card(about.card) if about and about.card else None,
        "skills": dict(about.skills) if about else None,
        "engine": engine.state.value,
        "store": await store_identity(store),
        "counts": counts,
        "asking": asking,
        "load": {"running": counts["pending"] + counts["running"], "waiting": counts["waiting"]},
        # This process's own: of a store's nodes (replicas), the one share of
        # the work that is not the store's.
        "here": {"visits": len(engine.running_visits), "slots": engine.concurrency},
    }


def public_card(card: Mapping[str, Any]) -> dict[str, Any]:
    """What a viewer needs of a card: its words and skills, not its signatures
    (which carry the signer's certificate chain)."""
    keep = ("name", "description", "version", "provider", "capabilities", "skills", "url")
    shown = {key: card[key] for key in keep if key in card}
    interfaces = card.get("supportedInterfaces")
    if isinstance(interfaces, list):
        shown["interfaces"] = [
            {"url": i.get("url"), "binding": i.get("protocolBinding")}
            for i in interfaces
            if isinstance(i, dict)
        ]
    shown["signed"] = bool(card.get("signatures"))
    return shown
