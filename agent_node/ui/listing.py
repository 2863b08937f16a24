"""Pages across nodes: executions (newest first) and inboxes, merged.

Each node is asked for one page at once (``/ops/executions`` with the
filters the page gave, a known set; ``/ops/inbox``). Executions are merged
by creation time and cut to the page's size; the UI's cursor is, per node,
the cursor that continues after the last row of that node shown (each row
of ``/ops/executions`` carries its own), so the next page goes on exactly
where each node stopped — or nothing for a node that has no more. Nodes
that serve one store, as they proved it, are one list (:mod:`.stores`):
the first of them to answer speaks for it, and only it is asked for the
store's next page — which a replica of it gives, from the same cursor, when
it is down (the keyset cursors are the store's; ``notes`` says who answered
for whom). A node that is down, refuses, or does not answer in time is
listed in ``errors`` and the others still show; so is one whose rows do not
all fit (an execution with no id, or a creation time that is not a
number): those rows are left out, the others merged. What a node says
besides its rows (how far a search for an id looked) is in ``notes``.

The first page of executions also says how many there are (``count``):
each store is asked for its total with its page (``count=1``: the kept
counts of :mod:`agent_node.store.counts`, not a walk of the rows), and
``uncounted`` names the nodes whose executions it leaves out (down, or
refusing, or too old to count). A search by id (``q``) and ``until`` are
not counted: the nodes count what their store's filters select, and those
are not among them.

An inbox question relayed up a chain names the task that asked it
(``asked_by``: the peer's name on the asking node, its task); the peer is
also named as the page names it (``target``: by the endpoint the
delegation went to, else by that name), and the identity the asking node
saw its certificate name is remembered for it (:mod:`.reach`): a node that
is down is still known by it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
from collections.abc import Sequence
from typing import Any

from starlette.datastructures import QueryParams

from .calls import Calls, NodeDown, Reply
from .stores import Shared, by_store
from .targets import Network, Target

__all__ = ["BadRequest", "inboxes", "list_executions"]

#: The filters passed on to the nodes' ``/ops/executions``, as the page names them.
FILTERS = ("status", "workflow", "skill", "caller", "context", "since", "until", "q")
MAX_LIMIT = 200


class BadRequest(Exception):
    """The page asked for something no node could answer (HTTP 400)."""


def _limit(query: QueryParams) -> int:
    raw = query.get("limit", "50")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def _cursors(query: QueryParams, targets: Sequence[Target]) -> dict[str, str]:
    """Per node, where its next page starts ("" for its first); only nodes with more."""
    token = query.get("cursor")
    if not token:
        return {t.key: "" for t in targets}
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise BadRequest("cursor is not one this page was given") from None
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise BadRequest("cursor is not one this page was given")
    keys = {t.key for t in targets}
    return {k: v for k, v in raw.items() if k in keys}


def _encode(cursors: dict[str, str]) -> str | None:
    if not cursors:
        return None
    raw = json.dumps(cursors, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _from(params: list[tuple[str, str]], cursor: str) -> list[tuple[str, str]]:
    """``params`` and the node's cursor (none for its first page)."""
    return [*params, ("cursor", cursor)] if cursor else params


async def _ask(
    calls: Calls, target: Target, where: str, params: list[tuple[str, str]]
) -> Reply | NodeDown:
    try:
        return await calls.get(target, where, params)
    except NodeDown as exc:
        return exc


