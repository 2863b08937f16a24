"""Input modes: every part of a message is in a media type its skill takes,
or the message is refused with ContentTypeNotSupported and nothing is made
(found by an integrator's walk: a PNG to a skill reading text was answered
"name: Field required", or silently dropped while the task ran)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from support.workflows import greeter

from agent_node import Runtime, Workflow, load_workflow
from agent_node.a2a.protocol.errors import ContentTypeNotSupported
from agent_node.a2a.protocol.models import (
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    TaskPushNotificationConfig,
    TaskState,
)
from agent_node.a2a.server.app import Guard, create_app
from agent_node.a2a.server.card import CardDocument
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.input_modes import input_modes_of
from agent_node.a2a.server.jsonrpc import jsonrpc_endpoint
from agent_node.a2a.server.limits import Limits
from agent_node.a2a.server.push import PushSender
from agent_node.a2a.server.rest import rest_endpoint
from agent_node.a2a.server.task_origin import task_id_of
from agent_node.a2a.server.tasks import TaskService
from agent_node.card_source import CardSource
from agent_node.config import PushSettings
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.yaml_loader import load_yaml_text

ROOT = Path(__file__).resolve().parents[2]
CTX = CallContext()
CAPS = {"streaming": True, "pushNotifications": True}
V10 = {"A2A-Version": "1.0"}
PNG = Part(raw="iVBORw0KGgo=", media_type="image/png", filename="face.png")
PDF = Part(url="https://files.example.org/brief.pdf", media_type="application/pdf")
#: A skill whose state needs a ``name`` (the walk's "name: Field required").
NAMED = """
workflow:
  id: named
  version: "1"
  start: done
  state_schema: {type: object, properties: {name: {type: string}}, required: [name]}
nodes:
  done: {type: end}
"""
#: The card source: ``files`` takes text and images, ``any`` everything;
#: ``named``, ``greet`` and ``book`` declare nothing (the card's defaults).
SOURCE = CardSource.model_validate(
    {
        "name": "t",
        "description": "t",
        "skills": {
            "files": {"inputModes": ["text/plain; charset=utf-8", "image/*"]},
            "any": {"inputModes": ["*/*"]},
        },
    }
)


class Filed(BaseModel):
    text: str = ""
    message: dict[str, Any] = {}
    reply: str = ""


def filed(name: str) -> CompiledWorkflow:
    """A skill that reads the whole message: its reply lists the parts' media types."""
    wf = Workflow(name, version="1")
    wf.state(Filed)

    @wf.step
    async def look(s: Filed) -> dict[str, Any]:
        kinds = [str(p.get("mediaType", "-")) for p in s.message["parts"]]
        return {"reply": " ".join(kinds)}

    wf.end("done", output=["reply"])
    return wf.compile()


def skills() -> dict[str, CompiledWorkflow]:
    return {
        "named": load_yaml_text(NAMED),
        "greet": greeter().compile(),
        "book": load_workflow(str(ROOT / "examples/greeter/book.py") + ":wf"),
        "files": filed("files"),
        "any": filed("any"),
    }


@pytest.fixture
async def service(durable_url: str) -> AsyncIterator[TaskService]:
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as runtime:
        made = skills()
        tasks = TaskService(runtime, made, input_modes=input_modes_of(SOURCE, made))
        tasks.push = PushSender(
            runtime.store, tasks.render_push, PushSettings(allow=["127.0.0.0/8"]), owner="t"
        )
        yield tasks


@pytest.fixture
async def client(service: TaskService) -> AsyncIterator[httpx.AsyncClient]:
    limits = Limits()
    app = create_app(
        CardDocument.of({"name": "t"}),
        jsonrpc_endpoint(service, capabilities=CAPS, limits=limits),
        rest=rest_endpoint(service, capabilities=CAPS, limits=limits),
        guard=Guard(),
    )
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as made:
        yield made


def message(skill: str, *parts: Part, task_id: str | None = None) -> Message:
    return Message(
        message_id="m-1",
        role=Role.USER,
        parts=list(parts),
        metadata={"skill": skill},
        task_id=task_id,
    )


async def refused_over(
    client: httpx.AsyncClient, binding: str, sent: Message
) -> tuple[str, dict[str, str]]:
    """Send ``sent`` over ``binding``; its refusal's message and ErrorInfo metadata."""
    params = {"message": sent.to_json()}
    if binding == "jsonrpc":
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params}
        error = (await client.post("/a2a", json=rpc, headers=V10)).json()["error"]
        assert error["code"] == -32005, error
        [info] = error["data"]
    else:
        response = await client.post("/a2a/message:send", json=params, headers=V10)
        assert response.status_code == 415, response.text
        error = response.json()["error"]
        assert error["status"] == "INVALID_ARGUMENT"
        [info] = error["details"]
    assert info["reason"] == "CONTENT_TYPE_NOT_SUPPORTED"
    return str(error["message"]), dict(info["metadata"])


