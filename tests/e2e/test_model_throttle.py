"""A rate-limited model visit parks durably (issue 16): a real ``agent-node
serve`` process asks the fake Ollama, which answers 429 with ``Retry-After:
2``; the node is SIGKILLed while the visit is parked, restarted, and asks
again once the two seconds are over — not before, and not twice."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.procs import Spawn, child_env, opened, wait_until
from e2e.test_node_crash import rpc, start_node
from support.fake_ollama import MODEL, FakeOllama, error, serving, text
from support.workflows import WRITER_YAML

from agent_node.results import to_event

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with serving() as fake:
        yield fake


async def test_a_throttled_visit_survives_a_kill_while_parked(
    tmp_path: Path, spawn: Spawn, ollama: FakeOllama
) -> None:
    ollama.script(error(429, "slow down", Retry_After="2"), text("After the wait."))
    workflow = tmp_path / "writer.yaml"
    workflow.write_text(WRITER_YAML)
    store = f"sqlite:///{tmp_path}/store.db"
    conf = tmp_path / "agent-node.yaml"
    conf.write_text(
        f"name: writer\nlisten: {{host: 127.0.0.1, port: 0}}\nstore: {store}\n"
        f"skills:\n  - {{id: write, workflow: '{workflow}', default: true}}\n"
        f"models: {{default: 'ollama_chat/{MODEL}', api_base: '{ollama.url}'}}\n"
    )
    env = child_env(tmp_path / "effects", 0.0)
    node, url = await start_node(spawn, "node-1", conf, env)
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "Hello?"}]}
    sent: Any = rpc(
        url, "SendMessage", {"message": message, "configuration": {"returnImmediately": True}}
    )
    task_id = str(sent["task"]["id"])

    async def throttled() -> bool:
        async with opened(store) as s:
            return any(e.kind == "node_failed" for e in await s.events(task_id))

    await wait_until(throttled, "the 429 to park the visit", timeout=30, alive=[node])
    node.send(signal.SIGKILL)
    node.wait(10)
    node, url = await start_node(spawn, "node-2", conf, env)

    async def finished() -> bool:
        answer: Any = rpc(url, "GetTask", {"id": task_id})
        return bool(answer["status"]["state"] == "TASK_STATE_COMPLETED")

    await wait_until(finished, "the task to complete after the restart", timeout=30, alive=[node])
    first, second = ollama.chats()
    assert second.at - first.at >= 2.0
    async with opened(store) as s:
        events = [to_event(e) for e in await s.events(task_id)]
    failed = [e.data for e in events if e.kind == "node_failed"]
    assert len(failed) == 1 and failed[0] is not None and failed[0]["throttled"] is True
    starts = [e.attempt for e in events if e.kind == "node_started" and e.node == "write"]
    assert starts == [1, 1]  # the same attempt again: none was used
