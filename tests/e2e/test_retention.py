"""A serving node prunes its finished executions by ``retention:`` by itself."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from e2e.procs import CLI, FIVE_STEPS, Spawn, child_env, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

V10 = {"A2A-Version": "1.0"}


def rpc(url: str, method: str, params: dict[str, object]) -> dict[str, object]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    answer: dict[str, object] = httpx.post(f"{url}/a2a", json=body, headers=V10, timeout=30).json()
    return answer


async def test_finished_tasks_go_once_older_than_the_retention(
    spawn: Spawn, tmp_path: Path
) -> None:
    conf = tmp_path / "agent-node.yaml"
    conf.write_text(
        "name: forgetful\nlisten: {host: 127.0.0.1, port: 0}\n"
        f"store: sqlite:///{tmp_path / 'f.db'}\n"
        f"skills:\n  - {{id: five, workflow: '{FIVE_STEPS}', default: true}}\n"
        "retention: {finished: 1s, every: 0.2s}\n"
    )
    env = child_env(tmp_path / "effects.db", step_sleep=0.0)
    node = spawn("node", [*CLI, "serve", "--insecure-dev", "--config", str(conf)], env)
    await wait_until(lambda: "listening on" in node.out(), "listening", timeout=30, alive=[node])
    url = node.out().splitlines()[0].split()[-1]
    message = {"messageId": "m", "role": "ROLE_USER", "parts": [{"data": {"item": 1}}]}
    sent = rpc(url, "SendMessage", {"message": message})
    task_id = sent["result"]["task"]["id"]  # type: ignore[index]
    assert "result" in rpc(url, "GetTask", {"id": task_id})

    def gone() -> bool:
        error = rpc(url, "GetTask", {"id": task_id}).get("error")
        return isinstance(error, dict) and error["code"] == -32001  # TaskNotFound

    await wait_until(gone, "the finished task to be pruned", timeout=15, alive=[node])
    node.send(signal.SIGTERM)
    assert node.wait(30) == 0