async def no_tasks(service: TaskService) -> bool:
    return (await service.list_tasks(ListTasksRequest(), CTX)).tasks == []


BINDINGS = ["jsonrpc", "rest"]


@pytest.mark.parametrize("binding", BINDINGS)
@pytest.mark.parametrize(
    ("part", "media_type"), [(PNG, "image/png"), (PDF, "application/pdf")], ids=["raw", "url"]
)
async def test_a_file_alone_is_refused_for_its_media_type_not_a_missing_field(
    client: httpx.AsyncClient, service: TaskService, binding: str, part: Part, media_type: str
) -> None:
    said, metadata = await refused_over(client, binding, message("named", part))
    assert said == (
        f"skill 'named' does not take part 0 ({media_type}): it takes text/plain, application/json"
    )
    assert metadata == {
        "skill": "named",
        "parts": "0",
        "mediaTypes": media_type,
        "inputModes": "text/plain,application/json",
    }
    assert await no_tasks(service)


@pytest.mark.parametrize("binding", BINDINGS)
async def test_text_with_a_picture_is_refused_not_cut(
    client: httpx.AsyncClient, service: TaskService, binding: str
) -> None:
    sent = message("greet", Part(text="hi"), PNG, Part(data={"k": 1}), PDF)
    said, metadata = await refused_over(client, binding, sent)
    assert "part 1 (image/png), part 3 (application/pdf)" in said
    assert (metadata["parts"], metadata["mediaTypes"]) == ("1,3", "image/png,application/pdf")
    assert await no_tasks(service)


async def test_a_refused_send_makes_no_task_and_no_push_config(service: TaskService) -> None:
    ctx = CallContext(idempotency_key="k-1")  # the task id it would have is known
    push = TaskPushNotificationConfig(id="p", url="https://127.0.0.1:9/hook")
    config = SendMessageConfiguration(task_push_notification_config=push)
    request = SendMessageRequest(message=message("greet", PNG), configuration=config)
    with pytest.raises(ContentTypeNotSupported):
        await service.send_message(request, ctx)
    with pytest.raises(ContentTypeNotSupported):
        [e async for e in await service.send_streaming_message(request, ctx)]
    store = service.runtime.store
    task_id = task_id_of(ctx)
    assert await store.get(task_id) is None and await store.push_configs(task_id) == []


async def test_declared_modes_take_wildcards_parameters_and_any_case(
    service: TaskService,
) -> None:
    text = Part(text="look", media_type="Text/Plain; Charset=UTF-8")
    picture = Part(raw="iVBORw0KGgo=", media_type="IMAGE/PNG")
    done = (
        await service.send_message(SendMessageRequest(message=message("files", text, picture)), CTX)
    ).task
    assert done is not None and done.status.state == TaskState.COMPLETED
    # The file reached the workflow, through its ``message`` field.
    assert (done.artifacts or [])[0].parts[0].text == "Text/Plain; Charset=UTF-8 IMAGE/PNG"
    for part, mode in [
        (PDF, "application/pdf"),
        (Part(data={"k": 1}), "application/json"),
        (Part(raw="IyBoaQ==", media_type="text/markdown"), "text/markdown"),
    ]:
        with pytest.raises(ContentTypeNotSupported, match=f"part 1 \\({mode}\\)"):
            await service.send_message(
                SendMessageRequest(message=message("files", text, part)), CTX
            )
    anything = (
        await service.send_message(SendMessageRequest(message=message("any", PDF, PNG)), CTX)
    ).task
    assert anything is not None and anything.status.state == TaskState.COMPLETED


@pytest.mark.parametrize("binding", BINDINGS)
async def test_text_in_any_text_type_is_taken_as_text(
    client: httpx.AsyncClient, service: TaskService, binding: str
) -> None:
    """A chat client labels what its user typed ``text/markdown``: a skill
    that reads text (the card's default modes, or ``text/plain`` declared)
    takes it, while a Markdown *file* is held to the skill's modes (found by
    a walk: such a text part was refused by every default skill)."""
    for skill, typed in [("greet", "text/markdown"), ("files", "text/html; charset=utf-8")]:
        sent = message(skill, Part(text="**Ada**", media_type=typed))
        rpc = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendMessage",
            "params": {"message": sent.to_json()},
        }
        if binding == "jsonrpc":
            answer = (await client.post("/a2a", json=rpc, headers=V10)).json()
            task = answer["result"]["task"]
        else:
            response = await client.post("/a2a/message:send", json=rpc["params"], headers=V10)
            assert response.status_code == 200, response.text
            task = response.json()["task"]
        assert task["status"]["state"] == "TASK_STATE_COMPLETED", task
    said, _ = await refused_over(
        client, binding, message("greet", Part(raw="KipBZGEqKg==", media_type="text/markdown"))
    )
    assert "part 0 (text/markdown)" in said


