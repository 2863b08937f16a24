"""The cross-agent tree: a task, its delegations as children, and theirs.

Starting from one execution on one node, each delegation (from
``/ops/executions/{id}``: :mod:`agent_node.a2a.server.ops_delegations`) is
followed to the node it went to — the configured target whose origin the
delegation's endpoint names, else the one named like the peer — and that
node is asked for the peer's task, and so on (A → B → C). Each link keeps
the round trip (sent, resolved) and the outcome the caller saw. A peer the
UI does not know, a node that is down (and no replica of its store
answers for it: :mod:`.calls`) and a task the peer does not have (yet)
end their branch with a ``reach`` saying which. Siblings are read
at once; the walk stops at :data:`MAX_DEPTH` levels and :data:`MAX_TASKS`
tasks, so a cycle or a huge fan-out cannot hold the page.

A task's ``skill`` is the one it was started for; a link's is the one the
delegation asked for, else the peer's task's. A link's ``identity`` is the
peer's, as its certificate named it to the caller (else as the UI was told
to expect). Each is left out where nothing tells it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from .calls import Calls, NodeDown, path
from .targets import Target

__all__ = ["MAX_DEPTH", "MAX_TASKS", "task_tree"]

MAX_DEPTH = 8
MAX_TASKS = 64

#: What a task shows in the tree (the rest is one click away).
_SHOWN = ("id", "workflow", "status", "caller", "created_at", "updated_at", "error", "question")
_LINK = ("node", "visit", "peer", "task_id", "endpoint", "sent_at", "taken_at")
_LINK_MORE = ("resolved_at", "round_trip", "outcome", "via", "answers", "questions", "live")


@dataclass
class _Walk:
    calls: Calls
    read: int = 0

    async def task(self, target: Target, execution_id: str, depth: int) -> dict[str, Any]:
        self.read += 1
        reply = await self.calls.get(target, path("ops", "executions", execution_id))
        if reply.status == 404:
            return {"node": target.key, "id": execution_id, "reach": "not found"}
        if not reply.ok or not isinstance(reply.body, dict):
            return {"node": target.key, "id": execution_id, "reach": _refusal(reply.body)}
        view = reply.body
        shown = {key: view.get(key) for key in _SHOWN}
        if isinstance(view.get("skill"), str):
            shown["skill"] = view["skill"]
        delegations = [d for d in view.get("delegations") or [] if isinstance(d, dict)]
        children = await asyncio.gather(*(self.link(d, depth) for d in delegations))
        return {"node": target.key, **shown, "reach": "ok", "children": list(children)}

    async def link(self, delegation: dict[str, Any], depth: int) -> dict[str, Any]:
        link = {key: delegation.get(key) for key in (*_LINK, *_LINK_MORE)}
        found = self.calls.network.find(delegation.get("endpoint"), delegation.get("peer"))
        task_id = delegation.get("task_id")
        link["target"] = found.key if found else None
        _known(link, "skill", delegation.get("skill"))
        _known(link, "identity", delegation.get("identity") or (found and found.identity))
        if found is None:
            return {**link, "reach": "unknown peer", "task": None}
        if not isinstance(task_id, str) or not task_id:
            return {**link, "reach": "not sent yet", "task": None}
        if depth + 1 >= MAX_DEPTH or self.read >= MAX_TASKS:
            return {**link, "reach": "not followed (too deep or too many)", "task": None}
        try:
            task = await self.task(found, task_id, depth + 1)
        except NodeDown as exc:
            return {**link, "reach": f"unreachable: {exc}", "task": None}
        _known(link, "skill", task.get("skill"))
        return {**link, "reach": task["reach"], "task": task}


def _known(into: dict[str, Any], key: str, value: Any) -> None:
    """``into[key] = value`` unless it has one, or ``value`` is none (a
    field nothing tells is left out, not null)."""
    if isinstance(value, str) and value and key not in into:
        into[key] = value


def _refusal(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return f"refused: {message}" if message else "refused"


async def task_tree(calls: Calls, target: Target, execution_id: str) -> dict[str, Any]:
    """The tree under ``execution_id`` of ``target`` (NodeDown if that node,
    and every replica of its store, is down)."""
    return await _Walk(calls).task(target, execution_id, 0)
