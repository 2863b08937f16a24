"""Our ``delegate`` node against peers that are not ours: agents built with the
official a2a-sdk servers, 1.x (A2A 1.0) and 0.3.x (A2A 0.3), run as real
processes over mutual TLS with certificates of our PKI.

Node ``a`` runs a relay workflow whose delegate step sends to the peer and
parks; the peer's judge works a second, then completes with a data part and
a text part. Each peer runs twice: declaring push notifications (the SDK's
own push sender reaches our ``/a2a/push`` with its client certificate and
our token) and not (our watchdog polls it). The peers log what they were
sent and every push they delivered, with our answer to it.

a2a-sdk 0.3 and 1.x cannot share an environment: the 0.3 server runs in a
virtual environment of its own with the SDK's HTTP server extras and
uvicorn, created once and kept in the user's cache (``e2e.venvs.SDK_SERVERS``,
shared with the foreign-peer matrix; the 0.3 *client* tests keep theirs next
to it, untouched).
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.procs import CLI, Child, Spawn, child_env, opened, wait_until
from e2e.venvs import SDK_SERVERS
from support.certs import make_certs
from support.ports import free_port
from support.tls import caller_context

from agent_node.results import to_event

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

E2E = Path(__file__).resolve().parent
D = "spiffe://example.org/agent"
V10 = {"A2A-Version": "1.0"}
NAME = "Ada Lovelace"
VERDICT = "Ada Lovelace has 11 letters"

RELAY = """\
workflow:
  id: relay
  version: "1"
  start: ask
  state_schema:
    type: object
    properties:
      name: {{type: string}}
      answer: {{type: object}}
      verdict: {{type: string}}
      judge: {{type: string}}
      note: {{type: string}}
    required: [name]
nodes:
  ask:
    type: delegate
    peer: {peer}
    skill: judge
    data: [name]
    output: answer
    fields: {{verdict: data.verdict, judge: data.judge, note: text}}
    poll: {poll}
    next: done
  done: {{type: end, output: [verdict, judge, note, answer]}}
"""

# -- the a2a-sdk 0.3 server's venv ------------------------------------------------------


@pytest.fixture(scope="module")
def sdk03_server_python() -> Path:
    """The interpreter of a venv holding the a2a-sdk 0.3.x server, made once and reused."""
    return SDK_SERVERS["0.3"].interpreter()


# -- certificates, processes -------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("interop") / "certs", "a", "sdk", "sdk03", "alice")


def client(certs: Path, name: str = "alice") -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=caller_context(certs, name), timeout=30)


@dataclass
class Peer:
    """A running SDK peer: its name, base URL and log (see the server scripts)."""

    name: str
    url: str
    log: Path
    child: Child

    def entries(self, event: str) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [e for e in lines if e["event"] == event]


async def start_peer(
    spawn: Spawn,
    root: Path,
    certs: Path,
    python: Path,
    name: str,
    *,
    push: bool,
    stream: bool = False,
) -> Peer:
    script = E2E / ("sdk03_peer_server.py" if name == "sdk03" else "sdk_peer_server.py")
    port, log = free_port(), root / f"{name}.log.jsonl"
    args = [str(python), str(script), "--port", str(port), "--certs", str(certs)]
    args += ["--name", name, "--log", str(log), *(["--push"] if push else [])]
    args += ["--stream"] if stream else []
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    peer = Peer(name, f"https://127.0.0.1:{port}", log, spawn(name, args, env))

    async def answers() -> bool:
        async with client(certs) as http:
            try:
                card = await http.get(f"{peer.url}/.well-known/agent-card.json")
            except httpx.HTTPError:
                return False
        return card.status_code == 200

    await wait_until(answers, f"{name} to serve", timeout=30, interval=0.1, alive=[peer.child])
    return peer


async def start_node(spawn: Spawn, root: Path, certs: Path, peer: Peer, poll: float) -> str:
    """Node ``a``, with ``peer`` as its one peer and the relay as its skill; its URL."""
    relay = root / "relay.yaml"
    relay.write_text(RELAY.format(peer=peer.name, poll=poll))
    port = free_port()
    config = root / "a.yaml"
    config.write_text(
        "\n".join(
            [
                "name: a",
                f"listen: {{host: 127.0.0.1, port: {port}}}",
                f"store: sqlite:///{root}/a.db",
                "skills:",
                f"  - {{id: relay, workflow: '{relay}'}}",
                "peers:",
                f"  - {{name: {peer.name}, url: '{peer.url}', identity: '{D}/{peer.name}'}}",
            ]
        )
        + "\n"
    )
    args = [*CLI, "serve", "--config", str(config), "--cert-dir", str(certs), "--identity", "a"]
    node = spawn("a", args, child_env(root / "effects", 0.0))
    await wait_until(lambda: "listening on" in node.out(), "a to listen", timeout=30, alive=[node])
    return f"https://127.0.0.1:{port}"


async def relay(node: str, certs: Path) -> dict[str, Any]:
    """Ask node ``a``'s relay to judge NAME, blocking: the finished task."""
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"data": {"name": NAME}}]}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    async with client(certs) as http:
        answer = (await http.post(f"{node}/a2a", json=body, headers=V10)).json()
    assert "result" in answer, answer
    task: dict[str, Any] = answer["result"]["task"]
    return task