def _failure(key: str, reply: Reply | NodeDown) -> dict[str, Any] | None:
    if isinstance(reply, NodeDown):
        return {"node": key, "status": "down", "message": str(reply)}
    if reply.ok and isinstance(reply.body, dict):
        return None
    error = reply.body.get("error") if isinstance(reply.body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return {"node": key, "status": reply.status, "message": message or "refused"}


def _answered(
    asked: Sequence[Target], replies: Sequence[Reply | NodeDown]
) -> tuple[list[tuple[Target, Reply]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The nodes that answered with a page (a replica in place of one that was
    down: :mod:`.calls`), the errors of the others, and notes of who
    answered for whom."""
    answered: list[tuple[Target, Reply]] = []
    errors: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for target, reply in zip(asked, replies, strict=True):
        failure = _failure(target.key, reply)
        if failure is not None or isinstance(reply, NodeDown):
            errors.append(failure or {"node": target.key, "status": "down", "message": ""})
            continue
        by = reply.by or target
        if by != target:
            notes.append({"node": target.key, "message": f"{by.key} answered for it"})
        if all(by != other for other, _ in answered):  # asked for itself too
            answered.append((by, reply))
    return answered, errors, notes


def _begun(asked: Sequence[Target], replies: Sequence[Reply | NodeDown]) -> dict[str, str]:
    """Per node that answered, the key of the node whose cursor it was given."""
    return {
        (reply.by or target).key: target.key
        for target, reply in reversed(list(zip(asked, replies, strict=True)))
        if isinstance(reply, Reply)
    }


async def list_executions(
    calls: Calls, targets: Sequence[Target], query: QueryParams
) -> dict[str, Any]:
    limit = _limit(query)
    cursors = _cursors(query, targets)
    asked = [t for t in targets if t.key in cursors]
    base = [(name, value) for name in FILTERS for value in query.getlist(name) if value]
    base.append(("limit", str(limit)))
    counting = not query.get("cursor") and not any(n in ("q", "until") for n, _ in base)
    if counting:
        base.append(("count", "1"))
    replies = await asyncio.gather(
        *(_ask(calls, t, "/ops/executions", _from(base, cursors[t.key])) for t in asked)
    )
    answered, errors, notes = _answered(asked, replies)
    if asked and len([e for e in errors if e["status"] == 400]) == len(asked):
        raise BadRequest(str(errors[0]["message"]))  # every node refused the same input
    begun = _begun(asked, replies)
    rows: list[dict[str, Any]] = []
    more: dict[str, str] = {}
    stores = by_store(calls.replicas, answered)
    for shared in stores:
        key, body = shared.target.key, shared.reply.body
        fitting, left_out = shared.rows("executions", _listable)
        rows += [shared.mark(row) for row in fitting]
        if left_out:
            errors.append(shared.unread(left_out))
        if body.get("next"):
            more[key] = str(body["next"])
        if body.get("scanned") is not None:
            notes.append({"node": key, "message": _scanned(body)})
    rows.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
    shown, rest = rows[:limit], rows[limit:]
    for key in {r["node"] for r in rest}:
        # This node's rows past the cut: it goes on after its last row shown.
        last = next((r for r in reversed(shown) if r["node"] == key), None)
        more[key] = last["cursor"] if last and last.get("cursor") else cursors[begun[key]]
    page = {"executions": shown, "next": _encode(more), "errors": errors, "notes": notes}
    return {**page, **_counted(calls, stores, errors)} if counting else page


def _counted(
    calls: Calls, stores: Sequence[Shared], errors: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The stores' totals added up (``count``), and the nodes left out of it:
    those that gave no total, and those that failed whose store no other
    node counted."""
    counted = {key for shared in stores for key in (shared.target.key, *shared.replicas)}
    total = 0
    uncounted = [
        key
        for key in dict.fromkeys(str(e["node"]) for e in errors)
        if key not in counted
        and (
            key not in calls.network.targets
            or not any(r.key in counted for r in calls.replicas.of(calls.network.targets[key]))
        )
    ]
    for shared in stores:
        count = shared.reply.body.get("count")
        if isinstance(count, int) and not isinstance(count, bool):
            total += count
        else:
            uncounted.append(shared.target.key)
    return {"count": total, "uncounted": uncounted}


def _listable(row: dict[str, Any]) -> bool:
    """A row the merge can order and go on after: its id, its creation time
    (a number), and its cursor (text), if any."""
    created, cursor = row.get("created_at"), row.get("cursor")
    if not isinstance(created, int | float) or isinstance(created, bool):
        return False
    text = cursor is None or isinstance(cursor, str)
    return isinstance(row.get("id"), str) and math.isfinite(created) and text


def _scanned(body: dict[str, Any]) -> str:
    return f"looked through {body['scanned']} executions for the id" + (
        "; more on the next page" if body.get("next") else ""
    )


async def inboxes(calls: Calls, targets: Sequence[Target], query: QueryParams) -> dict[str, Any]:
    """Every store's inbox, one page each (``cursor``: per node, as above)."""
    limit = _limit(query)
    cursors = _cursors(query, targets)
    asked = [t for t in targets if t.key in cursors]
    base = [("limit", str(limit))]
    replies = await asyncio.gather(
        *(_ask(calls, t, "/ops/inbox", _from(base, cursors[t.key])) for t in asked)
    )
    answered, errors, notes = _answered(asked, replies)
    items: list[dict[str, Any]] = []
    more: dict[str, str] = {}
    for shared in by_store(calls.replicas, answered):
        body = shared.reply.body
        fitting, left_out = shared.rows("items", lambda item: True)
        # "node" names the agent on the page; the workflow's node becomes "step".
        items += [
            shared.mark({**_asker_named(calls, item), "step": item.get("node")}) for item in fitting
        ]
        if left_out:
            errors.append(shared.unread(left_out))
        if body.get("next"):
            more[shared.target.key] = str(body["next"])
    return {"items": items, "next": _encode(more), "errors": errors, "notes": notes}


def _asker_named(calls: Calls, item: dict[str, Any]) -> dict[str, Any]:
    """``item`` with the peer that asked its question (if a peer did) named
    as the page names it, and its identity remembered for that node."""
    question = item.get("question")
    if not isinstance(question, dict) or not isinstance(question.get("asked_by"), dict):
        return item
    asked_by: dict[str, Any] = question["asked_by"]
    target = _target_of(calls.network, asked_by)
    if target is None:
        return item
    identity = asked_by.get("identity")
    if isinstance(identity, str) and identity:
        calls.reach.learn_identity(target.key, identity)
    named = {**asked_by, "target": target.key}
    return {**item, "question": {**question, "asked_by": named}}


def _target_of(network: Network, asked_by: dict[str, Any]) -> Target | None:
    endpoint, peer = asked_by.get("endpoint"), asked_by.get("peer")
    return network.find(
        endpoint if isinstance(endpoint, str) else None, peer if isinstance(peer, str) else None
    )
