"""Delegation over A2A: sending to peers (this module), and learning their results.

Three parts, one per direction of news:

* :class:`PeerDelegator` implements the delegate node's
  :class:`~agent_node.nodes.delegate.PeerClient`: it resolves the peer
  (:class:`~agent_node.a2a.discovery.Directory`), and sends ``SendMessage``
  with ``returnImmediately``, ``messageId`` and ``Idempotency-Key`` = the
  attempt's idempotency key, and a push config pointing at our
  ``/a2a/push`` with a token for this delegation; in A2A 1.0, or 0.3 when
  that is all the peer's card offers.
* :func:`~agent_node.a2a.push_receiver.push_endpoint` is ``POST /a2a/push``:
  a peer's push about one of our delegations resumes the waiting execution
  when it comes from the identity the task was sent to with the right
  token, and the task is settled.
  Anything else is refused (403, logged) or, for news we do not act on,
  acknowledged and ignored; a duplicate finds the wait gone and does nothing.
* :class:`~agent_node.a2a.watchdog.Watchdog` polls ``GetTask`` for delegations with no news (each
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

import dataclasses
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from agent_node.a2a import compat
from agent_node.a2a.discovery import Directory, PeerCard, PeerUnavailable, peer_identity
from agent_node.a2a.errors import from_jsonrpc_error
from agent_node.errors import RuntimeFailure
from agent_node.nodes.delegate import SETTLED, Delegation, Receipt
from agent_node.store.records import DelegationRecord

log = logging.getLogger(__name__)

__all__ = ["DelegationFailed", "PeerDelegator", "delegation_key", "push_token", "task_state"]

PUSH_NOT_SUPPORTED = -32003


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


def delegation_key(record: DelegationRecord) -> str:
    """The idempotency key of the visit that sent ``record``: ``execution/node/visit``."""
    return f"{record.execution_id}/{record.node}/{record.visit}"


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
        card = await self._reach(record)
        result, _ = await self._call(card, "GetTask", {"id": record.remote_task_id}, {})
        if not isinstance(result, Mapping):
            raise DelegationFailed(f"peer {record.peer!r} answered GetTask with no task")
        return result

    async def follow(self, record: DelegationRecord) -> Mapping[str, Any] | None:
        """Follow the peer's task over SSE (``SubscribeToTask``) until it
        settles; returns it then, or None when the stream ends first."""
        card = await self._reach(record)
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
                state = task_state(event.get("task") or event.get("statusUpdate") or {})
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
            "messageId": f"{delegation_key(record)}/answer/{digest}",
            "role": "ROLE_USER",
            "taskId": record.remote_task_id,
            "parts": answer.get("parts") or [{"text": ""}],
        }
        params = {"message": message, "configuration": {"returnImmediately": True}}
        try:
            await self._call(await self._reach(record), "SendMessage", params, {})
        except DelegationFailed as exc:
            if not exc.refused:
                raise
            log.info(
                "delegation %s: the peer refused the relayed answer: %s",
                delegation_key(record),
                exc,
            )

    async def cancel_task(self, record: DelegationRecord) -> None:
        card = await self._reach(record)
        await self._call(card, "CancelTask", {"id": record.remote_task_id}, {})

    async def _reach(self, record: DelegationRecord) -> PeerCard:
        """Where the peer's task is reached now. A configured peer may have
        moved since the task was sent (a redeploy, a new port): its current
        card is used when it is the same identity. Otherwise, or when its card
        cannot be had, the endpoint the task was sent to."""
        recorded = _card_of(record)
        if not self.directory.knows(record.peer):
            return recorded
        try:
            card = await self.directory.card(record.peer)
        except PeerUnavailable:
            return recorded
        if record.identity is not None and card.identity not in (None, record.identity):
            return recorded
        return dataclasses.replace(card, identity=record.identity or card.identity)

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


def task_state(task: Mapping[str, Any]) -> str:
    """The ``status.state`` of an A2A task (or status update) as JSON."""
    return str((task.get("status") or {}).get("state", ""))
