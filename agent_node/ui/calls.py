"""The calls the UI makes to its nodes — a fixed set, never an open proxy.

Every request goes to a configured :class:`~.targets.Target`'s origin, on
a path built here from a template (operator API paths, the A2A endpoint,
the card, ``/readyz``) with each variable part percent-encoded as one path
segment, with the UI's client certificate; a target whose identity is
known must prove it at the handshake before anything is sent
(:func:`~agent_node.a2a.peers.client.expecting`). Redirects are never
followed.

A node that cannot be reached, times out or answers something that is not
JSON is :class:`NodeDown` (the page shows it as down and goes on); a node
that answers an HTTP error passes its status and JSON on as a :class:`Reply`.
A call has its ``timeout`` in all, its connection and its whole answer —
httpx's own timeouts bound each read, and a node that sent a byte every 5 s
held a page (and the UI's stop) for as long as it liked — and an answer,
or a line of a stream, is read up to :data:`~.answers.MAX_ANSWER_BYTES`
(:mod:`.answers`); past either the node is down. A stream has
:data:`TIMEOUT` to open.

Fail-over: a node's replicas (:mod:`.replicas`: as their answers proved,
the same store and the same node) answer for it when it cannot. A read (a
GET, a stream as it opens) that finds the node down, or stopping (503), is
asked of the next replica of its store in the order the nodes were given. A write (an
action, an answer) must not be done twice, so it goes to the next replica
only when it was certainly not sent — the connection never opened
(:attr:`NodeDown.sent`); after a timeout or a dropped connection it may
have been done, and the node's failure is what the page sees. The
:attr:`Reply.by` of an answer names who gave it. When no replica does
better, the asked node's own failure stands.

Every call tells :attr:`Calls.reach` (:mod:`.reach`) whether its node
answered, and which identity its certificate named.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from agent_node.a2a.peers.client import expecting, http_client, server_identity
from agent_node.a2a.server.ops_node import public_card
from agent_node.security.tls_reload import client_from_files

from .answers import TooLarge, json_of, lines
from .reach import Reach
from .replicas import Replicas
from .targets import Network, Target

__all__ = ["Calls", "NodeDown", "Reply", "Stream"]

#: Seconds a node has to answer a call, whole (a down node must not hold a page).
TIMEOUT = 10.0
#: Seconds a quick look (health, the node's summary) may take.
GLANCE = 3.0
#: Seconds without a byte on a stream (heartbeats come every 15) before it counts as lost.
STREAM_IDLE = 45.0
_A2A = {"A2A-Version": "1.0"}
#: What an answer that is not JSON reads as.
_NOT_JSON = object()


class NodeDown(Exception):
    """The node could not be reached, or answered something that is not JSON."""

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        #: Whether the request may have reached the node (False: the
        #: connection never opened, so the node did nothing of it).
        self.sent = sent


@dataclass(frozen=True)
class Reply:
    """A node's answer: its HTTP status and its JSON."""

    status: int
    body: Any
    #: The identity the node's certificate named at the handshake (None:
    #: plain HTTP, or a certificate that names none).
    identity: str | None = None
    #: The node that answered: the one asked, or a replica of its store that
    #: answered for it (None: an answer made here).
    by: Target | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class Stream:
    """An SSE stream opened: its lines, and the node that serves it (the one
    asked, or a replica of its store that answered for it)."""

    lines: AsyncIterator[str]
    by: Target
    #: The identity the serving node's certificate named (None: plain HTTP).
    identity: str | None = None


def path(*segments: str) -> str:
    """``/a/b/c`` from segments, each percent-encoded whole (no ``/`` or ``..`` escapes)."""
    return "".join("/" + quote(segment, safe="") for segment in segments)


