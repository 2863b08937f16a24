"""A node SIGKILLed while its A2A tasks are WORKING restarts, completes them,
and delivers their push notifications."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from e2e.procs import CLI, FIVE_STEPS, Child, Spawn, child_env, opened, read_logs, wait_until
from support.effects import Effects
from support.webhook import receiving

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TASKS = 10


def config(tmp_path: Path, store: str) -> Path:
    path = tmp_path / "agent-node.yaml"
    path.write_text(
        "name: crashnode\nlisten: {host: 127.0.0.1, port: 0}\n"
        f"store: {store}\nskills:\n  - {{id: five, workflow: '{FIVE_STEPS}', default: true}}\n"
        "push: {allow: [127.0.0.1]}\n"
    )
    return path


def rpc(url: str, method: str, params: dict[str, object]) -> dict[str, object]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    answer = httpx.post(f"{url}/a2a", json=body, headers={"A2A-Version": "1.0"}, timeout=10)
    payload = answer.json()
    assert "result" in payload, payload
    result: dict[str, object] = payload["result"]
    return result


async def start_node(spawn: Spawn, name: str, conf: Path, env: dict[str, str]) -> tuple[Child, str]:
    node = spawn(name, [*CLI, "serve", "--insecure-dev", "--config", str(conf)], env)
    await wait_until(
        lambda: "listening on" in node.out(), f"{name} to listen", timeout=30, alive=[node]
    )
    return node, node.out().splitlines()[0].split()[-1]


async def test_a_killed_node_finishes_its_working_tasks_after_restart(
    durable_url: str, spawn: Spawn, tmp_path: Path
) -> None:
    async with receiving() as hook:
        ids = await kill_and_restart(durable_url, spawn, tmp_path, hook.url)
        await hook.wait_for(
            lambda pushes: {p.body["task"]["id"] for p in pushes} == set(ids),
            "a push for every task",
            timeout=30,
        )
    for received in hook.accepted():
        assert received.body["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
        assert received.headers["authorization"] == "Bearer crash-test"


async def kill_and_restart(
    durable_url: str, spawn: Spawn, tmp_path: Path, hook_url: str
) -> list[str]:
    effects = Effects(tmp_path / "effects.db")
    env = child_env(tmp_path / "effects.db", step_sleep=0.05)
    conf = config(tmp_path, durable_url)
    node, url = await start_node(spawn, "node-1", conf, env)
    ids = []
    for item in range(TASKS):
        message = {
            "messageId": f"m{item}",
            "role": "ROLE_USER",
            "parts": [{"data": {"item": item}}],
        }
        push = {
            "url": hook_url,
            "authentication": {"scheme": "Bearer", "credentials": "crash-test"},
        }
        configuration = {"returnImmediately": True, "taskPushNotificationConfig": push}
        params = {"message": message, "configuration": configuration}
        ids.append(rpc(url, "SendMessage", params)["task"]["id"])  # type: ignore[index]
    total = TASKS * 5
    await wait_until(
        lambda: sum(effects.invocations().values()) >= 15, "some steps to run", timeout=30
    )
    node.send(signal.SIGKILL)
    assert node.wait(10) == -signal.SIGKILL
    assert sum(effects.invocations().values()) < total, "the node finished before the kill"
    _, url = await start_node(spawn, "node-2", conf, env)

    async def all_completed() -> bool:
        tasks = [rpc(url, "GetTask", {"id": task_id}) for task_id in ids]
        return all(t["status"]["state"] == "TASK_STATE_COMPLETED" for t in tasks)  # type: ignore[index]

    await wait_until(all_completed, "every task to complete after the restart", timeout=60)
    async with opened(durable_url) as store:
        logs = await read_logs(store, ids)
    keys = [f"{task_id}/step{n}/1" for task_id in ids for n in range(1, 6)]
    assert effects.effects() == dict.fromkeys(keys, 1)  # every effect exactly once
    restarted = [
        e
        for _, events in logs.values()
        for e in events
        if e.kind == "node_started" and (e.attempt or 0) > 1
    ]
    assert restarted, "no node was interrupted by the kill"
    return ids