async def test_a_file_without_a_media_type_is_octet_stream(service: TaskService) -> None:
    bare = Part(raw="AAEC", filename="blob")
    with pytest.raises(ContentTypeNotSupported) as refused:
        await service.send_message(SendMessageRequest(message=message("files", bare)), CTX)
    assert "part 0 (application/octet-stream: a file without a mediaType)" in refused.value.message
    taken = (await service.send_message(SendMessageRequest(message=message("any", bare)), CTX)).task
    assert taken is not None and taken.status.state == TaskState.COMPLETED


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_follow_up_with_a_part_its_skill_does_not_take_is_refused(
    client: httpx.AsyncClient, service: TaskService, binding: str
) -> None:
    asked = (
        await service.send_message(
            SendMessageRequest(message=message("book", Part(text="Lisbon"))), CTX
        )
    ).task
    assert asked is not None and asked.status.state == TaskState.INPUT_REQUIRED
    answer = message("book", Part(text="early May"), PNG, task_id=asked.id)
    said, metadata = await refused_over(client, binding, answer)
    assert said.startswith("skill 'book' does not take part 1 (image/png)")
    assert metadata["skill"] == "book"
    # Not answered, not recorded: the task still asks, its history as it was.
    kept = await service.get_task(GetTaskRequest(id=asked.id), CTX)
    assert kept.status.state == TaskState.INPUT_REQUIRED
    assert kept.history == asked.history
    done = message("book", Part(text="early May"), task_id=asked.id)
    finished = (await service.send_message(SendMessageRequest(message=done), CTX)).task
    assert finished is not None and finished.status.state == TaskState.COMPLETED


async def test_a_refused_follow_up_sets_no_push_config(service: TaskService) -> None:
    asked = (
        await service.send_message(
            SendMessageRequest(message=message("book", Part(text="Oslo"))), CTX
        )
    ).task
    assert asked is not None
    push = TaskPushNotificationConfig(id="p", url="https://127.0.0.1:9/hook")
    config = SendMessageConfiguration(task_push_notification_config=push)
    answer = message("book", PDF, task_id=asked.id)
    with pytest.raises(ContentTypeNotSupported):
        await service.send_message(SendMessageRequest(message=answer, configuration=config), CTX)
    assert await service.runtime.store.push_configs(asked.id) == []


NODE = """\
name: modes
listen: {host: 127.0.0.1, port: 9850}
store: sqlite:///STORE
card: card.yaml
skills:
  - {id: greet, workflow: hello/workflow.yaml, default: true}
  - {id: look, workflow: look.yaml}
"""
CARD = """\
name: Modes
description: Greets by name; looks at pictures.
skills:
  look: {inputModes: [image/*]}
"""
LOOK = """
workflow:
  id: look
  version: "1"
  start: done
  state_schema: {type: object, properties: {message: {type: object}}}
nodes:
  done: {type: end}
"""


async def test_a_node_enforces_the_modes_its_card_declares(tmp_path: Path) -> None:
    from agent_node.config import load_config
    from agent_node.node import AgentNode
    from agent_node.node_parts import NodeParts

    shutil.copytree(ROOT / "examples/hello", tmp_path / "hello")
    (tmp_path / "agent-node.yaml").write_text(NODE.replace("STORE", str(tmp_path / "n.db")))
    (tmp_path / "card.yaml").write_text(CARD)
    (tmp_path / "look.yaml").write_text(LOOK)
    config = load_config(tmp_path / "agent-node.yaml")
    parts = NodeParts.assemble(config, AgentNode(config).load_workflows(), secure=False)
    await parts.start()
    parts.health.serving()  # what the node does once its listener is up
    try:
        transport = httpx.ASGITransport(parts.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            card = (await client.get("/.well-known/agent-card.json")).json()
            declared = {s["id"]: s.get("inputModes") for s in card["skills"]}
            assert card["defaultInputModes"] == ["text/plain", "application/json"]
            assert declared == {"greet": None, "look": ["image/*"]}
            said, _ = await refused_over(client, "jsonrpc", message("greet", PNG))
            assert said == (
                "skill 'greet' does not take part 0 (image/png): it takes text/plain,"
                " application/json"
            )
            said, _ = await refused_over(client, "rest", message("look", Part(text="hi")))
            assert said == "skill 'look' does not take part 0 (text/plain): it takes image/*"
            params = {"message": message("look", PNG).to_json()}
            sent = await client.post("/a2a/message:send", json=params, headers=V10)
            assert sent.json()["task"]["status"]["state"] == "TASK_STATE_COMPLETED", sent.text
    finally:
        await parts.close()
