"""One call to a peer, in the binding and version its card offers.

A delegation names operations and their A2A 1.0 params (``SendMessage``,
``GetTask``, ``CancelTask``, ``SubscribeToTask``); :func:`call` and
:func:`subscribe` make them over JSON-RPC (1.0, or 0.3 through
:mod:`~agent_node.a2a.protocol.compat`) or HTTP+JSON (:mod:`.rest_calls`),
whichever :attr:`PeerCard.binding` says, and give back 1.0 JSON either way.
Every request expects the peer's identity at the TLS handshake
(:func:`~.client.expecting`). A peer's error is a :class:`PeerError`; a
call that got no answer raises ``httpx.HTTPError`` for the caller to judge.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from agent_node.a2a.peers.client import expecting
from agent_node.a2a.peers.credentials import NOTHING, Presented
from agent_node.a2a.peers.discovery import PeerCard, peer_identity
from agent_node.a2a.peers.peer_errors import (
    TRANSIENT_CODES,
    TRANSIENT_STATUSES,
    PeerError,
    answer_of,
    did,
    retry_after,
    scrub,
)
from agent_node.a2a.peers.rest_calls import MEDIA_TYPE, rest_call, rest_error, rest_result
from agent_node.a2a.protocol import compat, compat_methods
from agent_node.a2a.protocol.errors import from_jsonrpc_error

__all__ = ["call", "subscribe"]

#: A stream may be quiet for long: no read timeout.
STREAM_TIMEOUT = httpx.Timeout(30.0, read=None)


async def call(
    client: httpx.AsyncClient,
    card: PeerCard,
    method: str,
    params: dict[str, Any],
    headers: dict[str, str],
    presented: Presented = NOTHING,
) -> tuple[Any, str | None]:
    """``method`` with its 1.0 ``params``: its 1.0 result, and the identity
    that answered. ``presented``: the credentials the peer wants besides our
    certificate (:mod:`.credentials`)."""
    headers = {**headers, **presented.headers}
    if card.binding == "HTTP+JSON":
        request = rest_call(card.endpoint, method, params)
        response = await client.request(
            request.method,
            request.url,
            json=request.body,
            params={**request.query, **presented.query},
            headers={**headers, "A2A-Version": "1.0", "Accept": MEDIA_TYPE},
            extensions=expecting(card.identity, certificate=presented.certificate),
        )
        return rest_result(card, method, response), peer_identity(response)
    name, body_params = method, params
    if card.version == "0.3":
        name, body_params = compat_methods.request_params_to_v03(method, params)
    else:
        headers = {**headers, "A2A-Version": "1.0"}
    body = {"jsonrpc": "2.0", "id": 1, "method": name, "params": body_params}
    response = await client.post(
        card.endpoint,
        json=body,
        headers=headers,
        params=presented.query,
        extensions=expecting(card.identity, certificate=presented.certificate),
    )
    identity = peer_identity(response)
    answer = answer_of(card, method, response)
    if "error" in answer:
        raw = answer["error"]
        error = from_jsonrpc_error(raw if isinstance(raw, dict) else {})
        code = error.error.row.code
        raise PeerError(
            f"peer {card.name!r} {did(code)} {method}: {scrub(error.message)}",
            transient=code in TRANSIENT_CODES,
            retry_after=retry_after(response),
            code=code,
            status=response.status_code,
        )
    result = answer.get("result")
    if card.version == "0.3":
        result = compat_methods.result_from_v03(method, result)
    return result, identity


async def subscribe(
    client: httpx.AsyncClient, card: PeerCard, task_id: str, presented: Presented = NOTHING
) -> AsyncIterator[tuple[Mapping[str, Any], str | None]]:
    """``SubscribeToTask``: each 1.0 ``StreamResponse`` the peer streams,
    with the identity that answered, until the stream ends."""
    headers = {"Accept": "text/event-stream", **presented.headers}
    if card.binding == "HTTP+JSON":
        request = rest_call(card.endpoint, "SubscribeToTask", {"id": task_id})
        opened = client.stream(
            request.method,
            request.url,
            params=presented.query,
            headers={**headers, "A2A-Version": "1.0"},
            timeout=STREAM_TIMEOUT,
            extensions=expecting(card.identity, certificate=presented.certificate),
        )
    else:
        name, params = "SubscribeToTask", {"id": task_id}
        if card.version == "0.3":
            name, params = compat_methods.request_params_to_v03(name, params)
        else:
            headers["A2A-Version"] = "1.0"
        opened = client.stream(
            "POST",
            card.endpoint,
            params=presented.query,
            json={"jsonrpc": "2.0", "id": 1, "method": name, "params": params},
            headers=headers,
            timeout=STREAM_TIMEOUT,
            extensions=expecting(card.identity, certificate=presented.certificate),
        )
    async with opened as response:
        identity = peer_identity(response)
        async for event in _events(card, response):
            yield event, identity


async def _events(card: PeerCard, response: httpx.Response) -> AsyncIterator[Mapping[str, Any]]:
    """The 1.0 ``StreamResponse`` of each Server-Sent Event of ``response``:
    a JSON-RPC ``result``, or over HTTP+JSON the event itself."""
    if response.status_code != 200:
        raise PeerError(
            f"peer {card.name!r} answered SubscribeToTask with HTTP {response.status_code}",
            transient=response.status_code in TRANSIENT_STATUSES,
            status=response.status_code,
        )
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        raise PeerError(f"peer {card.name!r} does not stream this task", transient=False)
    rest = card.binding == "HTTP+JSON"
    async for message in _messages(response):
        error = message.get("error")
        if isinstance(error, dict):
            if rest:
                raise rest_error(card, "SubscribeToTask", error, None)
            reason = scrub(str(error.get("message")))
            raise PeerError(f"peer {card.name!r} ended its stream: {reason}", transient=False)
        event = message if rest else message.get("result")
        if isinstance(event, dict):
            yield compat.stream_event_from_v03(event) if card.version == "0.3" else event


async def _messages(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Each event's ``data`` as a JSON object (others are skipped)."""
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
        if isinstance(message, dict):
            yield message