class Calls:
    """The UI's HTTP client toward the nodes of ``network``."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.replicas = Replicas(network.targets)
        #: Which nodes answer, since when not, and who they are.
        self.reach = Reach()
        tls = client_from_files(*network.tls) if network.tls else None
        self.http = http_client(tls, timeout=TIMEOUT)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def get(
        self,
        target: Target,
        where: str,
        params: Sequence[tuple[str, str]] | None = None,
        *,
        timeout: float = TIMEOUT,
        fall_over: bool = True,
    ) -> Reply:
        """``where`` of ``target`` — of a replica of its store when it is down
        or stopping, unless not ``fall_over`` (a look at the node itself)."""

        async def get(to: Target) -> Reply:
            return await self._call(to, "GET", where, params=params, timeout=timeout)

        return await self._over(target, get, _elsewhere if fall_over else _never)

    async def post(self, target: Target, where: str, body: Mapping[str, Any]) -> Reply:
        async def post(to: Target) -> Reply:
            return await self._call(to, "POST", where, body=body)

        return await self._over(target, post, _unsent)

    async def send_message(self, target: Target, task_id: str, text: str) -> Reply:
        """A2A ``SendMessage`` continuing ``task_id`` with ``text`` (the answer to
        its question), returning at once; an A2A error comes back as a 4xx."""
        message = {
            "messageId": str(uuid.uuid4()),
            "role": "ROLE_USER",
            "taskId": task_id,
            "parts": [{"text": text}],
        }
        params = {"message": message, "configuration": {"returnImmediately": True}}
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params}

        async def send(to: Target) -> Reply:
            return await self._call(to, "POST", "/a2a", body=body, headers=_A2A)

        reply = await self._over(target, send, _unsent)
        answer = reply.body if isinstance(reply.body, dict) else {}
        if "error" in answer:
            error = answer["error"] if isinstance(answer["error"], dict) else {}
            message_text = str(error.get("message") or "the node refused the answer")
            status = 409 if reply.status == 200 else reply.status
            return Reply(status, _error(message_text), by=reply.by)
        return reply

    async def card(self, target: Target) -> dict[str, Any] | None:
        """The words of the node's Agent Card (None when it cannot be read)."""
        where = "/.well-known/agent-card.json"
        reply = await self.get(target, where, timeout=GLANCE, fall_over=False)
        return public_card(reply.body) if reply.ok and isinstance(reply.body, dict) else None

    async def health(self, target: Target) -> str:
        """``/readyz``'s word (``ready``, ``draining``, …), ``unknown`` where the
        node has no such endpoint, ``down`` where it cannot be reached."""
        try:
            reply = await self.get(target, "/readyz", timeout=GLANCE, fall_over=False)
        except NodeDown:
            return "down"
        status = reply.body.get("status") if isinstance(reply.body, dict) else None
        if reply.status in (200, 503) and isinstance(status, str):
            return status[:40]
        return "unknown"

    @contextlib.asynccontextmanager
    async def stream(
        self, target: Target, where: str, *, fall_over: bool = True
    ) -> AsyncIterator[Stream]:
        """An SSE stream of the node — of the first replica of its store that
        opens it when the node will not, unless not ``fall_over``; NodeDown
        when none opens (the node's own failure)."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                stream = await stack.enter_async_context(self._stream(target, where))
            except NodeDown as down:
                for replica in self.replicas.of(target) if fall_over else []:
                    with contextlib.suppress(NodeDown):
                        stream = await stack.enter_async_context(self._stream(replica, where))
                        break
                else:
                    raise down from None
            yield stream

    @contextlib.asynccontextmanager
    async def _stream(self, target: Target, where: str) -> AsyncIterator[Stream]:
        request = self.http.build_request(
            "GET",
            target.url + where,
            timeout=httpx.Timeout(TIMEOUT, read=STREAM_IDLE),
            extensions=expecting(target.identity),
        )
        try:
            async with asyncio.timeout(TIMEOUT):
                response = await self.http.send(request, stream=True)
        except TimeoutError:
            raise self._down(target, "no answer in time", sent=True) from None
        except httpx.HTTPError as exc:
            raise self._down(target, _reason(exc), sent=_sent(exc)) from None
        try:
            identity = server_identity(response)
            self.reach.heard(target.key, identity)
            if response.status_code != 200:
                raise NodeDown(f"{target.key} answered HTTP {response.status_code}")
            yield Stream(self._lines(target, response), target, identity)
        except httpx.HTTPError as exc:
            raise self._down(target, _reason(exc), sent=_sent(exc)) from None
        finally:
            await response.aclose()

    async def _lines(self, target: Target, response: httpx.Response) -> AsyncIterator[str]:
        try:
            async for line in lines(response):
                yield line
        except TooLarge as exc:
            raise self._down(target, f"it sent {exc}", sent=True) from None

    async def _over(
        self,
        target: Target,
        call: Callable[[Target], Awaitable[Reply]],
        elsewhere: Callable[[Reply | NodeDown], bool],
    ) -> Reply:
        """``call(target)``, and while ``elsewhere`` says its outcome may be
        bettered, ``call`` on each replica of its store in turn."""
        asked = outcome = await _outcome(call, target)
        for replica in self.replicas.of(target):
            if not elsewhere(outcome):
                break
            outcome = await _outcome(call, replica)
        if elsewhere(outcome):
            outcome = asked  # no replica did better: the node's own failure
        if isinstance(outcome, NodeDown):
            raise outcome
        return outcome

    async def _call(
        self,
        target: Target,
        method: str,
        where: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT,
    ) -> Reply:
        request = self.http.build_request(
            method,
            target.url + where,
            params=list(params) if params else None,
            json=body,
            headers=headers,
            # A connection that does not open fails before the deadline: unsent.
            timeout=httpx.Timeout(timeout, connect=timeout / 2),
            extensions=expecting(target.identity),
        )
        try:
            async with asyncio.timeout(timeout):
                status, answer, identity = await self._read(request)
        except TimeoutError:
            raise self._down(target, "no answer in time", sent=True) from None
        except httpx.HTTPError as exc:
            raise self._down(target, _reason(exc), sent=_sent(exc)) from None
        except TooLarge as exc:
            raise self._down(target, f"it answered {exc}", sent=True) from None
        if answer is _NOT_JSON:
            if status == 404:
                self.reach.heard(target.key, identity)
                return Reply(404, _error(f"{target.key} has no {where.split('?')[0]}"), by=target)
            why = f"answered HTTP {status}, not JSON"
            raise self._down(target, why, sent=True)
        self.reach.heard(target.key, identity)
        self.replicas.learn(target, answer, identity)
        return Reply(status, answer, identity, target)

    async def _read(self, request: httpx.Request) -> tuple[int, Any, str | None]:
        """``request``'s status, its JSON (:data:`_NOT_JSON`: it is none) and
        the identity that answered."""
        response = await self.http.send(request, stream=True)
        try:
            identity = server_identity(response)
            try:
                return response.status_code, await json_of(response), identity
            except ValueError:
                return response.status_code, _NOT_JSON, identity
        finally:
            await response.aclose()

    def _down(self, target: Target, why: str, *, sent: bool) -> NodeDown:
        """The failure of a call to ``target``, noted as its outage."""
        message = f"{target.key}: {why}"
        self.reach.lost(target.key, message)
        return NodeDown(message, sent=sent)


async def _outcome(call: Callable[[Target], Awaitable[Reply]], target: Target) -> Reply | NodeDown:
    try:
        return await call(target)
    except NodeDown as exc:
        return exc


def _elsewhere(outcome: Reply | NodeDown) -> bool:
    """A read: any replica can give it when the node is down or stopping."""
    return isinstance(outcome, NodeDown) or outcome.status == 503


def _unsent(outcome: Reply | NodeDown) -> bool:
    """A write: only one that never left goes to a replica (never done twice)."""
    return isinstance(outcome, NodeDown) and not outcome.sent


def _never(outcome: Reply | NodeDown) -> bool:
    return False


def _sent(exc: httpx.HTTPError) -> bool:
    """Whether a request that failed with ``exc`` may have reached the node:
    all but those whose connection never opened (refused, not in time, a
    handshake that failed, the pool full)."""
    return not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message}}


def _reason(exc: httpx.HTTPError) -> str:
    """Why a call failed, in a few words (TLS 1.3 shows a refused certificate
    as a dropped connection: LIBS.md)."""
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "it hung up (is the UI's certificate trusted there?)"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"
