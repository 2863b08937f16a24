"""``POST /a2a/push``: peers' pushes about our delegations (see :mod:`.delegator`).

A push resumes the waiting execution only when it comes from the identity
the task was sent to, with the token of that delegation, and says the task
is settled; anything else is refused (403, logged) or, for news we do not
act on, acknowledged and ignored. A duplicate finds the wait gone and does
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent_node.a2a import compat
from agent_node.a2a.delegator import (
    DelegationFailed,
    PeerDelegator,
    delegation_key,
    push_token,
    task_state,
)
from agent_node.a2a.discovery import PeerUnavailable
from agent_node.errors import UsageError
from agent_node.nodes.delegate import SETTLED, delegation_event
from agent_node.runtime import Runtime
from agent_node.store.records import DelegationRecord
from agent_node.transport import caller_of

log = logging.getLogger(__name__)

__all__ = ["PUSH_PATH", "push_endpoint", "resolver"]

PUSH_PATH = "/a2a/push"
TOKEN_HEADER = "x-a2a-notification-token"
MAX_PUSH_BYTES = 4 * 1024 * 1024
#: How long a push may wait for its delegation to be committed (seconds).
EARLY_PUSH_GRACE = 2.0


Resolve = Callable[[DelegationRecord, Mapping[str, Any], str], Awaitable[bool]]


def resolver(runtime: Runtime) -> Resolve:
    """Resume the wait of ``record`` with the peer's settled ``task``; False
    when there was nothing to resume (already resolved, canceled, …)."""

    async def resolve(record: DelegationRecord, task: Mapping[str, Any], via: str) -> bool:
        payload = {"task": dict(task), "peer": record.peer, "sent_at": record.sent_at, "via": via}
        event = delegation_event(record.remote_task_id)
        try:
            await runtime.engine.control.signal(record.execution_id, event, payload)
        except UsageError as exc:  # no such wait any more: a duplicate, or it ended
            log.debug("delegation %s: nothing to resume (%s)", delegation_key(record), exc)
            return False
        runtime.engine.drive(record.execution_id)
        return True

    return resolve


def push_endpoint(
    runtime: Runtime, delegator: PeerDelegator, *, require_identity: bool
) -> Callable[[Request], Awaitable[Response]]:
    """``POST /a2a/push``: peers' pushes about our delegations (see the module doc)."""
    resolve = resolver(runtime)

    async def endpoint(request: Request) -> Response:
        caller = caller_of(request.scope)
        if require_identity and caller is None:
            return _refuse(401, "a client certificate is required")
        raw = await _read_capped(request, MAX_PUSH_BYTES)
        if raw is None:
            return _refuse(413, f"push body larger than {MAX_PUSH_BYTES} bytes")
        push = _pushed_task(raw)
        if push is None:
            return _refuse(400, "not a push of an A2A task (StreamResponse or 0.3 task)")
        task_id = push.task_id
        token = request.headers.get(TOKEN_HEADER, "")
        records = await _records_of(runtime, task_id)
        if not records:
            return JSONResponse({"ignored": "no delegation waits on this task"})
        accepted = [r for r in records if _genuine(r, caller, token, delegator.secret)]
        if not accepted:
            log.warning(
                "refused a push about task %s from %s: wrong token or identity",
                task_id,
                caller or "anonymous",
            )
            return _refuse(403, "this push does not match a delegation of this node")
        if not push.settled:
            return JSONResponse({"ok": True})
        for record in accepted:
            settled = push.task
            if settled is None:  # a status update: read the task itself
                with contextlib.suppress(DelegationFailed, PeerUnavailable):
                    fetched = await delegator.get_task(record)
                    settled = fetched if task_state(fetched) in SETTLED else None
            if settled is not None:
                await resolve(record, settled, "push")
        return JSONResponse({"ok": True})

    return endpoint


async def _records_of(runtime: Runtime, task_id: str) -> list[DelegationRecord]:
    """The delegations waiting on ``task_id``. A fast peer can push before the
    sender has committed ``delegation_sent`` (it does so as soon as the peer
    answers the send): give that commit a moment rather than drop the push."""
    deadline = time.monotonic() + EARLY_PUSH_GRACE
    delay = 0.005
    while True:
        records = await runtime.store.delegations_of_task(task_id)
        if records or time.monotonic() >= deadline:
            return records
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


def _genuine(record: DelegationRecord, caller: str | None, token: str, secret: bytes) -> bool:
    expected = push_token(secret, delegation_key(record))
    if not hmac.compare_digest(expected, token):
        return False
    return record.identity is None or record.identity == caller


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
    """What a push says: the task it is about, the task itself when it came
    whole, and whether the task is settled (a state delegation acts on)."""

    task_id: str
    task: Mapping[str, Any] | None
    settled: bool


def _pushed_task(raw: bytes) -> _Push | None:
    """Read a push: a 1.0 ``StreamResponse`` or a 0.3 task; None for anything else.

    A 1.0 peer may push every event of the task as it happens (a2a-sdk 1.x
    does): an artifact update, or a status update to a state we do not act
    on, is acknowledged and ignored; a settled status update names only the
    task, which is then read whole."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if body.get("kind") == "task":  # a 0.3 receiver's shape
        with contextlib.suppress(Exception):
            body = {"task": compat.task_from_v03(body)}
    task = body.get("task")
    if isinstance(task, dict) and isinstance(task.get("id"), str):
        return _Push(task["id"], task, task_state(task) in SETTLED)
    update = body.get("statusUpdate")
    if isinstance(update, dict) and isinstance(update.get("taskId"), str):
        return _Push(update["taskId"], None, task_state(update) in SETTLED)
    update = body.get("artifactUpdate")
    if isinstance(update, dict) and isinstance(update.get("taskId"), str):
        return _Push(update["taskId"], None, False)
    return None


def _refuse(status: int, message: str) -> Response:
    return JSONResponse({"error": {"code": status, "message": message}}, status)
