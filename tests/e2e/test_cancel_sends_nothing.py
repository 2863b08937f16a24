"""Canceling a delegation never creates work at the peer, ours or foreign.

Node A delegates to peer F — our own node, or the official a2a-sdk 1.x
server over JSON-RPC, HTTP+JSON or gRPC (its card offering no other binding) —
over mutual TLS, both real processes:

* the send never reached F (F was not up yet): once our task is canceled
  and F is up, A looks for F's task (``ListTasks`` by the ``contextId`` it
  sent), finds none, and sends nothing (a walk: the cancel sent the message
  for the first time, after the delegation had timed out, and F ran it);
* F took the send but A never had its answer (A SIGKILLed at
  ``after_send``; our task canceled from the command line while A is
  down): A's restarted watchdog finds F's task and cancels it — still one
  task at F (a2a-sdk does not deduplicate sends: the cancel's send again
  made a second task, canceled that one, and the first ran on). Over
  HTTP+JSON it is found with ``GET /tasks?contextId=…``, over gRPC with
  ``ListTasks`` (before: it was not looked up at all there, and F's task
  ran on).
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from e2e.foreign.python_peers import python_peer
from e2e.procs import CLI, Spawn, child_env, opened, wait_until
from e2e.test_delegation import HOLD, V10, D, Net, client, send, tasks_of
from support.certs import make_certs
from support.ports import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

RELAY = """\
workflow:
  id: relay
  version: "1"
  start: ask
  state_schema: {type: object, properties: {name: {type: string}, answer: {type: object}}}
nodes:
  ask: {type: delegate, peer: f, %s, output: answer, poll: 1, next: done}
  done: {type: end}
"""
#: What A asks of F: our node's skill that holds its task, a2a-sdk's scenario
#: that works until canceled.
ASKED = {
    "ours": "skill: hold, data: [name]",
    "a2a-sdk-1": "text: hang",
    "a2a-sdk-1-rest": "text: hang",
    "a2a-sdk-1-grpc": "text: hang",
}


class Peer:
    """F, behind the front: what tasks it made, and which it canceled."""

    def __init__(self, kind: str, net: Net) -> None:
        self.kind, self.net = kind, net
        self.log = net.root / "peer.jsonl"
        #: Where it serves gRPC (alone), if it does.
        self.grpc_port = free_port() if kind.endswith("-grpc") else None

    async def start(self, spawn: Spawn) -> None:
        if self.kind == "ours":
            await self.net.start("f")
            return
        port = self.net.port("f")
        argv, env = python_peer(
            "1",
            port=port,
            certs=self.net.certs,
            name="f",
            log=self.log,
            push=False,
            streaming=False,
            rest=self.kind.endswith("-rest"),
            grpc_port=self.grpc_port,
        )
        child = spawn("f", argv, {**child_env(self.net.root / "effects", 0.0), **env})
        await wait_until(
            lambda: self._serving(port), "a2a-sdk to serve", timeout=120, alive=[child]
        )

    async def _serving(self, port: int) -> bool:
        async with client(self.net.certs, "a") as http:
            try:
                url = f"https://127.0.0.1:{port}/.well-known/agent-card.json"
                return (await http.get(url)).status_code == 200
            except Exception:
                return False

    async def tasks(self) -> list[tuple[str, str]]:
        """(id, state) of each task F made."""
        if self.kind == "ours":
            return [(t.id, t.status) for t in await tasks_of(self.net.store("f"))]
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        entries = [json.loads(line) for line in lines]
        canceled = {e["task_id"] for e in entries if e.get("event") == "canceled"}
        made = [e["task_id"] for e in entries if e.get("event") == "task_created"]
        return [(t, "canceled" if t in canceled else "working") for t in made]


@pytest.fixture(params=["ours", "a2a-sdk-1"])
def setup(request: pytest.FixtureRequest, tmp_path: Path, spawn: Spawn) -> tuple[Net, Peer]:
    net = Net(tmp_path, make_certs(tmp_path / "certs", "a", "f", "alice"), spawn)
    peer = Peer(request.param, net)
    if peer.kind == "ours":
        (tmp_path / "hold.yaml").write_text(HOLD)
        net.configure("f", {"hold": tmp_path / "hold.yaml"}, [])
    relay = tmp_path / "relay.yaml"
    relay.write_text(RELAY % ASKED[peer.kind])
    config = net.configure("a", {"relay": relay}, ["f"])
    if peer.grpc_port:  # gRPC's port is another origin than the card's: listed
        listed = f"'{D}/f', endpoints: ['grpcs://127.0.0.1:{peer.grpc_port}']}}"
        config.write_text(config.read_text().replace(f"'{D}/f'}}", listed))
    return net, peer


async def _cancel(net: Net, task_id: str) -> None:
    body = {"jsonrpc": "2.0", "id": 2, "method": "CancelTask", "params": {"id": task_id}}
    async with client(net.certs) as http:
        answer = (await http.post(f"{net.url('a')}/a2a", json=body, headers=V10)).json()
    assert answer["result"]["status"]["state"] == "TASK_STATE_CANCELED", answer


async def _row(net: Net, task_id: str) -> Any:
    async with opened(net.store("a")) as store:
        rows = await store.delegations(task_id)
    return rows[0] if rows else None


async def _tried(net: Net, task_id: str) -> bool:
    row = await _row(net, task_id)
    return row is not None and row.last_error is not None


async def _gone(net: Net, task_id: str) -> bool:
    return await _row(net, task_id) is None


async def test_a_send_that_never_reached_the_peer(setup: tuple[Net, Peer], spawn: Spawn) -> None:
    net, peer = setup
    await net.start("a")  # F is not up
    task = await send(net, "a", "Ada", blocking=False)
    await wait_until(lambda: _tried(net, task["id"]), "A to try F", timeout=20)
    await _cancel(net, task["id"])
    await peer.start(spawn)
    await wait_until(lambda: _gone(net, task["id"]), "the row to go", timeout=30)
    assert await peer.tasks() == []


@pytest.mark.parametrize("setup", list(ASKED), indirect=True)
async def test_a_send_whose_answer_was_lost(setup: tuple[Net, Peer], spawn: Spawn) -> None:
    net, peer = setup
    await peer.start(spawn)
    a = await net.start("a", faults="after_send@ask:1")  # F took it; A dies unrecorded
    task = await send(net, "a", "Ada", blocking=False)
    await wait_until(lambda: a.proc.poll() is not None, "A to be killed", timeout=20)
    assert a.proc.returncode == -signal.SIGKILL
    (made,) = await peer.tasks()
    canceled = subprocess.run(
        [*CLI, "cancel", task["id"], "--store", net.store("a")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert canceled.returncode == 0, canceled.stderr
    row = await _row(net, task["id"])
    assert (row.state, row.remote_task_id) == ("canceling", "")
    await net.start("a")
    await wait_until(lambda: _gone(net, task["id"]), "the row to go", timeout=30)
    assert await peer.tasks() == [(made[0], "canceled")]
