"""Delegation over A2A: sending to peers, and learning their results.

Three parts, one per direction of news:

* :class:`PeerDelegator` implements the delegate node's
  :class:`~agent_node.nodes.delegate.PeerClient`: it resolves the peer
  (:class:`~agent_node.a2a.discovery.Directory`), and sends ``SendMessage``
  with ``returnImmediately``, ``messageId`` and ``Idempotency-Key`` = the
  attempt's idempotency key, and a push config pointing at our
  ``/a2a/push`` with a token for this delegation; in A2A 1.0, or 0.3 when
  that is all the peer's card offers.
* :func:`push_endpoint` is ``POST /a2a/push``: a peer's push about one of our
  delegations resumes the waiting execution when it comes from the identity
  the task was sent to with the right token, and the task is settled.
  Anything else is refused (403, logged) or, for news we do not act on,
  acknowledged and ignored; a duplicate finds the wait gone and does nothing.
* :class:`Watchdog` polls ``GetTask`` for delegations with no news (each
  after ``poll`` seconds, then doubling up to ``max_poll``), so a lost push
  never hangs a workflow, and a peer that cannot push is simply polled.
  A delegation whose wait is gone (the execution was canceled, or the wait
  timed out) has its peer task canceled, then its row is dropped.

Tokens are an HMAC of the delegation's idempotency key under a secret of the
node (derived from its TLS key, so replicas sharing an identity agree; a
node without TLS derives it from its name): nothing to store, and the same
token when a send is repeated after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent_node.a2a import compat
from agent_node.a2a.discovery import Directory, PeerCard, PeerUnavailable, peer_identity
from agent_node.a2a.errors import from_jsonrpc_error
from agent_node.errors import RuntimeFailure, UsageError
from agent_node.nodes.delegate import SETTLED, Delegation, Receipt, delegation_event
from agent_node.runtime import Runtime
from agent_node.store.records import DelegationRecord
from agent_node.transport import caller_of

__all__ = [
    "PUSH_PATH",
    "DelegationFailed",
    "PeerDelegator",
    "Watchdog",
    "push_endpoint",
    "push_token",
]

log = logging.getLogger(__name__)

PUSH_PATH = "/a2a/push"
TOKEN_HEADER = "x-a2a-notification-token"
MAX_PUSH_BYTES = 4 * 1024 * 1024
PUSH_NOT_SUPPORTED = -32003
#: Polls of a peer that does not answer before its task is left uncanceled.
ABANDON_TRIES = 10


class DelegationFailed(RuntimeFailure):
    """A call to a peer failed (the node's retry policy applies). ``refused``:
    the peer answered with an error, as opposed to not answering at all."""

    def __init__(self, message: str, *, refused: bool = False, code: int | None = None) -> None:
        super().__init__(message)
        self.refused = refused
        #: The peer's JSON-RPC error code, when it answered with one.
        self.code = code


def push_token(secret: bytes, idempotency_key: str) -> str:
    """The token a peer must send back with pushes about one delegation."""
    return hmac.new(secret, idempotency_key.encode(), hashlib.sha256).hexdigest()


def _key(record: DelegationRecord) -> str:
    return f"{record.execution_id}/{record.node}/{record.visit}"


# -- calling peers -------------------------------------------------------------------


class PeerDelegator:
    """Sends delegations and reads peers' tasks (see the module doc)."""

    def __init__(
        self,
        directory: Directory,
        client: httpx.AsyncClient,
        *,
        push_url: str | None,
        secret: bytes,
    ) -> None:
        self.directory = directory
        self.client = client
        #: Where peers push to (None: never ask for pushes, only poll).
        self.push_url = push_url
        self.secret = secret

    async def send(self, delegation: Delegation) -> Receipt:
        card = await self._resolve(delegation)
        message: dict[str, Any] = {
            "messageId": delegation.idempotency_key,
            "role": "ROLE_USER",
            "parts": _parts(delegation),
        }
        if delegation.skill is not None:
            message["metadata"] = {"skill": delegation.skill}
        configuration: dict[str, Any] = {"returnImmediately": True}
        capabilities = card.card.get("capabilities") or {}
        pushes = bool(capabilities.get("pushNotifications"))
        if delegation.push and pushes and self.push_url is not None:
            configuration["taskPushNotificationConfig"] = {
                "url": self.push_url,
                "token": push_token(self.secret, delegation.idempotency_key),
            }
        params = {"message": message, "configuration": configuration}
        headers = {"Idempotency-Key": delegation.idempotency_key}
        if delegation.traceparent:
            headers["traceparent"] = delegation.traceparent
        try:
            result, identity = await self._call(card, "SendMessage", params, headers)
        except DelegationFailed as exc:
            if exc.code != PUSH_NOT_SUPPORTED or "taskPushNotificationConfig" not in configuration:
                raise
            # Its card said it pushes, but it no longer does (a cached card):
            # send without, and let the watchdog poll.
            self.directory.forget(card.name)
            del configuration["taskPushNotificationConfig"]
            result, identity = await self._call(card, "SendMessage", params, headers)
        task = result.get("task") if isinstance(result, Mapping) else None
        if not isinstance(task, Mapping):
            task = _task_of_message(result)
        follow = "taskPushNotificationConfig" not in configuration and bool(
            capabilities.get("streaming")
        )
        return Receipt(card.name, card.endpoint, card.version, identity, task, follow)

    async def get_task(self, record: DelegationRecord) -> Mapping[str, Any]:
        card = _card_of(record)
        result, _ = await self._call(card, "GetTask", {"id": record.remote_task_id}, {})
        if not isinstance(result, Mapping):
            raise DelegationFailed(f"peer {record.peer!r} answered GetTask with no task")
        return result

    async def follow(self, record: DelegationRecord) -> Mapping[str, Any] | None:
        """Follow the peer's task over SSE (``SubscribeToTask``) until it
        settles; returns it then, or None when the stream ends first."""
        card = _card_of(record)
        name, params = "SubscribeToTask", {"id": record.remote_task_id}
        headers = {"Accept": "text/event-stream"}
        if card.version == "0.3":
            name, params = compat.request_params_to_v03(name, params)
        else:
            headers["A2A-Version"] = "1.0"
        body = {"jsonrpc": "2.0", "id": 1, "method": name, "params": params}
        timeout = httpx.Timeout(30.0, read=None)  # a stream may be quiet for long
        async with self.client.stream(
            "POST", card.endpoint, json=body, headers=headers, timeout=timeout
        ) as response:
            if card.identity is not None and peer_identity(response) != card.identity:
                raise DelegationFailed(f"peer {card.name!r} answered as someone else")
            async for event in _sse_results(response):
                if card.version == "0.3":
                    event = compat.stream_event_from_v03(event)
                state = _state(event.get("task") or event.get("statusUpdate") or {})
                if state in SETTLED:
                    return await self.get_task(record)  # whole, with its artifacts
        return None

    async def relay(self, record: DelegationRecord) -> None:
        """Send our caller's answer (``record.relay``) to the peer's task that
        asked for it. A peer that refuses it (the task moved on: the answer
        came twice, after a crash) is done with it too."""
        answer = json.loads(record.relay or "{}")
        digest = hashlib.sha256((record.relay or "").encode()).hexdigest()[:12]
        message = {
            "messageId": f"{_key(record)}/answer/{digest}",
            "role": "ROLE_USER",
            "taskId": record.remote_task_id,
            "parts": answer.get("parts") or [{"text": ""}],
        }
        params = {"message": message, "configuration": {"returnImmediately": True}}
        try:
            await self._call(_card_of(record), "SendMessage", params, {})
        except DelegationFailed as exc:
            if not exc.refused:
                raise
            log.info("delegation %s: the peer refused the relayed answer: %s", _key(record), exc)

    async def cancel_task(self, record: DelegationRecord) -> None:
        card = _card_of(record)
        await self._call(card, "CancelTask", {"id": record.remote_task_id}, {})

    async def _resolve(self, delegation: Delegation) -> PeerCard:
        if delegation.peer is not None:
            return await self.directory.card(delegation.peer)
        return await self.directory.find(skill=delegation.skill, tag=delegation.tag)

    async def _call(
        self, card: PeerCard, method: str, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[Any, str | None]:
        name, body_params = method, params
        if card.version == "0.3":
            name, body_params = compat.request_params_to_v03(method, params)
        else:
            headers = {**headers, "A2A-Version": "1.0"}
        body = {"jsonrpc": "2.0", "id": 1, "method": name, "params": body_params}
        try:
            response = await self.client.post(card.endpoint, json=body, headers=headers)
            identity = peer_identity(response)
        except httpx.HTTPError as exc:
            self.directory.forget(card.name)
            raise DelegationFailed(f"peer {card.name!r}: {type(exc).__name__}: {exc}") from None
        if card.identity is not None and identity != card.identity:
            raise DelegationFailed(
                f"peer {card.name!r} answered as {identity!r}, not {card.identity!r}"
            )
        answer = _answer(card, response)
        if "error" in answer:
            raw = answer["error"]
            error = from_jsonrpc_error(raw if isinstance(raw, dict) else {})
            raise DelegationFailed(
                f"peer {card.name!r} refused {method}: {error.message}",
                refused=True,
                code=error.error.row.code,
            )
        result = answer.get("result")
        if card.version == "0.3":
            result = compat.result_from_v03(method, result)
        return result, identity


async def _sse_results(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON-RPC ``result`` of each Server-Sent Event of ``response``."""
    if response.status_code != 200:
        raise DelegationFailed(f"SubscribeToTask answered HTTP {response.status_code}")
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        answer = json.loads(await response.aread() or b"{}")
        error = answer.get("error") if isinstance(answer, dict) else None
        reason = error.get("message") if isinstance(error, dict) else "not an event stream"
        raise DelegationFailed(f"SubscribeToTask: {reason}", refused=True)
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].strip())
            continue
        if line or not data:
            continue
        try:
            message = json.loads("".join(data))
        except ValueError:
            message = None
        data = []
        if isinstance(message, dict) and isinstance(message.get("error"), dict):
            raise DelegationFailed(f"SubscribeToTask: {message['error'].get('message')}")
        if isinstance(message, dict) and isinstance(message.get("result"), dict):
            yield message["result"]


def _answer(card: PeerCard, response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise DelegationFailed(
            f"peer {card.name!r} answered HTTP {response.status_code} without JSON-RPC"
        )
    return answer


def _card_of(record: DelegationRecord) -> PeerCard:
    """Enough of a card to call the endpoint a delegation was sent to."""
    return PeerCard(
        name=record.peer,
        base_url=record.endpoint,
        card={},
        endpoint=record.endpoint,
        version="0.3" if record.version == "0.3" else "1.0",
        identity=record.identity,
        etag=None,
        fetched_at=record.sent_at,
        expires_at=record.sent_at,
        signed_by=None,
        card_url=record.endpoint,
    )


def _parts(delegation: Delegation) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if delegation.text is not None:
        parts.append({"text": delegation.text})
    if delegation.data is not None:
        parts.append({"data": dict(delegation.data)})
    return parts or [{"text": ""}]


def _task_of_message(result: Any) -> Mapping[str, Any]:
    """A peer that answered with a Message instead of a task: a completed
    task holding the message's parts, so the workflow goes on alike."""
    message = result.get("message") if isinstance(result, Mapping) else None
    if not isinstance(message, Mapping):
        raise DelegationFailed("the peer answered SendMessage with neither a task nor a message")
    return {
        "id": "",
        "status": {"state": "TASK_STATE_COMPLETED", "message": dict(message)},
        "artifacts": [{"artifactId": "message", "parts": list(message.get("parts") or [])}],
    }


# -- resuming -------------------------------------------------------------------------


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
            log.debug("delegation %s: nothing to resume (%s)", _key(record), exc)
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
        records = await runtime.store.delegations_of_task(task_id)
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
                    settled = fetched if _state(fetched) in SETTLED else None
            if settled is not None:
                await resolve(record, settled, "push")
        return JSONResponse({"ok": True})

    return endpoint


def _genuine(record: DelegationRecord, caller: str | None, token: str, secret: bytes) -> bool:
    expected = push_token(secret, _key(record))
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
        return _Push(task["id"], task, _state(task) in SETTLED)
    update = body.get("statusUpdate")
    if isinstance(update, dict) and isinstance(update.get("taskId"), str):
        return _Push(update["taskId"], None, _state(update) in SETTLED)
    update = body.get("artifactUpdate")
    if isinstance(update, dict) and isinstance(update.get("taskId"), str):
        return _Push(update["taskId"], None, False)
    return None


def _state(task: Mapping[str, Any]) -> str:
    return str((task.get("status") or {}).get("state", ""))


def _refuse(status: int, message: str) -> Response:
    return JSONResponse({"error": {"code": status, "message": message}}, status)


# -- the watchdog -----------------------------------------------------------------------


class Watchdog:
    """Polls delegations that had no news (see the module doc)."""

    def __init__(
        self,
        runtime: Runtime,
        delegator: PeerDelegator,
        *,
        interval: float = 1.0,
        max_poll: float = 60.0,
        concurrency: int = 16,
        max_follow: int = 100,
    ) -> None:
        self.runtime = runtime
        self.delegator = delegator
        self.interval = interval
        self.max_poll = max_poll
        self.concurrency = concurrency
        self._resolve = resolver(runtime)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._canceled: set[str] = set()
        self._unsubscribe: Callable[[], None] | None = None
        #: Delegations followed over SSE (peers that stream but do not push).
        self._following: dict[str, asyncio.Task[None]] = {}
        self._unfollowable: set[str] = set()
        self.max_follow = max_follow

    async def start(self) -> None:
        if self._task is None:
            self._unsubscribe = self.runtime.store.subscribe(self._on_notice)
            self._task = asyncio.create_task(self._run(), name="delegation-watchdog")

    def _on_notice(self, kind: str, execution_id: str) -> None:
        if kind == "cancel":  # its delegations' peer tasks are to be canceled now
            self._canceled.add(execution_id)
            self._wake.set()
        elif kind == "delegation":  # an answer to relay, due now
            self._wake.set()

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        following, self._following = list(self._following.values()), {}
        for stream in following:
            stream.cancel()
        await asyncio.gather(*following, return_exceptions=True)

    async def _due_now(self, execution_id: str) -> None:
        """Make ``execution_id``'s delegations due (it was canceled)."""
        for record in await self.runtime.store.delegations(execution_id):
            record.next_poll_at = 0.0
            await self.runtime.store.reschedule_delegation(record)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.check_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delegation watchdog: cannot read the store; trying again")

    async def check_due(self) -> int:
        """Poll every delegation due now; returns how many were looked at."""
        while self._canceled:
            await self._due_now(self._canceled.pop())
        now = time.time()
        store = self.runtime.store
        due = await store.claim_delegations(
            now=now, lease_until=now + self.max_poll, limit=self.concurrency
        )
        await asyncio.gather(*(self._check(record) for record in due))
        return len(due)

    async def _check(self, record: DelegationRecord) -> None:
        store = self.runtime.store
        waits = await store.waits(record.execution_id)
        kind = next(
            (w.kind for w in waits if (w.node, w.visit) == (record.node, record.visit)), None
        )
        waiting = kind == "delegation"
        if kind == "input":  # the peer's question is our caller's to answer: nothing to poll
            record.next_poll_at = time.time() + self.max_poll
            await store.reschedule_delegation(record)
            return
        try:
            if not waiting:
                await self._abandon(record)
                return
            if _key(record) in self._following or await self._follows(record):
                return
            if record.relay is not None:
                await self.delegator.relay(record)
                # Not polled at once: the peer may not have taken the answer in yet.
                record.relay, record.polls = None, 0
                record.next_poll_at = time.time() + 1.0
                await store.reschedule_delegation(record)
                return
            task = await self.delegator.get_task(record)
            if _state(task) in SETTLED and await self._resolve(record, task, "poll"):
                return
        except (DelegationFailed, PeerUnavailable) as exc:
            log.info("delegation %s: peer %r: %s; will retry", _key(record), record.peer, exc)
            if not waiting and record.polls >= ABANDON_TRIES:
                log.warning("delegation %s: gave up canceling the peer's task", _key(record))
                await store.delete_delegation(record.execution_id, record.node, record.visit)
                return
        record.polls += 1
        delay = min(self.max_poll, 2.0 ** min(record.polls, 16))
        record.next_poll_at = time.time() + delay
        await store.reschedule_delegation(record)

    async def _follows(self, record: DelegationRecord) -> bool:
        """Start following ``record``'s task over SSE when its peer streams but
        does not push (and there is room); whether it is followed now."""
        key = _key(record)
        if record.relay is not None or key in self._unfollowable:
            return False
        if len(self._following) >= self.max_follow:
            return False
        try:
            card = await self.delegator.directory.card(record.peer)
        except (PeerUnavailable, UsageError):
            return False
        capabilities = card.card.get("capabilities") or {}
        if capabilities.get("pushNotifications") or not capabilities.get("streaming"):
            return False
        record.next_poll_at = time.time() + self.max_poll  # polls: a safety net only
        await self.runtime.store.reschedule_delegation(record)
        self._following[key] = asyncio.create_task(self._follow(record), name=f"follow {key}")
        return True

    async def _follow(self, record: DelegationRecord) -> None:
        resumed = False
        try:
            task = await self.delegator.follow(record)
            resumed = task is not None and await self._resolve(record, task, "stream")
        except (DelegationFailed, PeerUnavailable, httpx.HTTPError) as exc:
            log.info("delegation %s: cannot follow peer %r: %s", _key(record), record.peer, exc)
            self._unfollowable.add(_key(record))  # polled from now on
        finally:
            self._following.pop(_key(record), None)
        if not resumed:  # poll now (a stream that could not start: the task may be done)
            record.next_poll_at = time.time()
            await self.runtime.store.reschedule_delegation(record)
            self._wake.set()

    async def _abandon(self, record: DelegationRecord) -> None:
        """The wait is gone (canceled, timed out): cancel the peer's task, drop the row.
        A peer that cannot be reached is tried again (raises); one that refuses
        (the task ended already, say) is done with."""
        try:
            await self.delegator.cancel_task(record)
        except DelegationFailed as exc:
            if not exc.refused:
                raise
        await self.runtime.store.delete_delegation(record.execution_id, record.node, record.visit)
        log.info("delegation %s: canceled the peer's task %s", _key(record), record.remote_task_id)
