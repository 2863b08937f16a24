"""The conformance agent's scenarios through the real task service (the TCK
itself is run by hand: examples/conformance/README.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent_node import Runtime, load_workflow
from agent_node.a2a.protocol.models import (
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    TaskState,
)
from agent_node.a2a.server.card import build_card
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.input_modes import input_modes_of
from agent_node.a2a.server.tasks import TaskService
from agent_node.config import load_config

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = f"{ROOT}/examples/conformance/conformance.py:wf"
CTX = CallContext()


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[TaskService]:
    workflow = load_workflow(WORKFLOW)
    async with Runtime(f"sqlite:///{tmp_path}/c.db", scope="all", poll_interval=0.05) as runtime:
        # The media types its skill takes, as its configuration's card declares them.
        source = load_config(ROOT / "examples/conformance/agent-node.yaml").card_source()
        modes = input_modes_of(source, ["conformance"])
        yield TaskService(runtime, {"conformance": workflow}, input_modes=modes)


def send(message_id: str, task_id: str | None = None) -> SendMessageRequest:
    message = Message(
        message_id=message_id, role=Role.USER, parts=[Part(text="hi")], task_id=task_id
    )
    return SendMessageRequest(message=message)


async def test_complete_message_and_artifacts(agent: TaskService) -> None:
    done = (await agent.send_message(send("tck-complete-task-1a2b3c4d"), CTX)).task
    assert done is not None and done.status.state == TaskState.COMPLETED
    assert done.status.message is not None and done.status.message.parts[0].text == "Hello from TCK"
    direct = await agent.send_message(send("tck-message-response-1a2b3c4d"), CTX)
    assert direct.message is not None and direct.message.parts[0].text == "Direct message response"
    url = (await agent.send_message(send("tck-artifact-file-url-1a2b3c4d"), CTX)).task
    raw = (await agent.send_message(send("tck-artifact-file-1a2b3c4d"), CTX)).task
    data = (await agent.send_message(send("tck-artifact-data-1a2b3c4d"), CTX)).task
    assert url is not None and raw is not None and data is not None
    assert (url.artifacts or [])[0].parts[0].url == "https://example.com/output.txt"
    assert (raw.artifacts or [])[0].parts[0].raw == "dGNr"
    assert (data.artifacts or [])[0].parts[0].data == {"key": "value", "count": 42}


async def test_input_required_stays_until_completed(agent: TaskService) -> None:
    asked = (await agent.send_message(send("tck-input-required-1a2b3c4d"), CTX)).task
    assert asked is not None and asked.status.state == TaskState.INPUT_REQUIRED
    again = (await agent.send_message(send("tck-input-required-1a2b3c4d", asked.id), CTX)).task
    assert again is not None and again.status.state == TaskState.INPUT_REQUIRED
    done = (await agent.send_message(send("tck-complete-task-1a2b3c4d", asked.id), CTX)).task
    assert done is not None and done.status.state == TaskState.COMPLETED
    assert len(done.history or []) == 5  # three messages in, two prompts out


async def test_auth_required_until_a_follow_up_grants_it(agent: TaskService) -> None:
    """The newer TCK's tck-auth-required: the task reaches AUTH_REQUIRED, a
    blocking send returns in it, it stays retrievable, a follow-up completes it."""
    asked = (await agent.send_message(send("tck-auth-required-1a2b3c4d"), CTX)).task
    assert asked is not None and asked.status.state == TaskState.AUTH_REQUIRED
    read = await agent.get_task(GetTaskRequest(id=asked.id), CTX)
    assert read.status.state == TaskState.AUTH_REQUIRED
    done = (await agent.send_message(send("tck-auth-required-1a2b3c4d", asked.id), CTX)).task
    assert done is not None and done.status.state == TaskState.COMPLETED
    again = (await agent.send_message(send("tck-auth-required-1a2b3c4d"), CTX)).task
    assert again is not None and again.status.state == TaskState.AUTH_REQUIRED
    hello = (await agent.send_message(send("tck-complete-task-1a2b3c4d", again.id), CTX)).task
    assert hello is not None and hello.status.state == TaskState.COMPLETED
    assert hello.status.message is not None
    assert hello.status.message.parts[0].text == "Hello from TCK"


async def test_a_part_of_any_media_type_is_taken(agent: TaskService) -> None:
    """CORE-SEND-003 (MUST): a part of a made-up media type is accepted, as
    the card says (a node refuses parts its skill does not declare)."""
    config = load_config(ROOT / "examples/conformance/agent-node.yaml")
    card = build_card(config, {"conformance": load_workflow(WORKFLOW)})
    assert card["skills"][0]["inputModes"] == ["*/*"]
    odd = Part(raw="dGNr", media_type="application/x-unsupported-tck-type")
    message = Message(message_id="tck-send-003-1a2b3c4d", role=Role.USER, parts=[odd])
    done = (await agent.send_message(SendMessageRequest(message=message), CTX)).task
    assert done is not None and done.status.state == TaskState.COMPLETED
