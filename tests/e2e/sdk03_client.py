"""Drive a node with the official a2a-sdk 0.3.x client: one scenario, one JSON line.

Runs inside its own virtual environment (a2a-sdk 0.3.x and httpx only; the
1.x SDK that the project's tests use cannot share a venv with it), started by
``test_a2a_sdk_v03.py``::

    python sdk03_client.py <base_url> discover|send|get|cancel|stream

Prints one JSON object on stdout; on failure prints the error on stderr and
exits non-zero.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

import httpx
from a2a.client import (
    A2ACardResolver,
    A2AClientHTTPError,
    Client,
    ClientConfig,
    ClientFactory,
)
from a2a.client.errors import A2AClientJSONRPCError
from a2a.client.transports import JsonRpcTransport
from a2a.types import (
    AgentCard,
    DataPart,
    Message,
    MessageSendConfiguration,
    MessageSendParams,
    Part,
    Role,
    SendStreamingMessageRequest,
    Task,
    TaskIdParams,
    TaskQueryParams,
    TaskState,
    TextPart,
)

V03_CARD_FIELDS = ("url", "protocolVersion", "preferredTransport", "additionalInterfaces")
TERMINAL = {TaskState.completed, TaskState.failed, TaskState.canceled, TaskState.rejected}


def data_message(data: dict[str, Any], **fields: Any) -> Message:
    parts = [Part(root=DataPart(data=data))]
    return Message(message_id=str(uuid.uuid4()), role=Role.user, parts=parts, **fields)


def text_message(text: str, **fields: Any) -> Message:
    parts = [Part(root=TextPart(text=text))]
    return Message(message_id=str(uuid.uuid4()), role=Role.user, parts=parts, **fields)


def summary(task: Task) -> dict[str, Any]:
    data = [
        part.root.data
        for artifact in task.artifacts or []
        for part in artifact.parts
        if isinstance(part.root, DataPart)
    ]
    return {
        "kind": task.kind,
        "id": task.id,
        "state": task.status.state.value,
        "data": data[-1] if data else None,
    }


async def card_of(http: httpx.AsyncClient, base_url: str) -> AgentCard:
    return await A2ACardResolver(http, base_url).get_agent_card()


async def client_for(http: httpx.AsyncClient, card: AgentCard, **config: Any) -> Client:
    return ClientFactory(ClientConfig(httpx_client=http, **config)).create(card)


async def only_task(client: Client, message: Message, **config: Any) -> Task:
    configuration = MessageSendConfiguration(**config) if config else None
    events = [e async for e in client.send_message(message, configuration=configuration)]
    if len(events) != 1 or not isinstance(events[0], tuple):
        raise AssertionError(f"expected one task, got {events!r}")
    task, _update = events[0]
    return task


async def discover(http: httpx.AsyncClient, base_url: str) -> dict[str, Any]:
    card = await card_of(http, base_url)
    raw = (await http.get(f"{base_url.rstrip('/')}/.well-known/agent-card.json")).json()
    return {
        "name": card.name,
        "protocolVersion": card.protocol_version,
        "url": card.url,
        "preferredTransport": card.preferred_transport,
        "streaming": bool(card.capabilities.streaming),
        "served_v03_fields": [field for field in V03_CARD_FIELDS if field in raw],
    }


async def send(http: httpx.AsyncClient, base_url: str) -> dict[str, Any]:
    client = await client_for(http, await card_of(http, base_url), streaming=False)
    return summary(await only_task(client, data_message({"name": "Ada Lovelace"})))


async def get(http: httpx.AsyncClient, base_url: str) -> dict[str, Any]:
    client = await client_for(http, await card_of(http, base_url), streaming=False)
    sent = await only_task(client, data_message({"name": "Grace"}), blocking=False)
    polls = 0
    task = sent
    while task.status.state not in TERMINAL and polls < 200:
        await asyncio.sleep(0.05)
        task = await client.get_task(TaskQueryParams(id=sent.id))
        polls += 1
    return {**summary(task), "sent_state": sent.status.state.value, "polls": polls}


async def cancel(http: httpx.AsyncClient, base_url: str) -> dict[str, Any]:
    client = await client_for(http, await card_of(http, base_url), streaming=False)
    asked = await only_task(client, text_message("Lisbon", metadata={"skill": "book"}))
    canceled = await client.cancel_task(TaskIdParams(id=asked.id))
    return {
        "id": canceled.id,
        "asked_state": asked.status.state.value,
        "state": canceled.status.state.value,
    }


def describe(event: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": event.kind}
    if event.kind == "task" or event.kind == "status-update":
        out["state"] = event.status.state.value
    if event.kind == "status-update":
        out["final"] = event.final
    return out


async def stream(http: httpx.AsyncClient, base_url: str) -> dict[str, Any]:
    """``message/stream`` through the SDK's JSON-RPC transport, whatever the card says
    (the SDK's ``Client`` silently falls back to ``message/send`` when the card says
    ``streaming: false``), so that the node's own answer is seen."""
    card = await card_of(http, base_url)
    transport = JsonRpcTransport(http, agent_card=card)
    params = MessageSendParams(message=data_message({"name": "Ada Lovelace"}))
    events: list[dict[str, Any]] = []
    try:
        async for event in transport.send_message_streaming(params):
            events.append(describe(event))
    except A2AClientJSONRPCError as error:
        return {"events": events, "error_code": error.error.code, "error": error.error.message}
    except A2AClientHTTPError as error:
        if events or "text/event-stream" not in error.message:
            raise
        # The 0.3 SDK only reads SSE on message/stream: a plain JSON-RPC error
        # response is reported as a content-type error. Read the node's answer to
        # the very request the SDK sent.
        request = SendStreamingMessageRequest(id=str(uuid.uuid4()), params=params)
        body = request.model_dump(mode="json", exclude_none=True)
        answer = (await http.post(card.url, json=body)).json()
        code = answer.get("error", {}).get("code")
        message = answer.get("error", {}).get("message")
        return {"events": [], "error_code": code, "error": message, "sdk_error": str(error)}
    return {"events": events}


SCENARIOS = {
    "discover": discover,
    "send": send,
    "get": get,
    "cancel": cancel,
    "stream": stream,
}


async def main(base_url: str, scenario: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as http:
        return await SCENARIOS[scenario](http, base_url)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in SCENARIOS:
        sys.exit(f"usage: {sys.argv[0]} <base_url> {'|'.join(SCENARIOS)}")
    try:
        result = asyncio.run(main(sys.argv[1], sys.argv[2]))
    except Exception as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(result))
