"""The official a2a-sdk client (1.x) against `agent-node serve` over mutual TLS.

The SDK knows nothing of certificates: it is handed an ``httpx.AsyncClient``
whose SSL context carries the caller's certificate (httpx 0.28: the context
goes in ``verify=``, never ``cert=``), and everything else is plain A2A. Each
test runs twice: over HTTP/1.1, and over HTTP/2 (the client offers ``h2``,
the node serves it: agent_node/http2/asgi.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.client.errors import A2AClientError, AgentCardResolutionError
from a2a.types import (
    AgentCard,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    TaskState,
)
from google.protobuf import json_format
from support.certs import make_certs
from support.nodes import ADA, serving_mtls
from support.tls import caller_context

pytestmark = pytest.mark.slow

ALICE = "spiffe://example.org/agent/alice"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("sdk-mtls") / "certs", "greeter", "alice")


@pytest.fixture(scope="module")
def node_url(certs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_mtls(tmp_path_factory.mktemp("sdk-mtls-node"), certs) as url:
        yield url


@pytest.fixture(params=[False, True], ids=["http1", "http2"])
def http2(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def https(
    certs: Path, name: str | None, http2: bool, versions: set[str] | None = None
) -> httpx.AsyncClient:
    """An httpx client presenting ``name``'s certificate (none for None),
    offering HTTP/2 when ``http2``; the HTTP versions answered go in ``versions``."""
    seen = versions if versions is not None else set()

    async def answered(response: httpx.Response) -> None:
        seen.add(response.http_version)

    return httpx.AsyncClient(
        verify=caller_context(certs, name),
        timeout=30,
        http2=http2,
        event_hooks={"response": [answered]},
    )


@pytest.fixture
async def alice(certs: Path, http2: bool) -> AsyncIterator[httpx.AsyncClient]:
    versions: set[str] = set()
    async with https(certs, "alice", http2, versions) as http:
        yield http
    assert versions == {"HTTP/2" if http2 else "HTTP/1.1"}


@pytest.fixture
async def card(alice: httpx.AsyncClient, node_url: str) -> AgentCard:
    return await A2ACardResolver(alice, node_url).get_agent_card()


def message(text: str, **fields: object) -> Message:
    return Message(message_id="sdk-1", role=Role.ROLE_USER, parts=[Part(text=text)], **fields)


def data_message(data: dict[str, object]) -> Message:
    body = {"messageId": "sdk-2", "role": "ROLE_USER", "parts": [{"data": data}]}
    return json_format.ParseDict(body, Message())


async def only_task(sdk: Any, request: SendMessageRequest) -> Any:
    responses = [r async for r in sdk.send_message(request)]
    assert len(responses) == 1 and responses[0].HasField("task")
    return responses[0].task


async def test_the_card_is_resolved_over_https(card: AgentCard, node_url: str) -> None:
    assert node_url.startswith("https://127.0.0.1:")
    assert card.name == "Greeter"
    first = card.supported_interfaces[0]
    assert (first.url, first.protocol_binding, first.protocol_version) == (
        f"{node_url}/a2a",
        "JSONRPC",
        "1.0",
    )
    assert {i.url for i in card.supported_interfaces} == {f"{node_url}/a2a"}
    assert {s.id for s in card.skills} == {"greet", "book"}
    assert card.capabilities.streaming


async def test_send_blocking_names_the_caller_and_get_agrees(
    alice: httpx.AsyncClient, node_url: str
) -> None:
    sdk: Any = await create_client(node_url, ClientConfig(streaming=False, httpx_client=alice))
    try:
        task = await only_task(
            sdk, SendMessageRequest(message=data_message({"name": "Ada Lovelace"}))
        )
        assert task.status.state == TaskState.TASK_STATE_COMPLETED
        (artifact,) = task.artifacts
        assert json_format.MessageToDict(artifact)["parts"][-1]["data"] == ADA
        assert json_format.MessageToDict(task.metadata)["caller"] == ALICE

        again = await sdk.get_task(GetTaskRequest(id=task.id))
        assert again.id == task.id
        assert again.status.state == TaskState.TASK_STATE_COMPLETED
        assert json_format.MessageToDict(again.metadata)["caller"] == ALICE
        assert json_format.MessageToDict(again.artifacts[0]) == json_format.MessageToDict(artifact)
    finally:
        await sdk.close()


async def test_input_required_then_answered(alice: httpx.AsyncClient, card: AgentCard) -> None:
    sdk: Any = await create_client(card, ClientConfig(streaming=False, httpx_client=alice))
    try:
        book = message("Lisbon")
        book.metadata.update({"skill": "book"})
        asked = await only_task(sdk, SendMessageRequest(message=book))
        assert asked.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        answer = message("early May", task_id=asked.id)
        done = await only_task(sdk, SendMessageRequest(message=answer))
        assert done.status.state == TaskState.TASK_STATE_COMPLETED
        assert json_format.MessageToDict(done.metadata)["caller"] == ALICE
        text = [p.text for a in done.artifacts for p in a.parts if p.HasField("text")]
        assert text == ["Booked Lisbon for early May."]
    finally:
        await sdk.close()


async def test_streaming_send_reaches_completed(alice: httpx.AsyncClient, card: AgentCard) -> None:
    sdk: Any = await create_client(card, ClientConfig(streaming=True, httpx_client=alice))
    try:
        greet = SendMessageRequest(message=data_message({"name": "Ada Lovelace"}))
        events = [e async for e in sdk.send_message(greet)]
        assert events[0].HasField("task") and events[-1].HasField("status_update")
        assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
        artifacts = [e.artifact_update for e in events if e.HasField("artifact_update")]
        assert json_format.MessageToDict(artifacts[-1].artifact)["parts"][-1]["data"] == ADA
        got = await sdk.get_task(GetTaskRequest(id=events[0].task.id))
        assert json_format.MessageToDict(got.metadata)["caller"] == ALICE
    finally:
        await sdk.close()


async def test_without_a_client_certificate_the_card_is_refused(
    certs: Path, node_url: str, http2: bool
) -> None:
    async with https(certs, None, http2) as anonymous:
        with pytest.raises(AgentCardResolutionError) as caught:
            await create_client(node_url, ClientConfig(httpx_client=anonymous))
    refused = caught.value
    assert refused.status_code == 401  # told, not hung up on
    assert isinstance(refused.__cause__, httpx.HTTPStatusError)
    assert "client certificate is required" in refused.__cause__.response.text


@pytest.mark.parametrize("streaming", [False, True], ids=["blocking", "streaming"])
async def test_without_a_client_certificate_a_send_is_refused(
    certs: Path, card: AgentCard, streaming: bool, http2: bool
) -> None:
    # The card came by alice's connection; the send goes without a certificate.
    async with https(certs, None, http2) as anonymous:
        sdk: Any = await create_client(
            card, ClientConfig(streaming=streaming, httpx_client=anonymous)
        )
        try:
            request = SendMessageRequest(message=data_message({"name": "Ada"}))
            with pytest.raises(A2AClientError) as caught:
                [e async for e in sdk.send_message(request)]
        finally:
            await sdk.close()
    refused = caught.value
    assert type(refused) is A2AClientError  # not its timeout subclass
    assert str(refused).startswith("HTTP Error 401: ")  # told, not hung up on
    assert isinstance(refused.__cause__, httpx.HTTPStatusError)
    answer = refused.__cause__.response
    if not streaming:  # a stream's body is not read once its status fails
        assert answer.json()["error"]["code"] == -32030