async def events_of(root: Path, execution_id: str) -> list[Any]:
    async with opened(f"sqlite:///{root}/a.db") as store:
        return [to_event(e) for e in await store.events(execution_id)]


def of(events: list[Any], kind: str) -> dict[str, Any]:
    data: dict[str, Any] = next(e for e in events if e.node == "ask" and e.kind == kind).data
    return data


# -- what every delegation to a foreign peer must show ----------------------------------------


async def delegate(
    peer: Peer, node: str, root: Path, certs: Path, version: str, via: str
) -> dict[str, Any]:
    """Run the relay against ``peer``; check the outcome; the peer's ``execute`` entry."""
    task = await relay(node, certs)
    assert task["status"]["state"] == "TASK_STATE_COMPLETED", task
    (artifact,) = task["artifacts"]
    answer = artifact["parts"][0]["data"]
    judge = f"a2a-sdk {'0.3.' if version == '0.3' else '1.'}"
    assert answer["verdict"] == VERDICT and answer["judge"].startswith(judge), answer
    assert answer["note"] == f"judged by {answer['judge']}"

    events = await events_of(root, task["id"])
    # The peer answered non-terminal (working): sent, parked, resumed once.
    kinds = [e.kind for e in events if e.node == "ask" and e.kind != "node_started"]
    assert kinds == ["wait_started", "delegation_sent", "wait_resolved", "node_completed"]
    sent = of(events, "delegation_sent")
    identity = f"{D}/{peer.name}"
    assert (sent["peer"], sent["identity"], sent["version"]) == (peer.name, identity, version)
    resolved = of(events, "wait_resolved")["payload"]
    assert resolved["via"] == via
    assert of(events, "node_completed")["output"]["task_id"] == sent["task_id"]
    # The whole result went into the state too (``output: answer``).
    whole = answer["answer"]
    assert (whole["peer"], whole["task_id"]) == (peer.name, sent["task_id"])
    assert whole["state"] == "TASK_STATE_COMPLETED"
    assert whole["data"] == {"verdict": VERDICT, "judge": answer["judge"]}
    assert whole["text"] == answer["note"]

    # What the peer was sent: the attempt's idempotency key as messageId and header.
    (executed,) = peer.entries("execute")
    key = f"{task['id']}/ask/1"
    assert executed["task_id"] == sent["task_id"]
    assert executed["message_id"] == key and executed["headers"]["idempotency-key"] == key
    assert executed["data"] == {"name": NAME} and executed["metadata"] == {"skill": "judge"}
    async with opened(f"sqlite:///{root}/a.db") as store:
        assert await store.delegations(task["id"]) == []  # done with
    return executed


def check_pushes(peer: Peer, node: str, executed: dict[str, Any]) -> list[dict[str, Any]]:
    """Every push the peer delivered went to our endpoint with our token and was taken."""
    target = executed["push"]
    assert target["url"] == f"{node}/a2a/push"
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[0-9a-f]{64}", target["token"])  # key.HMAC
    pushes = peer.entries("push")
    assert pushes, "the peer pushed nothing"
    for push in pushes:
        assert push["url"] == target["url"]
        assert push["headers"]["x-a2a-notification-token"] == target["token"]
        assert "authorization" not in push["headers"]
        assert push["headers"]["content-type"] == "application/json"
        assert push["status"] == 200, push
    return pushes


