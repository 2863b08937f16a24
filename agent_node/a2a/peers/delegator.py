"""Delegation over A2A, the network side: the calls a delegation makes to its peer.

Three modules share the work (the state machine itself is pure, in
:mod:`agent_node.nodes.delegation`):

* :class:`PeerDelegator` (this module) makes the calls, to the peer
  :mod:`.peer_choice` picks: ``SendMessage`` with
  ``returnImmediately``, ``messageId`` and ``Idempotency-Key`` = the visit's
  idempotency key, and a push config pointing at our ``/a2a/push`` with this
  delegation's token; ``GetTask``, ``SubscribeToTask`` (SSE), the relay of
  our caller's answer, ``CancelTask`` (:mod:`.calls`: over JSON-RPC of A2A
  1.0, or 0.3, or HTTP+JSON of 1.0, as the peer's card offers; JSON-RPC
  preferred; gRPC of 1.0 through :mod:`.grpc_calls` for a peer offering
  nothing else, grpcio imported then only). Every call expects the peer's identity (the one
  configured, else the one that served its card) at the TLS handshake
  (:func:`~agent_node.a2a.peers.client.expecting`): a server that is anyone else
  is refused before any of the request — message, push token — is sent.
  Every failure is a :class:`~agent_node.a2a.peers.peer_errors.PeerError` that
  says whether trying again later may help, and names the peer, never its URL.
* :class:`~agent_node.a2a.peers.watchdog.Watchdog` drives each delegation row.
* :class:`~agent_node.a2a.peers.push_receiver.PushReceiver` takes peers' pushes.

Tokens name their delegation: ``<key, base64url>.<HMAC of the key>`` under a
secret of the node (derived from its TLS key, so replicas sharing an
identity agree). A push is matched to its row by the key it carries — even
before the peer's answer to the send has told us the task's id — and proven
by the HMAC: nothing to store, and the same token when a send is repeated.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from agent_node.a2a.peers.calls import call, subscribe
from agent_node.a2a.peers.credentials import NOTHING, Presented
from agent_node.a2a.peers.directory import Directory
from agent_node.a2a.peers.discovery import PeerCard
from agent_node.a2a.peers.peer_choice import reach_peer, resolve_peer
from agent_node.a2a.peers.peer_errors import PeerError, unreachable
from agent_node.a2a.peers.push_tokens import push_token, token_key
from agent_node.errors import NodeFailed
from agent_node.nodes.delegate import Delegation, Receipt
from agent_node.nodes.delegation import SETTLED, task_state
from agent_node.store.records import DelegationRecord

if TYPE_CHECKING:
    from agent_node.a2a.peers.grpc_calls import GrpcPeers

log = logging.getLogger(__name__)

__all__ = ["PeerDelegator", "push_token", "task_state", "token_key"]

PUSH_NOT_SUPPORTED = -32003
#: A cancel's refusals that say the task is over (TaskNotCancelable: it is
#: terminal) or gone (TaskNotFound): nothing is left running.
_OVER = frozenset({-32001, -32002})


@dataclasses.dataclass
class _Sending:
    """A send under way in this process."""

    #: The identity the peer is known by: whom its pushes must come from.
    peer_identity: str | None
    #: What a push told of the task meanwhile, and who pushed it (:meth:`PeerDelegator.heard_of`).
    pushed: tuple[Mapping[str, Any], str | None] | None = None


class PeerDelegator:
    """Makes a delegation's calls to its peer (see the module doc)."""

    def __init__(
        self,
        directory: Directory,
        client: httpx.AsyncClient,
        *,
        push_url: str | None,
        secret: bytes,
        grpc: Callable[[], GrpcPeers] | None = None,
    ) -> None:
        self.directory = directory
        self.client = client
        #: Where peers push to (None: never ask for pushes, only poll).
        self.push_url = push_url
        self.secret = secret
        #: Makes the gRPC client the first time a peer is called over gRPC.
        self._make_grpc = grpc
        self._grpc: GrpcPeers | None = None
        #: Sends under way in this process, by idempotency key.
        self._sending: dict[str, _Sending] = {}

    def heard_of(self, key: str, task: Mapping[str, Any], identity: str | None) -> bool:
        """Keep ``task``, pushed by the peer (``identity``) while our send of
        ``key`` is under way in this process: the send's answer will say the
        same, and should it be lost, the send answers with this instead of
        being tried again (a second task at a peer that does not deduplicate).
        False when no send of ``key`` is under way here."""
        sending = self._sending.get(key)
        if sending is None:
            return False
        if sending.pushed is None or task_state(task):  # an artifact's push tells no state
            sending.pushed = (task, identity)
        return True

    def heard_early(self, key: str, task: Mapping[str, Any], identity: str | None) -> bool:
        """:meth:`heard_of`, for a push read before its delegation's row: a
        push from the peer our send of ``key`` went to is kept without the
        row being read (the send's answer will say the same; a peer that
        pushes before it answers, as a2a-sdk does, waits on us for nothing
        else). False when no send of ``key`` is under way here, or the push
        comes from another identity (the row's checks then judge it)."""
        sending = self._sending.get(key)
        if sending is None or sending.peer_identity != identity:
            return False
        return self.heard_of(key, task, identity)

    def check(self, delegation: Delegation) -> None:
        """Refuse at once a delegation to a peer that is not configured."""
        if delegation.peer is not None and not self.directory.knows(delegation.peer):
            raise NodeFailed(f"no peer named {delegation.peer!r} is configured (see peers:)")

    async def send(self, row: DelegationRecord) -> Receipt:
        """Send the row's request; the peer's answer (its task, or a message
        as a completed task). Raises :class:`PeerError`."""
        delegation = Delegation.from_json(row.request or "{}")
        card = await resolve_peer(self.directory, delegation, row)
        message: dict[str, Any] = {
            "messageId": delegation.idempotency_key,
            "role": "ROLE_USER",
            "parts": _parts(delegation),
        }
        if delegation.context is not None:
            message["contextId"] = delegation.context
        if delegation.skill is not None:
            message["metadata"] = {"skill": delegation.skill}
        configuration: dict[str, Any] = {"returnImmediately": True}
        capabilities = card.card.get("capabilities") or {}
        if delegation.push and capabilities.get("pushNotifications") and self.push_url:
            configuration["taskPushNotificationConfig"] = {
                "url": self.push_url,
                "token": push_token(self.secret, delegation.idempotency_key),
            }
        params = {"message": message, "configuration": configuration}
        headers = {"Idempotency-Key": delegation.idempotency_key}
        if delegation.traceparent:
            headers["traceparent"] = delegation.traceparent
        key = delegation.idempotency_key
        self._sending[key] = sending = _Sending(self.directory.identity_of(card.name))
        try:
            result, identity = await self._send(card, params, headers, configuration)
        except PeerError as exc:
            pushed = sending.pushed
            if pushed is None or not exc.transient:
                raise
            log.info("delegation %s: the send's answer was lost, its push told: %s", key, exc)
            auth = self.scheme(card.name)
            return Receipt(card.name, card.endpoint, card.dialect, pushed[1], pushed[0], auth=auth)
        finally:
            self._sending.pop(key, None)
        task = result.get("task") if isinstance(result, Mapping) else None
        if not isinstance(task, Mapping):
            task = _task_of_message(card, result)
        task = _with_news(task, sending.pushed)
        follow = "taskPushNotificationConfig" not in configuration and bool(
            capabilities.get("streaming")
        )
        auth = self.scheme(card.name)
        return Receipt(card.name, card.endpoint, card.dialect, identity, task, follow, auth)

    async def _send(
        self,
        card: PeerCard,
        params: dict[str, Any],
        headers: dict[str, str],
        configuration: dict[str, Any],
    ) -> tuple[Any, str | None]:
        try:
            return await self._call(card, "SendMessage", params, headers)
        except PeerError as exc:
            if exc.code != PUSH_NOT_SUPPORTED or "taskPushNotificationConfig" not in configuration:
                raise
            # Its card said it pushes, but it no longer does (a cached card):
            # send without, and let the watchdog poll.
            self.directory.forget(card.name)
            del configuration["taskPushNotificationConfig"]
            return await self._call(card, "SendMessage", params, headers)

    async def get_task(self, row: DelegationRecord) -> Mapping[str, Any]:
        card = await reach_peer(self.directory, row)
        # No history: a delegation reads the status and the artifacts only, and
        # a long conversation's history would be serialized and parsed for nothing.
        params = {"id": row.remote_task_id, "historyLength": 0}
        result, _ = await self._call(card, "GetTask", params, {})
        if not isinstance(result, Mapping) or not isinstance(result.get("status"), Mapping):
            raise PeerError(f"peer {card.name!r} answered GetTask with no task", transient=True)
        return result

    async def find_task(self, row: DelegationRecord) -> Mapping[str, Any] | None:
        """The peer's task of a delegation whose send's answer we never had,
        found without sending anything that could create it: ``ListTasks``
        by the ``contextId`` its message named, over whichever binding of
        A2A 1.0 the peer is called (JSON-RPC, ``GET /tasks?contextId=…`` of
        HTTP+JSON, gRPC). None: the peer has none (the send never reached
        it). A :class:`PeerError` for good when it cannot be looked up so (a
        row older than the ``contextId``, a peer called over A2A 0.3, which
        has no ``ListTasks``, a peer that refuses ``ListTasks``)."""
        delegation = Delegation.from_json(row.request or "{}")
        card = await resolve_peer(self.directory, delegation, row)
        why = None
        if delegation.context is None:
            why = "its message named no contextId (sent by an older release)"
        elif card.version == "0.3":
            why = f"peer {card.name!r} is called over {card.dialect}, which has no ListTasks"
        if why is not None:
            raise PeerError(
                f"the peer's task cannot be found without sending again: {why}", transient=False
            )
        params = {"contextId": delegation.context, "pageSize": 10, "historyLength": 0}
        result, _ = await self._call(card, "ListTasks", params, {})
        tasks = result.get("tasks") if isinstance(result, Mapping) else None
        for task in tasks if isinstance(tasks, list) else []:
            if isinstance(task, Mapping) and task.get("contextId") == delegation.context:
                if isinstance(task.get("id"), str) and task["id"]:
                    row.peer, row.endpoint, row.version = card.name, card.endpoint, card.dialect
                    return task
        return None

    async def follow(self, row: DelegationRecord) -> AsyncIterator[Mapping[str, Any]]:
        """Follow the peer's task (``SubscribeToTask``): each task or status
        update it streams, until the stream ends."""
        card = await reach_peer(self.directory, row)
        presented = await self._present(card)
        if card.binding == "GRPC":
            events = self._grpc_of(card).subscribe(card, row.remote_task_id, presented)
        else:
            events = subscribe(self.client, card, row.remote_task_id, presented)
        try:
            async for event, identity in events:
                self._check_identity(card, identity)
                yield event
        except httpx.HTTPError as exc:
            raise unreachable(card, exc) from None

    async def relay(self, row: DelegationRecord) -> bool:
        """Send our caller's answer (``row.relay``) to the peer's task that
        asked for it; False when the peer refused it (the task moved on: the
        answer came twice, after a crash), which is as done."""
        answer = json.loads(row.relay or "{}")
        message = {
            "messageId": f"{row.key}/answer/{row.turn}",
            "role": "ROLE_USER",
            "taskId": row.remote_task_id,
            "parts": answer.get("parts") or [{"text": ""}],
        }
        params = {"message": message, "configuration": {"returnImmediately": True}}
        try:
            await self._call(await reach_peer(self.directory, row), "SendMessage", params, {})
        except PeerError as exc:
            if exc.transient:
                raise
            log.info("delegation %s: the peer refused the relayed answer: %s", row.key, exc)
            return False
        return True

    async def cancel_task(self, row: DelegationRecord) -> None:
        """Cancel the peer's task; one that is over already (not cancelable),
        or gone, counts as canceled. Any other refusal is a :class:`PeerError`
        for good: the task may still run (the watchdog says so)."""
        card = await reach_peer(self.directory, row)
        try:
            await self._call(card, "CancelTask", {"id": row.remote_task_id}, {})
        except PeerError as exc:
            if exc.code not in _OVER:
                raise
            log.info("delegation %s: the peer's task is over already: %s", row.key, exc)

    async def _call(
        self, card: PeerCard, method: str, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[Any, str | None]:
        credentials = self.directory.credentials(card.name)
        for last in (False, True):
            presented = await self._present(card)
            try:
                if card.binding == "GRPC":
                    grpc = self._grpc_of(card)
                    result, identity = await grpc.call(card, method, params, headers, presented)
                else:
                    result, identity = await call(
                        self.client, card, method, params, headers, presented
                    )
            except httpx.HTTPError as exc:
                self.directory.forget(card.name)
                raise unreachable(card, exc) from None
            except PeerError as exc:
                # A token refused before its time (revoked, rotated): once more with a new one.
                if last or not exc.unauthenticated or not credentials or not credentials.renew():
                    raise
                log.info("peer %r refused our token; fetching a new one", card.name)
                continue
            self._check_identity(card, identity)
            return result, identity
        raise AssertionError("unreachable: the second try returns or raises")

    async def _present(self, card: PeerCard) -> Presented:
        """The credentials ``card``'s peer wants besides our certificate."""
        credentials = self.directory.credentials(card.name)
        return await credentials.present(card.card) if credentials else NOTHING

    def scheme(self, peer: str) -> str | None:
        """The scheme we present to ``peer`` besides our certificate, if any."""
        credentials = self.directory.credentials(peer)
        return credentials.scheme if credentials else None

    def _grpc_of(self, card: PeerCard) -> GrpcPeers:
        if self._grpc is None:
            try:
                if self._make_grpc is None:
                    raise ImportError("no gRPC client was set up")
                self._grpc = self._make_grpc()
            except ImportError as exc:
                raise PeerError(
                    f"peer {card.name!r} is reached over gRPC only, which needs grpcio"
                    f" ({exc}): pip install 'agent-node[grpc]'"
                    " (from a clone: pip install -e '.[grpc]')",
                    transient=False,
                ) from None
        return self._grpc

    async def aclose(self) -> None:
        """Close the gRPC channels (the HTTP client is its owner's to close)."""
        if self._grpc is not None:
            await self._grpc.aclose()

    def _check_identity(self, card: PeerCard, identity: str | None) -> None:
        # Our client checked it at the handshake already (``expecting``): this
        # catches a client made elsewhere.
        if card.identity is not None and identity != card.identity:
            raise PeerError(
                f"peer {card.name!r} answered as {identity!r}, not {card.identity!r}",
                transient=False,
            )


def _parts(delegation: Delegation) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if delegation.text is not None:
        parts.append({"text": delegation.text})
    if delegation.data is not None:
        parts.append({"data": dict(delegation.data)})
    return parts or [{"text": ""}]


def _task_of_message(card: PeerCard, result: Any) -> Mapping[str, Any]:
    """A peer that answered with a Message instead of a task: a completed
    task holding the message's parts, so the workflow goes on alike."""
    message = result.get("message") if isinstance(result, Mapping) else None
    if not isinstance(message, Mapping):
        raise PeerError(
            f"peer {card.name!r} answered SendMessage with neither a task nor a message",
            transient=False,
        )
    return {
        "id": "",
        "status": {"state": "TASK_STATE_COMPLETED", "message": dict(message)},
        "artifacts": [{"artifactId": "message", "parts": list(message.get("parts") or [])}],
    }


def _with_news(
    task: Mapping[str, Any], pushed: tuple[Mapping[str, Any], str | None] | None
) -> Mapping[str, Any]:
    """The send's answer ``task``, with the status a push told meanwhile when
    that is later news. A peer that pushes every event as it happens (a2a-sdk
    1.x) may push its question (INPUT_REQUIRED, AUTH_REQUIRED) before it
    answers the send, whose answer then says WORKING: the question would
    wait for the first poll (found by an integrator's walk: 5 s, or
    ``poll:``). While our send is under way nobody answers the peer's
    question but us, so a settled state pushed meanwhile is the later one."""
    if pushed is None:
        return task
    news = pushed[0]
    if task_state(news) not in SETTLED or task_state(task) in SETTLED:
        return task
    merged = {**task, "status": news["status"]}
    if news.get("artifacts"):
        merged["artifacts"] = news["artifacts"]
    return merged
