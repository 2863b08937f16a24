"""Push configs a hostile client sends a real node (``agent-node serve`` over
mutual TLS): the per-task cap holds on every path that adds one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.certs import make_certs
from support.nodes import serving_mtls
from support.tls import caller_context

from agent_node.a2a.server.task_push import MAX_PUSH_CONFIGS

V10 = {"A2A-Version": "1.0"}


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
