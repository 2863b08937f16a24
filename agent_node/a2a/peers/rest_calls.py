"""A delegation's calls over A2A's HTTP+JSON binding (§11), for a peer whose
card offers no JSON-RPC interface (:mod:`.endpoints` prefers JSON-RPC).

Each operation a delegation makes is a resource under the interface's URL:

    SendMessage      POST {url}/message:send          the 1.0 params as the body
    GetTask          GET  {url}/tasks/{id}?historyLength=N
    ListTasks        GET  {url}/tasks?contextId=…&pageSize=N&historyLength=N
    CancelTask       POST {url}/tasks/{id}:cancel
    SubscribeToTask  GET  {url}/tasks/{id}:subscribe  Server-Sent Events

Answers are the same 1.0 JSON objects a JSON-RPC ``result`` holds, so the
delegator reads them alike; a stream's events are bare ``StreamResponse``
objects. Errors are AIP-193 bodies (``{"error": {code, status, message,
details: [ErrorInfo]}}``): the ErrorInfo's reason names the protocol error,
which :class:`~.peer_errors.PeerError` carries by its JSON-RPC code so that
one rule (:data:`~.peer_errors.TRANSIENT_CODES`) judges both bindings. An
answer that is no such body is judged by its HTTP status, as for JSON-RPC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from agent_node.a2a.peers.discovery import PeerCard
from agent_node.a2a.peers.peer_errors import (
    TRANSIENT_CODES,
    TRANSIENT_STATUSES,
    PeerError,
    code_of_reason,
    did,
    excerpt,
    read_json,
    retry_after,
    scrub,
)
from agent_node.a2a.protocol.error_table import ERROR_INFO_TYPE

__all__ = ["MEDIA_TYPE", "RestCall", "rest_call", "rest_error", "rest_result"]

#: What we send and accept: plain JSON, which every HTTP+JSON server takes
#: (A2A 1.0.1 names application/a2a+json too, and servers accept both).
MEDIA_TYPE = "application/json"


@dataclass(frozen=True)
class RestCall:
    """One operation as an HTTP request."""

    method: str
    url: str
    body: Mapping[str, Any] | None
    query: Mapping[str, str]


def rest_call(endpoint: str, operation: str, params: Mapping[str, Any]) -> RestCall:
    """``operation`` with its 1.0 ``params`` as a request to ``endpoint``."""
    base = endpoint.rstrip("/")
    if operation == "SendMessage":
        return RestCall("POST", f"{base}/message:send", params, {})
    if operation == "ListTasks":
        # §11.5: each field of the request a query parameter of its camelCase name.
        return RestCall("GET", f"{base}/tasks", None, {k: _query(v) for k, v in params.items()})
    task = f"{base}/tasks/{quote(str(params.get('id', '')), safe='')}"
    if operation == "GetTask":
        length = params.get("historyLength")
        return RestCall("GET", task, None, {} if length is None else {"historyLength": str(length)})
    if operation == "CancelTask":
        return RestCall("POST", f"{task}:cancel", {}, {})
    if operation == "SubscribeToTask":
        return RestCall("GET", f"{task}:subscribe", None, {})
    raise ValueError(f"a delegation makes no {operation} call")


def _query(value: Any) -> str:
    """A request field's value as a query parameter (booleans as ``true``/``false``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def rest_result(card: PeerCard, operation: str, response: httpx.Response) -> Any:
    """The answer's JSON object; a :class:`PeerError` for any error."""
    answer, unread = read_json(response)
    if response.status_code < 300 and isinstance(answer, dict):
        return answer
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        raise rest_error(card, operation, answer["error"], response)
    kind = response.headers.get("content-type", "no content type").split(";")[0] + unread
    raise PeerError(
        f"peer {card.name!r} answered {operation} with HTTP {response.status_code} ({kind}): "
        + (excerpt(response.text) or "empty body"),
        transient=response.status_code in TRANSIENT_STATUSES,
        retry_after=retry_after(response),
        status=response.status_code,
    )


def rest_error(
    card: PeerCard, operation: str, error: Mapping[str, Any], response: httpx.Response | None
) -> PeerError:
    """The :class:`PeerError` of an AIP-193 ``error`` object (an answer's or
    a stream's)."""
    details = error.get("details")
    infos = [
        d
        for d in (details if isinstance(details, list) else [])
        if isinstance(d, dict) and d.get("@type") == ERROR_INFO_TYPE
    ]
    reason = infos[0].get("reason") if infos else None
    code = code_of_reason(reason)
    message = error.get("message")
    said = scrub(message) if isinstance(message, str) and message else str(reason or "no message")
    status = response.status_code if response is not None else 0
    # An unknown reason is judged by the HTTP status alone (a stream's by neither).
    return PeerError(
        f"peer {card.name!r} {did(code)} {operation}: {said}",
        transient=code in TRANSIENT_CODES or status in TRANSIENT_STATUSES,
        retry_after=retry_after(response) if response is not None else None,
        code=code,
        status=status or None,
    )
