"""One call to a peer, in the binding and version its card offers.

A delegation names operations and their A2A 1.0 params (``SendMessage``,
``GetTask``, ``ListTasks``, ``CancelTask``, ``SubscribeToTask``); :func:`call` and
:func:`subscribe` make them over JSON-RPC (1.0, or 0.3 through
:mod:`~agent_node.a2a.protocol.compat`) or HTTP+JSON (:mod:`.rest_calls`),
whichever :attr:`PeerCard.binding` says, and give back 1.0 JSON either way.
Every request expects the peer's identity at the TLS handshake
(:func:`~.client.expecting`). A peer's error is a :class:`PeerError`; a
call that got no answer raises ``httpx.HTTPError`` for the caller to judge.

An answer is read up to :data:`MAX_ANSWER_BYTES` (decoded), a streamed
event up to the same: past it the call fails for good, read no further (a
hostile peer's 700 MiB answer was read whole into the node's memory). A
call is answered whole within :data:`CALL_DEADLINE`, or it fails as a
timeout does (``httpx.ReadTimeout``: the peer is taken as down).
"""

from __future__ import annotations

import asyncio
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
from agent_node.a2a.protocol import compat, compat_methods, strict_json
from agent_node.a2a.protocol.errors import from_jsonrpc_error
from agent_node.content_length import declared_over
from agent_node.text_lines import LineTooLong, bounded_lines

__all__ = ["CALL_DEADLINE", "CALL_TIMEOUT", "call", "checked_result", "subscribe", "task_problem"]

#: Seconds a peer's stream may send nothing at all before it is closed as
#: gone: three of the ``: ping`` comments servers send every 15 s when their
#: task is quiet (ours, a2a-sdk's through sse-starlette). A stream silent
#: longer is a peer or a network that stalled; its task is left to the poll
#: (before: no read timeout, and a stalled stream was held open for good).
STREAM_SILENCE = 45.0
#: A call's timeouts (a send asks ``returnImmediately``: no call waits on the
#: work): the connection, its TLS handshake included, within 5 s, the answer
#: within 15 s. A peer that hangs costs a try that long, not the client's
#: 30 s (a walk saw a hung peer's calls hold every slot of the watchdog).
CALL_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
#: Seconds a call has in all, its connection and its whole answer: the 5 s
#: and 15 s of :data:`CALL_TIMEOUT`. httpx's timeouts bound each read, not
#: the answer: a peer that sent its answer a space every 5 s held a call 60 s
#: (a walk's), and could hold it for good.
CALL_DEADLINE = 20.0
#: Most bytes one answer (or one streamed event) of a peer may hold: a task
#: with its history and artifacts, 32 times what a node takes in a request.
MAX_ANSWER_BYTES = 32 * 1024 * 1024
#: Headers that described the body as it came, not as it is once read.
_AS_SENT = frozenset({"content-encoding", "content-length", "transfer-encoding"})


async def call(
    client: httpx.AsyncClient,
    card: PeerCard,
    method: str,
    params: dict[str, Any],
    headers: dict[str, str],
    presented: Presented = NOTHING,
    *,
    deadline: float = CALL_DEADLINE,
) -> tuple[Any, str | None]:
    """``method`` with its 1.0 ``params``: its 1.0 result, and the identity
    that answered. ``presented``: the credentials the peer wants besides our
    certificate (:mod:`.credentials`); ``deadline``: seconds the call has in
    all, past which it raises ``httpx.ReadTimeout``."""
    headers = {**headers, **presented.headers}
    if card.binding == "HTTP+JSON":
        request = rest_call(card.endpoint, method, params)
        response, identity = await _answer(
            client,
            client.build_request(
                request.method,
                request.url,
                json=request.body,
                params={**request.query, **presented.query},
                headers={**headers, "A2A-Version": "1.0", "Accept": MEDIA_TYPE},
                timeout=CALL_TIMEOUT,
                extensions=expecting(card.identity, certificate=presented.certificate),
            ),
            card,
            method,
            deadline,
        )
        return checked_result(card, method, rest_result(card, method, response)), identity
    name, body_params = method, params
    if card.version == "0.3":
        name, body_params = compat_methods.request_params_to_v03(method, params)
    else:
        headers = {**headers, "A2A-Version": "1.0"}
    body = {"jsonrpc": "2.0", "id": 1, "method": name, "params": body_params}
    response, identity = await _answer(
        client,
        client.build_request(
            "POST",
            card.endpoint,
            json=body,
            headers=headers,
            params=presented.query,
            timeout=CALL_TIMEOUT,
            extensions=expecting(card.identity, certificate=presented.certificate),
        ),
        card,
        method,
        deadline,
    )
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
        try:
            result = compat_methods.result_from_v03(method, result)
        except (TypeError, AttributeError, KeyError, ValueError):
            raise _not_a2a(card, method, "a result 0.3 does not have") from None
    return checked_result(card, method, result), identity


async def _answer(
    client: httpx.AsyncClient,
    request: httpx.Request,
    card: PeerCard,
    method: str,
    deadline: float,
) -> tuple[httpx.Response, str | None]:
    """``request``'s answer, read whole within ``deadline`` seconds, as a
    timeout of httpx's own (the delegator counts the peer down for it, as
    for any other), and the identity that answered."""
    try:
        async with asyncio.timeout(deadline):
            return await _read(client, request, card, method)
    except TimeoutError:
        raise httpx.ReadTimeout(f"no whole answer within {deadline:g} s", request=request) from None


