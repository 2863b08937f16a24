"""``limits.max_open_tasks_per_caller`` on a real ``agent-node serve`` over
mutual TLS, with its three bindings, on SQLite and PostgreSQL.

Before, one caller could park tasks (INPUT_REQUIRED) for ever: 4,405 in
20 s stayed open, and retention prunes finished tasks only. Now a send that
would make a caller's open tasks one more than the cap is refused, no task
made, in the family of the per-caller request cap (JSON-RPC -32032, REST
429, gRPC RESOURCE_EXHAUSTED), saying how many are open and how to close
some; follow-ups and repeated sends are never refused by it, another
caller has its own count, and the count is the store's: a restarted node
knows it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from support.certs import make_certs
from support.grpc_calls import Caller, mtls_channel, refusal
from support.nodes import greeter_config, serving_config
from support.tls import caller_context

CAP = 3
V10 = {"A2A-Version": "1.0"}
ALICE = "spiffe://example.org/agent/alice"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("open-tasks") / "certs", "greeter", "alice", "bob")


@pytest.fixture
def node_config(tmp_path: Path, durable_url: str) -> Path:
    """The greeter with the cap at :data:`CAP`, its store ``durable_url``."""
    config = greeter_config(tmp_path, f"limits: {{max_open_tasks_per_caller: {CAP}}}\n")
    ours = f"store: sqlite:///{tmp_path}/greeter.db"
    config.write_text(config.read_text().replace(ours, f"store: {durable_url}"))
    return config


@asynccontextmanager
async def node(config: Path, certs: Path) -> AsyncIterator[tuple[str, str]]:
    """The node served: its base URL and its gRPC target."""
    flags = ["--cert-dir", str(certs), "--identity", "greeter", "--grpc-port", "0"]
    with serving_config(config.parent, config, flags) as url:
        async with httpx.AsyncClient(verify=caller_context(certs, "alice")) as http:
            card = (await http.get(f"{url}/.well-known/agent-card.json")).json()
        (grpc_url,) = [
            i["url"] for i in card["supportedInterfaces"] if i["protocolBinding"] == "GRPC"
        ]
        target = grpc_url.removeprefix("https://").replace("127.0.0.1", "localhost")
        yield url, target


@asynccontextmanager
async def client(url: str, certs: Path, name: str) -> AsyncIterator[httpx.AsyncClient]:
    verify = caller_context(certs, name)
    async with httpx.AsyncClient(base_url=url, verify=verify, timeout=30) as http:
        yield http


def booking(text: str = "Lisbon", task_id: str | None = None) -> dict[str, Any]:
    """A send of the ``book`` skill, which parks asking when (or answers it)."""
    message: dict[str, Any] = {"messageId": text, "role": "ROLE_USER", "parts": [{"text": text}]}
    if task_id is not None:
        message["taskId"] = task_id
    return {
        "message": message,
        "metadata": {"skill": "book"},
        "configuration": {"returnImmediately": True},
    }


async def rpc(
    http: httpx.AsyncClient, method: str, params: dict[str, Any], **headers: str
) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    answer: dict[str, Any] = (await http.post("/a2a", json=body, headers={**V10, **headers})).json()
    return answer


async def open_count(http: httpx.AsyncClient) -> int:
    listed = await rpc(http, "ListTasks", {})
    states = [t["status"]["state"] for t in listed["result"]["tasks"]]
    return sum(s not in ("TASK_STATE_COMPLETED", "TASK_STATE_CANCELED") for s in states)


def assert_refused_saying_why(message: str) -> None:
    assert f"{ALICE} has {CAP} open tasks" in message, message
    assert "CancelTask" in message and "answer those that ask" in message, message


async def refused_on_every_binding(url: str, target: str, certs: Path) -> None:
    async with client(url, certs, "alice") as http:
        said = await rpc(http, "SendMessage", booking("Oslo"))
        assert said["error"]["code"] == -32032, said
        assert_refused_saying_why(said["error"]["message"])
        rest = await http.post("/a2a/message:send", json=booking("Oslo"), headers=V10)
        assert rest.status_code == 429, rest.text
        assert rest.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert_refused_saying_why(rest.json()["error"]["message"])
        assert "retry-after" not in rest.headers  # waiting closes no task
        assert await open_count(http) == CAP  # nothing was made
    async with mtls_channel(target, certs, "alice") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await Caller(channel).call("SendMessage", booking("Oslo"))
    refused = refusal(caught.value)
    assert (refused.code, refused.reason) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "TOO_MANY_REQUESTS",
    )
    assert refused.metadata == {"openTasks": str(CAP), "limit": str(CAP)}
    assert_refused_saying_why(refused.message)


async def test_a_caller_at_the_cap_makes_no_task_until_one_is_closed(
    node_config: Path, certs: Path
) -> None:
    async with node(node_config, certs) as (url, target):
        async with client(url, certs, "alice") as alice:
            made = [
                await rpc(alice, "SendMessage", booking(), **{"Idempotency-Key": "k0"}),
                *[await rpc(alice, "SendMessage", booking()) for _ in range(CAP - 1)],
            ]
            ids = [m["result"]["task"]["id"] for m in made]
        await refused_on_every_binding(url, target, certs)
        async with client(url, certs, "bob") as bob:  # a count of its own
            assert "result" in await rpc(bob, "SendMessage", booking())
        async with client(url, certs, "alice") as alice:
            # A repeat makes no task: never refused by the cap.
            again = await rpc(alice, "SendMessage", booking(), **{"Idempotency-Key": "k0"})
            assert again["result"]["task"]["id"] == ids[0], again
            # Nor is a follow-up; once the task it answered is done, a place is free.
            answered = await rpc(alice, "SendMessage", booking("in May", ids[1]))
            assert answered["result"]["task"]["id"] == ids[1], answered
            task: dict[str, Any] = {}
            while task.get("status", {}).get("state") != "TASK_STATE_COMPLETED":
                await asyncio.sleep(0.05)
                task = (await rpc(alice, "GetTask", {"id": ids[1]}))["result"]
            assert "result" in await rpc(alice, "SendMessage", booking("Rome"))
            assert "error" in await rpc(alice, "SendMessage", booking("Oslo"))
    # The count is the store's: the node started again knows it.
    async with node(node_config, certs) as (url, target):
        await refused_on_every_binding(url, target, certs)
        async with client(url, certs, "alice") as alice:
            assert "result" in await rpc(alice, "CancelTask", {"id": ids[2]})
            assert "result" in await rpc(alice, "SendMessage", booking("Rome"))
            assert await open_count(alice) == CAP


def test_the_cap_is_a_limit_of_the_configuration() -> None:
    from agent_node.settings import Limits

    assert Limits().max_open_tasks_per_caller == 10_000
    assert Limits(max_open_tasks_per_caller=0).max_open_tasks_per_caller == 0  # no cap
    with pytest.raises(ValueError, match="max_open_tasks_per_caller"):
        Limits(max_open_tasks_per_caller=-1)
