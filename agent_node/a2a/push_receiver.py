"""``POST /a2a/push``: peers' pushes about our delegations (see :mod:`.delegator`).

A push names its delegation by its token (``<key>.<HMAC>``, see
:func:`~agent_node.a2a.delegator.push_token`): the row is found at once,
whether or not the peer's answer to the send has arrived yet. It is news
for the row (:func:`~agent_node.a2a.watchdog.inform`) when the token is
genuine and the push comes from the identity the peer is known by;
anything else is refused (403, logged). A status update that settles the
task names only the task, which is then read whole. A duplicate or stale
push changes nothing: the row's state machine decides.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from agent_node.a2a import compat
from agent_node.a2a.delegator import PeerDelegator, token_key
from agent_node.a2a.peer_errors import PeerError
from agent_node.a2a.watchdog import inform
from agent_node.nodes.delegation import TERMINAL_STATES, matters
from agent_node.runtime import Runtime
from agent_node.store.records import DelegationRecord
from agent_node.transport import caller_of

log = logging.getLogger(__name__)

__all__ = ["PUSH_PATH", "push_endpoint"]

PUSH_PATH = "/a2a/push"
TOKEN_HEADER = "x-a2a-notification-token"
MAX_PUSH_BYTES = 4 * 1024 * 1024


def push_endpoint(
    runtime: Runtime, delegator: PeerDelegator, *, require_identity: bool
) -> Callable[[Request], Awaitable[Response]]:
    """``POST /a2a/push``: peers' pushes about our delegations (see the module doc)."""

    async def endpoint(request: Request) -> Response:
        caller = caller_of(request.scope)
        if require_identity and caller is None:
            return _refuse(401, "a client certificate is required")
        try:
            raw = await _read_capped(request, MAX_PUSH_BYTES)
        except ClientDisconnect:  # the peer died mid-push; its outbox pushes again
            return Response(status_code=400)
        if raw is None:
            return _refuse(413, f"push body larger than {MAX_PUSH_BYTES} bytes")
        push = _pushed_task(raw)
        if push is None:
            return _refuse(400, "not a push of an A2A task (StreamResponse or 0.3 task)")
        genuine, row = await _row_of(runtime, delegator, request.headers.get(TOKEN_HEADER, ""))
        if genuine and row is None:
            return JSONResponse({"ignored": "that delegation is settled"})
        if row is None:
            log.warning(
                "refused a push about task %s from %s: not a token of this node",
                push.task_id,
                caller or "anonymous",
            )
            return _refuse(403, "this push does not match a delegation of this node")
        expected = row.identity or delegator.directory.identity_of(row.peer)
        if expected is not None and caller != expected:
            log.warning(
                "refused a push about delegation %s from %s: its peer is %s",
                row.key,
                caller or "anonymous",
                expected,
            )
            return _refuse(403, "this push does not come from the delegation's peer")
        if row.remote_task_id and push.task_id != row.remote_task_id:
            return _refuse(403, "this push is about another task than the delegation's")
        task = push.task
        if task is None and push.state in TERMINAL_STATES:  # read it whole
            with contextlib.suppress(PeerError):
                task = await delegator.get_task(replace(row, remote_task_id=push.task_id))
        if task is None:
            task = {"id": push.task_id, "status": push.status}
        if not matters(row, task):
            return JSONResponse({"ok": True})
        news = {"kind": "task", "task": dict(task), "via": "push", "identity": caller}
        card = delegator.directory.cached(row.peer)
        if card is not None:  # where the task is, for a push that came before the send's answer
            news.update(peer=card.name, endpoint=card.endpoint, version=card.version)
        await inform(runtime, row, news)
        return JSONResponse({"ok": True})

    return endpoint


async def _row_of(
    runtime: Runtime, delegator: PeerDelegator, token: str
) -> tuple[bool, DelegationRecord | None]:
    """Whether ``token`` is genuine, and the delegation it names (None when
    it is settled, or the token is not ours)."""
    key = token_key(delegator.secret, token)
    if key is None:
        return False, None
    execution_id, _, rest = key.partition("/")
    node, _, visit = rest.rpartition("/")
    if not node or not visit.isdigit():
        return False, None
    return True, await runtime.store.delegation(execution_id, node, int(visit))


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class _Push:
    """What a push says: the task it is about, its status, and the task
    itself when it came whole."""

    task_id: str
    status: Mapping[str, Any]
    task: Mapping[str, Any] | None

    @property
    def state(self) -> str:
        return str(self.status.get("state", ""))


def _pushed_task(raw: bytes) -> _Push | None:
    """Read a push: a 1.0 ``StreamResponse`` or a 0.3 task; None for anything else.

    A 1.0 peer may push every event of the task as it happens (a2a-sdk 1.x
    does): a status update names only the task; an artifact update says
    nothing of its state (an empty status: news that changes nothing)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if body.get("kind") == "task":  # a 0.3 receiver's shape
        with contextlib.suppress(Exception):
            body = {"task": compat.task_from_v03(body)}
    elif body.get("kind") == "status-update":
        with contextlib.suppress(Exception):
            body = compat.stream_event_from_v03(body)
    task = body.get("task")
    if isinstance(task, dict) and isinstance(task.get("id"), str):
        status = task.get("status")
        return _Push(task["id"], status if isinstance(status, dict) else {}, task)
    for name in ("statusUpdate", "artifactUpdate"):
        update = body.get(name)
        if isinstance(update, dict) and isinstance(update.get("taskId"), str):
            status = update.get("status")
            return _Push(update["taskId"], status if isinstance(status, dict) else {}, None)
    return None


def _refuse(status: int, message: str) -> Response:
    return JSONResponse({"error": {"code": status, "message": message}}, status)
