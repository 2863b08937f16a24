"""``POST /a2a/push``: peers' pushes about our delegations (see :mod:`.delegator`).

A push names its delegation by its token (``<key>.<HMAC>``, see
:func:`~agent_node.a2a.peers.push_tokens.push_token`): the row is found at once,
whether or not the peer's answer to the send has arrived yet. It is news
for the row (:func:`~agent_node.a2a.peers.news.inform`) when the token is
genuine and the push comes from the identity the peer is known by;
anything else is refused (403, logged). A peer we call with credentials
(``peers[].auth``) may have no certificate our trust bundle vouches for:
its pushes without a client certificate are taken on the token alone (a
secret of that one delegation, compared in constant time), over our TLS.

A status update that settles the task names only the task, which is then
read whole. A duplicate or stale push changes nothing: the row's state
machine decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from agent_node.a2a.peers.delegator import PeerDelegator
from agent_node.a2a.peers.news import inform
from agent_node.a2a.peers.peer_errors import PeerError
from agent_node.a2a.peers.push_tokens import token_key
from agent_node.a2a.protocol import compat, strict_json
from agent_node.nodes.delegation import SETTLED, TERMINAL_STATES, matters, task_state
from agent_node.runtime import Runtime
from agent_node.scope import caller_of
from agent_node.store.records import DelegationRecord

log = logging.getLogger(__name__)

__all__ = ["PUSH_PATH", "PushReceiver"]

PUSH_PATH = "/a2a/push"
TOKEN_HEADER = "x-a2a-notification-token"
MAX_PUSH_BYTES = 4 * 1024 * 1024


class PushReceiver:
    """``POST /a2a/push``: peers' pushes about our delegations (see the module doc).

    Two things keep a peer that pushes every event of its task, one after
    the other and each awaiting our answer (a2a-sdk 1.x does), from paying
    our transactions on its critical path:

    * News that settles nothing (the task's id, WORKING) is acknowledged at
      once and applied just after: a peer that pushes its first event
      before it answers the send (a2a-sdk) answers the send sooner. Such
      news is also in the send's answer and in every later push, so a crash
      in between loses nothing that is not said again. While this process
      is still sending, the send's answer applies it: the push is only kept
      in case that answer is lost (:meth:`PeerDelegator.heard_of`), and
      when it comes from the identity the send went to, before the row is
      even read (the store is not on the peer's path at all).
    * A finished artifact (``lastChunk``) is a sign that the task may be
      done: its task is read right away, in the background, once per
      delegation at a time. The status update that settles the task, which
      names only the task, then finds the read done (or under way) instead
      of starting one; a read that did not see the task settled is made
      again.
    """

    def __init__(
        self, runtime: Runtime, delegator: PeerDelegator, *, require_identity: bool
    ) -> None:
        self.runtime = runtime
        self.delegator = delegator
        self.require_identity = require_identity
        #: Whether a push may come without a client certificate at all (to the
        #: guard: this path is then open; each push is judged by its row).
        self.anonymous = any(
            delegator.directory.credentials(name) for name in delegator.directory.names()
        )
        self._reads: dict[str, asyncio.Task[Mapping[str, Any] | None]] = {}
        self._later: set[asyncio.Task[Any]] = set()

    async def endpoint(self, request: Request) -> Response:
        caller = caller_of(request.scope)
        if self.require_identity and caller is None and not self.anonymous:
            return _refuse(401, "a client certificate is required")
        push = await _received(request)
        if isinstance(push, Response):
            return push
        key = token_key(self.delegator.secret, request.headers.get(TOKEN_HEADER, ""))
        if (
            key is not None
            and push.says_only_work
            and self.delegator.heard_early(key, push.task_or_status, caller)
        ):
            return JSONResponse({"ok": True})
        genuine, row = await _row_of(self.runtime, key)
        if genuine and row is None:
            return JSONResponse({"ignored": "that delegation is settled"})
        if row is None:
            log.warning(
                "refused a push about task %s from %s: not a token of this node",
                push.task_id[:80],  # as the pusher wrote it: any length
                caller or "anonymous",
            )
            return _refuse(403, "this push does not match a delegation of this node")
        refusal = self._refusal(row, push, caller)
        if refusal is not None:
            return refusal
        row = replace(row, remote_task_id=push.task_id)
        task = push.task
        if task is None and push.state in TERMINAL_STATES:  # read it whole
            task = await self._read(row, settled=True)
            if task is None:  # settled with what? The watchdog's poll will tell
                return _refuse(503, "the task this push settles could not be read")
        elif task is None and push.finished_artifact and row.state in ("sending", "sent"):
            self._read_soon(row, caller)
        if task is None:
            task = push.task_or_status
        if not matters(row, task):
            return JSONResponse({"ok": True})
        if task_state(task) in TERMINAL_STATES or row.state not in ("sending", "sent"):
            await self._inform(row, task, caller)
        elif row.state == "sent" or not self.delegator.heard_of(row.key, task, caller):
            # the task's id and that it works: nothing to hold the peer for
            self._later_do(self._inform(row, task, caller))
        return JSONResponse({"ok": True})

    def _refusal(self, row: DelegationRecord, push: _Push, caller: str | None) -> Response | None:
        """Why ``push`` may not be news for ``row`` (None: it may)."""
        expected = row.identity or self.delegator.directory.identity_of(row.peer)
        token_alone = caller is None and self.delegator.directory.credentials(row.peer)
        if self.require_identity and caller is None and not token_alone:
            log.warning(
                "refused a push about delegation %s: no client certificate, and its peer %s"
                " is called with our certificate",
                row.key,
                row.peer,
            )
            return _refuse(401, "a client certificate is required")
        if expected is not None and caller != expected and not token_alone:
            log.warning(
                "refused a push about delegation %s from %s: its peer is %s",
                row.key,
                caller or "anonymous",
                expected,
            )
            return _refuse(403, "this push does not come from the delegation's peer")
        if row.remote_task_id and push.task_id != row.remote_task_id:
            return _refuse(403, "this push is about another task than the delegation's")
        return None

    async def close(self) -> None:
        """Stop what is still under way (it is all said again: see the class doc)."""
        pending = [*self._later, *self._reads.values()]
        for job in pending:
            job.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _inform(
        self, row: DelegationRecord, task: Mapping[str, Any], caller: str | None
    ) -> None:
        news = {"kind": "task", "task": dict(task), "via": "push", "identity": caller}
        news["auth"] = self.delegator.scheme(row.peer)  # for a push that beats the send's answer
        card = self.delegator.directory.cached(row.peer)
        if card is not None:  # where the task is, for a push that came before the send's answer
            news.update(peer=card.name, endpoint=card.endpoint, version=card.dialect)
        await inform(self.runtime, row, news)

    async def _read(self, row: DelegationRecord, *, settled: bool) -> Mapping[str, Any] | None:
        """The peer's task (None when it cannot be read now); with
        ``settled``, a read under way that finds it unsettled is made again."""
        running = self._reads.get(row.key)
        if running is not None:
            task = await asyncio.shield(running)
            if task is not None and (not settled or task_state(task) in TERMINAL_STATES):
                return task
        return await self._get(row)

    async def _get(self, row: DelegationRecord) -> Mapping[str, Any] | None:
        with contextlib.suppress(PeerError):
            return await self.delegator.get_task(row)
        return None

    def _read_soon(self, row: DelegationRecord, caller: str | None) -> None:
        """Read ``row``'s task in the background, and bring it home if settled."""
        if row.key in self._reads:
            return
        read = asyncio.ensure_future(self._get(row))
        self._reads[row.key] = read
        read.add_done_callback(lambda _: self._reads.pop(row.key, None))

        async def settle() -> None:
            task = await asyncio.shield(read)
            if task is not None and task_state(task) in TERMINAL_STATES:
                await self._inform(row, task, caller)

        self._later_do(settle())

    def _later_do(self, work: Coroutine[Any, Any, None]) -> None:
        job = asyncio.ensure_future(work)
        self._later.add(job)
        job.add_done_callback(self._done)

    def _done(self, job: asyncio.Task[Any]) -> None:
        self._later.discard(job)
        if not job.cancelled() and job.exception() is not None:
            log.warning("a push's news could not be applied: %s", job.exception())


async def _row_of(runtime: Runtime, key: str | None) -> tuple[bool, DelegationRecord | None]:
    """Whether the push's token was genuine (``key``: the idempotency key it
    names), and the delegation it names (None when it is settled, or the
    token is not ours)."""
    if key is None:
        return False, None
    execution_id, _, rest = key.partition("/")
    node, _, visit = rest.rpartition("/")
    if not node or not (visit.isascii() and visit.isdigit()) or len(visit) > 18:
        return False, None
    return True, await runtime.store.delegation(execution_id, node, int(visit))


async def _received(request: Request) -> _Push | Response:
    """The push ``request`` carries, or the answer that refuses it."""
    try:
        raw = await _read_capped(request, MAX_PUSH_BYTES)
    except ClientDisconnect:  # the peer died mid-push; its outbox pushes again
        return Response(status_code=400)
    if raw is None:
        return _refuse(413, f"push body larger than {MAX_PUSH_BYTES} bytes")
    push = _pushed_task(raw)
    if push is None:
        return _refuse(400, "not a push of an A2A task (StreamResponse or 0.3 task)")
    if "\x00" in push.task_id:  # no A2A id holds one, nor can PostgreSQL's text
        return _refuse(400, "a task id cannot hold a NUL character")
    return push


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
    #: An artifact update that finishes its artifact (``lastChunk``).
    finished_artifact: bool = False

    @property
    def state(self) -> str:
        return str(self.status.get("state", ""))

    @property
    def says_only_work(self) -> bool:
        """Whether this push tells no more than that the task exists and
        works (what the send's answer says too): no question, no end, no
        finished artifact."""
        return self.state not in SETTLED and not self.finished_artifact

    @property
    def task_or_status(self) -> Mapping[str, Any]:
        return self.task if self.task is not None else {"id": self.task_id, "status": self.status}


def _pushed_task(raw: bytes) -> _Push | None:
    """Read a push: a 1.0 ``StreamResponse`` or a 0.3 task; None for anything else.

    A 1.0 peer may push every event of the task as it happens (a2a-sdk 1.x
    does): a status update names only the task; an artifact update says
    nothing of its state (an empty status: news that changes nothing)."""
    try:
        body = strict_json.loads(raw)
    except ValueError:  # not JSON, NaN, nested too deeply, …
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
            finished = name == "artifactUpdate" and update.get("lastChunk") is True
            return _Push(
                update["taskId"], status if isinstance(status, dict) else {}, None, finished
            )
    return None


def _refuse(status: int, message: str) -> Response:
    return JSONResponse({"error": {"code": status, "message": message}}, status)