# -- a2a-sdk 1.x (A2A 1.0) ----------------------------------------------------------------------


async def test_sdk_peer_pushes_its_result(tmp_path: Path, certs: Path, spawn: Spawn) -> None:
    peer = await start_peer(spawn, tmp_path, certs, Path(sys.executable), "sdk", push=True)
    node = await start_node(spawn, tmp_path, certs, peer, poll=30.0)
    executed = await delegate(peer, node, tmp_path, certs, "1.0", via="push")
    assert executed["return_immediately"] is True
    assert executed["headers"]["a2a-version"] == "1.0"
    await wait_until(lambda: _pushed_completion(peer), "the last push to be logged", timeout=10)
    pushes = check_pushes(peer, node, executed)
    # One StreamResponse per event, as the SDK's BasePushNotificationSender sends them.
    shapes = [next(iter(p["body"])) for p in pushes]
    assert set(shapes) <= {"task", "statusUpdate", "artifactUpdate"}, shapes
    assert all(len(p["body"]) == 1 for p in pushes)
    assert "artifactUpdate" in shapes
    assert pushes[-1]["body"]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert pushes[-1]["body"]["statusUpdate"]["taskId"] == executed["task_id"]


def _pushed_completion(peer: Peer) -> bool:
    return any(
        p["body"].get("statusUpdate", {}).get("status", {}).get("state") == "TASK_STATE_COMPLETED"
        for p in peer.entries("push")
    )


async def test_sdk_peer_without_push_is_polled(tmp_path: Path, certs: Path, spawn: Spawn) -> None:
    peer = await start_peer(spawn, tmp_path, certs, Path(sys.executable), "sdk", push=False)
    node = await start_node(spawn, tmp_path, certs, peer, poll=0.3)
    executed = await delegate(peer, node, tmp_path, certs, "1.0", via="poll")
    assert executed["push"] is None  # its card said it does not push: none was asked for
    assert peer.entries("push") == []


async def test_sdk_peer_that_streams_but_does_not_push_is_followed(
    tmp_path: Path, certs: Path, spawn: Spawn
) -> None:
    peer = await start_peer(
        spawn, tmp_path, certs, Path(sys.executable), "sdk", push=False, stream=True
    )
    node = await start_node(spawn, tmp_path, certs, peer, poll=30.0)
    executed = await delegate(peer, node, tmp_path, certs, "1.0", via="stream")
    assert executed["push"] is None and peer.entries("push") == []


# -- a2a-sdk 0.3.x (A2A 0.3) ----------------------------------------------------------------------


async def test_sdk03_peer_pushes_its_result(
    tmp_path: Path, certs: Path, spawn: Spawn, sdk03_server_python: Path
) -> None:
    peer = await start_peer(spawn, tmp_path, certs, sdk03_server_python, "sdk03", push=True)
    node = await start_node(spawn, tmp_path, certs, peer, poll=30.0)
    executed = await delegate(peer, node, tmp_path, certs, "0.3", via="push")
    assert executed["blocking"] is False
    assert executed["headers"]["a2a-version"] is None  # 0.3 is spoken without the header
    await wait_until(
        lambda: any(p["body"]["status"]["state"] == "completed" for p in peer.entries("push")),
        "the last push to be logged",
        timeout=10,
    )
    pushes = check_pushes(peer, node, executed)
    # The whole 0.3 Task after each event, as the SDK's BasePushNotificationSender sends it.
    assert all(p["body"]["kind"] == "task" for p in pushes)
    assert all(p["body"]["id"] == executed["task_id"] for p in pushes)
    last = pushes[-1]["body"]
    assert last["status"]["state"] == "completed"
    assert last["artifacts"][0]["parts"][0] == {
        "kind": "data",
        "data": {"verdict": VERDICT, "judge": last["artifacts"][0]["parts"][0]["data"]["judge"]},
    }


async def test_sdk03_peer_without_push_is_polled(
    tmp_path: Path, certs: Path, spawn: Spawn, sdk03_server_python: Path
) -> None:
    peer = await start_peer(spawn, tmp_path, certs, sdk03_server_python, "sdk03", push=False)
    node = await start_node(spawn, tmp_path, certs, peer, poll=0.3)
    executed = await delegate(peer, node, tmp_path, certs, "0.3", via="poll")
    assert executed["push"] is None
    assert peer.entries("push") == []