async def _read(
    client: httpx.AsyncClient, request: httpx.Request, card: PeerCard, method: str
) -> tuple[httpx.Response, str | None]:
    """``request``'s answer, read whole within :data:`MAX_ANSWER_BYTES`, and
    the identity that answered."""
    response = await client.send(request, stream=True)
    try:
        identity = peer_identity(response)
        declared = response.headers.get("content-length", "")
        if declared_over(declared, MAX_ANSWER_BYTES):
            raise _too_large(card, method)
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise _too_large(card, method)
    finally:
        await response.aclose()
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _AS_SENT]
    read = httpx.Response(response.status_code, headers=headers, content=bytes(body))
    read.request = request
    return read, identity


def checked_result(card: PeerCard, method: str, result: Any) -> Any:
    """``result``, when the task it holds (a send's, a get's, a cancel's)
    is one a delegation can read; a :class:`PeerError` for good otherwise
    (a task whose id is a number, whose status is a word: the delegation
    waited on it until its timeout)."""
    if method == "ListTasks":  # tasks the delegator reads one by one, and keeps one's id
        tasks = result.get("tasks") if isinstance(result, Mapping) else None
        for listed in tasks if isinstance(tasks, list) else []:
            if isinstance(listed, Mapping) and (problem := _nul_in(listed)) is not None:
                raise _not_a2a(card, method, problem)
        return result
    task = result.get("task") if method == "SendMessage" and isinstance(result, Mapping) else result
    if method == "SendMessage" and task is None:
        return result  # a message, or nothing: the delegator reads it so
    problem = task_problem(task)
    if problem is not None:
        raise _not_a2a(card, method, problem)
    return result


def task_problem(task: Any) -> str | None:
    """What makes ``task`` (1.0 JSON) one no delegation can follow, or None.
    Its id and ``contextId`` hold no NUL character: the id is stored as text,
    which PostgreSQL's cannot hold (the answer was tried again and again,
    sending the message each time), and no A2A id holds one."""
    if not isinstance(task, Mapping):
        return "a task that is not an object"
    if not isinstance(task.get("id"), str) or not task["id"]:
        return "a task whose id is not a string"
    if (problem := _nul_in(task)) is not None:
        return problem
    status = task.get("status")
    if not isinstance(status, Mapping) or not isinstance(status.get("state"), str):
        return "a task without a status naming its state"
    for name in ("artifacts", "history"):
        if not isinstance(task.get(name, []), list):
            return f"a task whose {name} is not a list"
    return None


def _nul_in(task: Mapping[str, Any]) -> str | None:
    for name in ("id", "contextId"):
        if "\x00" in str(task.get(name) or ""):
            return f"a task whose {name} holds a NUL character"
    return None


def _not_a2a(card: PeerCard, method: str, problem: str) -> PeerError:
    return PeerError(f"peer {card.name!r} answered {method} with {problem}", transient=False)


def _too_large(card: PeerCard, method: str) -> PeerError:
    return PeerError(
        f"peer {card.name!r} answered {method} with more than {MAX_ANSWER_BYTES} bytes;"
        " not read further",
        transient=False,
    )


async def subscribe(
    client: httpx.AsyncClient,
    card: PeerCard,
    task_id: str,
    presented: Presented = NOTHING,
    *,
    silence: float = STREAM_SILENCE,
) -> AsyncIterator[tuple[Mapping[str, Any], str | None]]:
    """``SubscribeToTask``: each 1.0 ``StreamResponse`` the peer streams,
    with the identity that answered, until the stream ends; a stream that
    sends nothing for ``silence`` seconds raises ``httpx.ReadTimeout``."""
    headers = {"Accept": "text/event-stream", **presented.headers}
    timeout = httpx.Timeout(30.0, read=silence)
    if card.binding == "HTTP+JSON":
        request = rest_call(card.endpoint, "SubscribeToTask", {"id": task_id})
        opened = client.stream(
            request.method,
            request.url,
            params=presented.query,
            headers={**headers, "A2A-Version": "1.0"},
            timeout=timeout,
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
            timeout=timeout,
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
        if not isinstance(event, dict):
            continue
        if card.version == "0.3":
            try:
                event = compat.stream_event_from_v03(event)
            except (TypeError, AttributeError, KeyError, ValueError):
                raise _not_a2a(card, "SubscribeToTask", "an event 0.3 does not have") from None
        if "task" in event and (problem := task_problem(event["task"])) is not None:
            raise _not_a2a(card, "SubscribeToTask", problem)
        yield event


async def _messages(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Each event's ``data`` as a JSON object (others are skipped); an event
    (or a line) over :data:`MAX_ANSWER_BYTES` ends the stream."""
    data: list[str] = []
    held = 0
    async for line in _lines(response):
        if line.startswith("data:"):
            data.append(line[5:].strip())
            held += len(line)
            if held > MAX_ANSWER_BYTES:
                raise PeerError(
                    f"a streamed event of more than {MAX_ANSWER_BYTES} bytes; not read further",
                    transient=False,
                )
            continue
        if line or not data:
            continue
        try:
            message = strict_json.loads("".join(data))
        except ValueError:  # not JSON, NaN, nested too deeply, …: not an event
            message = None
        data, held = [], 0
        if isinstance(message, dict):
            yield message


async def _lines(response: httpx.Response) -> AsyncIterator[str]:
    """The lines of ``response``'s text, none longer than :data:`MAX_ANSWER_BYTES`
    (:mod:`agent_node.text_lines`)."""
    try:
        async for line in bounded_lines(response.aiter_text(), MAX_ANSWER_BYTES):
            yield line
    except LineTooLong:
        raise PeerError(
            f"a streamed line of more than {MAX_ANSWER_BYTES} bytes; not read further",
            transient=False,
        ) from None
