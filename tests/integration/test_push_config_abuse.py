"""Push configs a hostile client sends: the per-task cap holds on every path
that adds one, values that cannot go in a header are refused on every
binding (a real ``agent-node serve`` over mutual TLS), a refused request
leaves no config behind (in process, the race forced), and no delivery
error repeats a credential."""

from __future__ import annotations

import asyncio
import json
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
from support.webhook import receiving

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
from agent_node.a2a.server.push_headers import HIDDEN, scrubbed
from agent_node.a2a.server.task_push import MAX_PUSH_CONFIGS
from agent_node.a2a.server.tasks import TaskService
from agent_node.config import PushSettings
from agent_node.engine import faults
from agent_node.store.records import PushConfigRecord

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
    with serving_mtls(folder / "node", certs, grpc=True) as url:
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


# -- values that cannot be sent in a header ----------------------------------

#: Push configs whose token or authentication cannot go in a header, by why.
UNSENDABLE = {
    "credentials-crlf": {
        "authentication": {"scheme": "Bearer", "credentials": "x\r\nX-Injected: yes"}
    },
    "token-crlf": {"token": "t\r\nX-Injected: yes"},
    "token-not-ascii": {"token": "\u00e9t\u00e9"},
    "token-space-at-end": {"token": "tok "},
    "scheme-not-a-token": {"authentication": {"scheme": "Bearer x\r\n", "credentials": "c"}},
}


def grpc_target(card: dict[str, Any]) -> str:
    (grpc,) = [i for i in card["supportedInterfaces"] if i["protocolBinding"] == "GRPC"]
    return str(grpc["url"]).removeprefix("https://").replace("127.0.0.1", "localhost")


@pytest.mark.parametrize("fields", UNSENDABLE.values(), ids=UNSENDABLE.keys())
async def test_a_push_config_that_cannot_go_in_a_header_is_invalid_params_everywhere(
    client: httpx.AsyncClient, node: tuple[str, Path], fields: dict[str, Any]
) -> None:
    """Accepted before: each delivery failed 8 times, and the log and
    ``last_error`` quoted the credential (``Illegal header value b'Bearer x\\r\\n…'``)."""
    task_id = (await rpc(client, "SendMessage", booking("first")))["result"]["task"]["id"]
    config = {"taskId": task_id, "id": "bad", "url": "http://127.0.0.1:9/bad", **fields}
    said = await rpc(client, "CreateTaskPushNotificationConfig", config)
    assert said["error"]["code"] == -32602, said
    assert "HTTP" in said["error"]["message"] and "X-Injected" not in said["error"]["message"]
    auth = fields.get("authentication")
    nested = {k: v for k, v in config.items() if k != "taskId"}
    if auth:
        nested["authentication"] = {"schemes": [auth["scheme"]], "credentials": auth["credentials"]}
    v03 = {"jsonrpc": "2.0", "id": 1, "method": "tasks/pushNotificationConfig/set"}
    v03["params"] = {"taskId": task_id, "pushNotificationConfig": nested}
    said = (await client.post("/a2a", json=v03)).json()
    assert said["error"]["code"] == -32602, said
    assert "HTTP" in said["error"]["message"]
    rest = await client.post(
        f"/a2a/tasks/{task_id}/pushNotificationConfigs", json=config, headers=V10
    )
    assert rest.status_code == 400, rest.text
    assert rest.json()["error"]["status"] == "INVALID_ARGUMENT"
    in_a_send = booking("bad")
    in_a_send["configuration"]["taskPushNotificationConfig"].update(fields)
    said = await rpc(client, "SendMessage", in_a_send)
    assert said["error"]["code"] == -32602 and "HTTP" in said["error"]["message"]
    grpc = pytest.importorskip("grpc")
    from support.grpc_calls import Caller, mtls_channel, refusal

    card = (await client.get("/.well-known/agent-card.json")).json()
    _, certs = node
    async with mtls_channel(grpc_target(card), certs, "alice") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await Caller(channel).call("CreateTaskPushNotificationConfig", config)
    assert refusal(caught.value).code == grpc.StatusCode.INVALID_ARGUMENT
    listed = await rpc(client, "ListTaskPushNotificationConfigs", {"taskId": task_id})
    assert [c["id"] for c in listed["result"]["configs"]] == ["first"]


async def test_a_stored_config_that_cannot_go_in_a_header_is_given_up_without_its_secret(
    durable_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A config stored before the check (an older node's): its pushes are
    given up at once, and neither the log nor ``last_error`` quotes it."""
    secret = "x\r\nX-Injected: yes"
    async with receiving() as hook, pushing(durable_url) as service:
        request = send("Oslo", "unused")
        request.configuration = SendMessageConfiguration(return_immediately=True)
        task = (await service.send_message(request, CTX)).task
        assert task is not None
        store = service.runtime.store
        auth = {"scheme": "Bearer", "credentials": secret}
        document = json.dumps(
            {"taskId": task.id, "id": "old", "url": hook.url, "authentication": auth}
        )
        await store.put_push_config(PushConfigRecord(task.id, "old", document, "1.0", None, 1.0))
        assert service.push is not None
        service.push.poll = 0.05
        await service.push.start()
        try:
            while not (stored := (await store.push_configs(task.id))[0]).last_error:
                await asyncio.sleep(0.05)
        finally:
            await service.push.close()
    assert stored.last_error == "gave up: refused: Authorization: not an HTTP header value"
    assert hook.pushes == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "not an HTTP header value" in logged and "X-Injected" not in logged


async def test_what_httpx_quotes_of_a_header_it_refuses_is_scrubbed() -> None:
    value = "Bearer x\r\nX-Injected: yes"
    async with receiving() as hook, httpx.AsyncClient() as http:
        with pytest.raises(httpx.LocalProtocolError) as caught:
            await http.post(hook.url, headers={"Authorization": value})
    said = str(caught.value)
    assert "X-Injected" in said  # what the sender logged and kept before
    assert scrubbed(said, [value]) == said.replace(repr(value.encode())[2:-1], HIDDEN)
    assert "X-Injected" not in scrubbed(said, [value])
