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
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from agent_node.a2a.peers.client import expecting, http_client, server_identity
from agent_node.a2a.server.ops_node import public_card
from agent_node.security.tls import client_context

from .targets import Network, Target

__all__ = ["Calls", "NodeDown", "Reply"]

#: Seconds a node has to answer a call (a down node must not hold a page).
TIMEOUT = 10.0
#: Seconds a quick look (health, the node's summary) may take.
GLANCE = 3.0
#: Seconds without a byte on a stream (heartbeats come every 15) before it counts as lost.
STREAM_IDLE = 45.0
_A2A = {"A2A-Version": "1.0"}


class NodeDown(Exception):
    """The node could not be reached, or answered something that is not JSON."""


@dataclass(frozen=True)
class Reply:
    """A node's answer: its HTTP status and its JSON."""

    status: int
    body: Any
    #: The identity the node's certificate named at the handshake (None:
    #: plain HTTP, or a certificate that names none).
    identity: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


def path(*segments: str) -> str:
    """``/a/b/c`` from segments, each percent-encoded whole (no ``/`` or ``..`` escapes)."""
    return "".join("/" + quote(segment, safe="") for segment in segments)


class Calls:
    """The UI's HTTP client toward the nodes of ``network``."""

    def __init__(self, network: Network) -> None:
        self.network = network
        tls = client_context(*network.tls) if network.tls else None
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
    ) -> Reply:
        return await self._call(target, "GET", where, params=params, timeout=timeout)

    async def post(self, target: Target, where: str, body: Mapping[str, Any]) -> Reply:
        return await self._call(target, "POST", where, body=body)

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
        reply = await self._call(target, "POST", "/a2a", body=body, headers=_A2A)
        answer = reply.body if isinstance(reply.body, dict) else {}
        if "error" in answer:
            error = answer["error"] if isinstance(answer["error"], dict) else {}
            message_text = str(error.get("message") or "the node refused the answer")
            return Reply(409 if reply.status == 200 else reply.status, _error(message_text))
        return reply

    async def card(self, target: Target) -> dict[str, Any] | None:
        """The words of the node's Agent Card (None when it cannot be read)."""
        reply = await self.get(target, "/.well-known/agent-card.json", timeout=GLANCE)
        return public_card(reply.body) if reply.ok and isinstance(reply.body, dict) else None

    async def health(self, target: Target) -> str:
        """``/readyz``'s word (``ready``, ``draining``, …), ``unknown`` where the
        node has no such endpoint, ``down`` where it cannot be reached."""
        try:
            reply = await self.get(target, "/readyz", timeout=GLANCE)
        except NodeDown:
            return "down"
        status = reply.body.get("status") if isinstance(reply.body, dict) else None
        if reply.status in (200, 503) and isinstance(status, str):
            return status[:40]
        return "unknown"

    @contextlib.asynccontextmanager
    async def stream(self, target: Target, where: str) -> AsyncIterator[AsyncIterator[str]]:
        """The lines of an SSE stream of the node; NodeDown when it will not open."""
        timeout = httpx.Timeout(TIMEOUT, read=STREAM_IDLE)
        try:
            async with self.http.stream(
                "GET",
                target.url + where,
                timeout=timeout,
                extensions=expecting(target.identity),
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise NodeDown(f"{target.key} answered HTTP {response.status_code}")
                yield response.aiter_lines()
        except httpx.HTTPError as exc:
            raise NodeDown(f"{target.key}: {_reason(exc)}") from None

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
        try:
            response = await self.http.request(
                method,
                target.url + where,
                params=list(params) if params else None,
                json=body,
                headers=headers,
                timeout=timeout,
                extensions=expecting(target.identity),
            )
        except httpx.HTTPError as exc:
            raise NodeDown(f"{target.key}: {_reason(exc)}") from None
        try:
            return Reply(response.status_code, response.json(), server_identity(response))
        except (json.JSONDecodeError, UnicodeDecodeError):
            if response.status_code == 404:
                return Reply(404, _error(f"{target.key} has no {where.split('?')[0]}"))
            raise NodeDown(f"{target.key} answered HTTP {response.status_code}, not JSON") from None


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
