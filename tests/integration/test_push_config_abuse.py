"""Push configs a hostile client sends: the per-task cap holds on every path
that adds one (a real ``agent-node serve`` over mutual TLS), and a refused
request leaves none behind (in process, the race forced)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from support.certs import make_certs
from support.nodes import serving_mtls
from support.tls import caller_context

from agent_node import Runtime, Workflow, load_workflow
from agent_node.a2a.protocol.errors import IdempotencyKeyReused, UnsupportedOperation
from agent_node.a2a.protocol.models import (
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    SendMessageResponse,
    TaskPushNotificationConfig,
)
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.push import PushSender
from agent_node.a2a.server.task_push import MAX_PUSH_CONFIGS
from agent_node.a2a.server.tasks import TaskService
from agent_node.config import PushSettings
from agent_node.engine import faults

ROOT = Path(__file__).resolve().parents[2]
V10 = {"A2A-Version": "1.0"}
CTX = CallContext()
LOOPBACK = PushSettings(allow=["127.0.0.0/8"])


class Nap(BaseModel):
    text: str = ""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("push-abuse")
    certs = make_certs(folder / "certs", "greeter", "alice")
    (folder / "node").mkdir()
    with serving_mtls(folder / "node", certs) as url:
        yield url, certs


@pytest.fixture
async def client(node: tuple[str, Path]) -> Any:
    url, certs = node
    async with httpx.AsyncClient(
        base_url=url, verify=caller_context(certs, "alice"), timeout=20
    ) as c:
        yield c


async def rpc(
    client: httpx.AsyncClient, method: str, params: dict[str, Any], **headers: str
) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    answer: dict[str, Any] = (
        await client.post("/a2a", json=body, headers={**V10, **headers})
    ).json()
    return answer


def booking(push_id: str) -> dict[str, Any]:
    """A send of the ``book`` skill (it parks, asking when) with a push config."""
    message = {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "Lisbon"}]}
    push = {"id": push_id, "url": f"http://127.0.0.1:9/{push_id}"}
    configuration = {"returnImmediately": True, "taskPushNotificationConfig": push}
    return {"message": message, "metadata": {"skill": "book"}, "configuration": configuration}


async def test_idempotency_key_repeats_add_no_config_past_the_cap(
    client: httpx.AsyncClient,
) -> None:
    """Each repeat carried a new config id: 200 repeats left 200 configs (and
    as many pushes per change) where a direct create was refused at 10."""
    answers = [
        await rpc(client, "SendMessage", booking(f"cfg{n}"), **{"Idempotency-Key": "k-cap"})
        for n in range(MAX_PUSH_CONFIGS + 2)
    ]
    task_id = answers[0]["result"]["task"]["id"]
    assert all(a["result"]["task"]["id"] == task_id for a in answers[:MAX_PUSH_CONFIGS])
    for refused in answers[MAX_PUSH_CONFIGS:]:
        assert refused["error"]["code"] == -32602
        assert "10 push configs already" in refused["error"]["message"]
    listed = await rpc(client, "ListTaskPushNotificationConfigs", {"taskId": task_id})
    ids = [c["id"] for c in listed["result"]["configs"]]
    assert ids == [f"cfg{n}" for n in range(MAX_PUSH_CONFIGS)]
    # The same repeat with a config it set already replaces it: still a retry.
    again = await rpc(client, "SendMessage", booking("cfg3"), **{"Idempotency-Key": "k-cap"})
    assert again["result"]["task"]["id"] == task_id


# -- a refused request stores no push config ----------------------------------


@asynccontextmanager
async def pushing(url: str, *workflows: Workflow) -> AsyncIterator[TaskService]:
    """A task service that takes push configs (its sender not started)."""
    async with Runtime(url, scope="all", poll_interval=0.05) as runtime:
        book = load_workflow(str(ROOT / "examples/greeter/book.py") + ":wf")
        skills = {"book": book, **{w.id: w.compile() for w in workflows}}
        service = TaskService(runtime, skills)
        owner = str(runtime.engine.owner)
        service.push = PushSender(runtime.store, service.render_push, LOOPBACK, owner=owner)
        yield service


def send(
    text: str, push_id: str, *, skill: str = "book", task_id: str | None = None
) -> SendMessageRequest:
    message = Message(message_id="m-1", role=Role.USER, parts=[Part(text=text)], task_id=task_id)
    push = TaskPushNotificationConfig(id=push_id, url=f"http://127.0.0.1:9/{push_id}")
    config = SendMessageConfiguration(task_push_notification_config=push, return_immediately=True)
    return SendMessageRequest(message=message, configuration=config, metadata={"skill": skill})


async def test_a_refused_follow_up_stores_no_push_config(durable_url: str) -> None:
    """A message to a task on its timer is refused (-32004): its push config was kept."""
    napping = Workflow("nap", version="1")
    napping.state(Nap)
    napping.wait("nap", duration="1h")
    async with pushing(durable_url, napping) as service:
        task = (await service.send_message(send("zz", "first", skill="nap"), CTX)).task
        assert task is not None
        store = service.runtime.store
        while (record := await store.get(task.id)) and record.status != "waiting":
            await asyncio.sleep(0.02)
        follow_up = send("hi", "sneaky", skill="nap", task_id=task.id)
        with pytest.raises(UnsupportedOperation, match="waits for a timer"):
            await service.send_message(follow_up, CTX)
        assert [c.id for c in await store.push_configs(task.id)] == ["first"]


async def test_the_loser_of_a_race_for_an_idempotency_key_stores_no_push_config(
    durable_url: str,
) -> None:
    """Two first sends with one key and other messages: the one refused
    (-32034) had its push config put on the other's task (19 runs of 20)."""
    ctx = CallContext(idempotency_key="k-race")
    won: list[SendMessageResponse] = []

    async def berlin_first(point: str, task_id: Any) -> None:
        faults.on(point, None)  # Paris waits here, before its submit: Berlin's send runs whole
        won.append(await service.send_message(send("Berlin", "from-berlin"), ctx))

    async with pushing(durable_url) as service:
        faults.on("task_submit", berlin_first)
        with pytest.raises(IdempotencyKeyReused):
            await service.send_message(send("Paris", "from-paris"), ctx)
        (berlin,) = won
        assert berlin.task is not None
        configs = await service.runtime.store.push_configs(berlin.task.id)
        assert [c.id for c in configs] == ["from-berlin"]
