"""The ``@a2a-js/sdk`` peer servers serve the scenario contract of :mod:`e2e.foreign`.

Each generation's server (1.x speaking A2A 1.0, 0.3.x speaking 0.3) runs as
a real Node.js process over mutual TLS and is driven with plain JSON-RPC
from httpx — no SDK on this side — through every scenario: completed at
once, slow (returned WORKING, then completed), one and two questions
answered by follow-ups, streamed chunks over SSE, a hanging task canceled,
a failure; and the SDK's own push sender delivering to our mutual-TLS
webhook with the token we set and the peer's certificate. The log the
matrix reads is checked on the way.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.foreign.js_peers import js_peer, js_ready
from e2e.procs import Child, child_env, wait_until
from support.certs import make_certs
from support.ports import free_port
from support.tls import caller_context
from support.webhook import receiving

from agent_node.security.tls import server_context

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120 if js_ready("1") and js_ready("0.3") else 400),
]

PEER = "spiffe://example.org/agent/f"


@dataclass(frozen=True)
class Dialect:
    """The JSON-RPC names and shapes of one protocol generation."""

    version: str

    @property
    def v1(self) -> bool:
        return self.version == "1"

    @property
    def headers(self) -> dict[str, str]:
        return {"A2A-Version": "1.0"} if self.v1 else {}

    def method(self, v1: str, v03: str) -> str:
        return v1 if self.v1 else v03

    def message(self, text: str, task_id: str | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"messageId": f"m-{text.split()[0]}-{free_port()}"}
        if self.v1:
            message |= {"role": "ROLE_USER", "parts": [{"text": text}]}
        else:
            message |= {
                "kind": "message",
                "role": "user",
                "parts": [{"kind": "text", "text": text}],
            }
        if task_id is not None:
            message["taskId"] = task_id
        return message

    def configuration(self, *, immediate: bool = False, push: Any = None) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if immediate:
            config["returnImmediately" if self.v1 else "blocking"] = self.v1
        if push is not None:
            config["taskPushNotificationConfig" if self.v1 else "pushNotificationConfig"] = push
        return config

    def task_of(self, result: dict[str, Any]) -> dict[str, Any]:
        task: dict[str, Any] = result["task"] if self.v1 else result
        return task


def state(task: dict[str, Any]) -> str:
    """A task's state in 0.3 spelling ("input-required"), whichever generation."""
    raw = str(task["status"]["state"])
    return raw.removeprefix("TASK_STATE_").lower().replace("_", "-")


def said(task: dict[str, Any]) -> str:
    parts = (task["status"].get("message") or {}).get("parts", [])
    return " ".join(p.get("text", "") for p in parts)


def artifact_text(task: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for a in task.get("artifacts", []) for p in a["parts"])


@dataclass
class Peer:
    url: str
    certs: Path
    log: Path
    child: Child
    dialect: Dialect

    def entries(self, event: str) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [e for e in map(json.loads, lines) if e["event"] == event]

    async def call(self, method: str, params: dict[str, Any], **headers: str) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        async with httpx.AsyncClient(verify=caller_context(self.certs, "alice"), timeout=30) as h:
            answer = await h.post(self.url, json=body, headers=self.dialect.headers | headers)
        reply = answer.json()
        assert "result" in reply, reply
        return reply["result"]

    async def send(self, message: dict[str, Any], **configuration: Any) -> dict[str, Any]:
        d = self.dialect
        params = {"message": message, "configuration": d.configuration(**configuration)}
        return d.task_of(await self.call(d.method("SendMessage", "message/send"), params))

    async def get(self, task_id: str) -> dict[str, Any]:
        d = self.dialect
        task: dict[str, Any] = await self.call(d.method("GetTask", "tasks/get"), {"id": task_id})
        return task

    async def settled(self, task_id: str, want: str) -> dict[str, Any]:
        found: dict[str, Any] = {}

        async def there() -> bool:
            found.update(await self.get(task_id))
            return state(found) == want

        await wait_until(there, f"task {task_id} to be {want}", timeout=20, interval=0.05)
        return found


@pytest.fixture(scope="module", params=["1", "0.3"], ids=["a2a-js-1", "a2a-js-0.3"])
def peer(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Peer]:
    generation = str(request.param)
    folder = tmp_path_factory.mktemp(f"js-peer-{generation}")
    certs = make_certs(folder / "certs", "f", "alice", "hook")
    port, log = free_port(), folder / "peer.jsonl"
    argv, env = js_peer(
        generation, port=port, certs=certs, name="f", log=log, push=True, streaming=True
    )
    child = Child("peer", argv, {**child_env(folder, 0.0), **env}, folder)
    try:
        yield Peer(f"https://127.0.0.1:{port}/", certs, log, child, Dialect(generation))
    finally:
        child.reap()


@pytest.fixture
async def served(peer: Peer) -> AsyncIterator[Peer]:
    async def card() -> bool:
        try:
            async with httpx.AsyncClient(verify=caller_context(peer.certs, "alice")) as h:
                answer = await h.get(f"{peer.url}.well-known/agent-card.json", timeout=2)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    await wait_until(card, "the JS peer to serve its card", timeout=30, alive=[peer.child])
    yield peer
    assert peer.child.proc.poll() is None, peer.child.describe()


async def test_the_card_declares_the_interface_and_capabilities(served: Peer) -> None:
    async with httpx.AsyncClient(verify=caller_context(served.certs, "alice")) as h:
        card = (await h.get(f"{served.url}.well-known/agent-card.json")).json()
    assert card["capabilities"]["streaming"] and card["capabilities"]["pushNotifications"]
    if served.dialect.v1:
        (interface,) = card["supportedInterfaces"]
        assert (interface["url"], interface["protocolVersion"]) == (served.url, "1.0")
    else:
        assert (card["url"], card["protocolVersion"]) == (served.url, "0.3.0")


async def test_without_a_client_certificate_the_peer_refuses(served: Peer) -> None:
    async with httpx.AsyncClient(verify=caller_context(served.certs, None)) as anonymous:
        # Node.js answers the handshake with TLS 1.3's "certificate required"
        # alert, which reaches us as the ssl module's own error, unwrapped.
        with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
            await anonymous.get(f"{served.url}.well-known/agent-card.json")


async def test_complete_is_completed_during_the_send(served: Peer) -> None:
    message = served.dialect.message("complete the job")
    task = await served.send(message)
    assert state(task) == "completed"
    (artifact,) = task["artifacts"]
    assert artifact["name"] == "result" and artifact_text(task) == "done: complete the job"
    requests = [e for e in served.entries("request") if e["task_id"] == task["id"]]
    assert requests == [
        {
            "event": "request",
            "method": served.dialect.method("SendMessage", "message/send"),
            "task_id": task["id"],
            "message_id": message["messageId"],
            "idempotency_key": None,
            "text": "complete the job",
        }
    ]
    created = [e for e in served.entries("task_created") if e["task_id"] == task["id"]]
    assert created == [
        {"event": "task_created", "task_id": task["id"], "message_id": message["messageId"]}
    ]


async def test_the_idempotency_key_header_is_logged(served: Peer) -> None:
    d = served.dialect
    params = {"message": d.message("complete keyed")}
    result = await served.call(
        d.method("SendMessage", "message/send"), params, **{"Idempotency-Key": "k-42"}
    )
    task_id = d.task_of(result)["id"]
    (request,) = [e for e in served.entries("request") if e["task_id"] == task_id]
    assert request["idempotency_key"] == "k-42"


async def test_slow_is_working_at_once_then_completed(served: Peer) -> None:
    task = await served.send(served.dialect.message("slow 300"), immediate=True)
    assert state(task) == "working"
    done = await served.settled(task["id"], "completed")
    assert artifact_text(done) == "done: slow 300"


@pytest.mark.parametrize("word", ["ask", "ask2"])
async def test_questions_are_answered_by_follow_ups(served: Peer, word: str) -> None:
    d = served.dialect
    task = await served.send(d.message(word))
    answers = ["Ada", "the grail"][: 1 if word == "ask" else 2]
    questions = ["What is your name?", "What is your quest?"]
    for question, answer in zip(questions, answers, strict=False):
        assert state(task) == "input-required" and said(task) == question
        assert task["status"]["message"]["messageId"]
        task = await served.send(d.message(answer, task["id"]))
    assert state(task) == "completed"
    assert artifact_text(task) == "hello " + " / ".join(answers)
    requests = [e["text"] for e in served.entries("request") if e["task_id"] == task["id"]]
    assert requests == [word, *answers]


async def test_stream_sends_three_chunks_over_sse(served: Peer) -> None:
    d = served.dialect
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": d.method("SendStreamingMessage", "message/stream"),
        "params": {"message": d.message("stream")},
    }
    events: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(verify=caller_context(served.certs, "alice"), timeout=30) as h,
        h.stream("POST", served.url, json=body, headers=d.headers) as answer,
    ):
        assert answer.headers["content-type"].startswith("text/event-stream")
        async for line in answer.aiter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line.removeprefix("data:"))["result"])
    chunks = [update for e in events if (update := _artifact_update(d, e)) is not None]
    assert [
        (c["artifact"]["parts"][0]["text"], bool(c.get("append")), bool(c.get("lastChunk")))
        for c in chunks
    ] == [
        ("chunk-1 ", False, False),
        ("chunk-2 ", True, False),
        ("chunk-3", True, True),
    ]
    assert {c["artifact"]["artifactId"] for c in chunks} == {"stream"}
    last = events[-1]["statusUpdate"] if d.v1 else events[-1]
    assert state(last) == "completed"


def _artifact_update(d: Dialect, event: dict[str, Any]) -> dict[str, Any] | None:
    if d.v1:
        update: dict[str, Any] | None = event.get("artifactUpdate")
        return update
    return event if event.get("kind") == "artifact-update" else None


async def test_hang_works_until_canceled(served: Peer) -> None:
    d = served.dialect
    task = await served.send(d.message("hang"), immediate=True)
    assert state(task) == "working"
    assert state(await served.get(task["id"])) == "working"
    canceled = await served.call(d.method("CancelTask", "tasks/cancel"), {"id": task["id"]})
    assert state(canceled) == "canceled"
    assert {"event": "canceled", "task_id": task["id"]} in served.entries("canceled")


async def test_an_input_required_task_is_canceled_too(served: Peer) -> None:
    d = served.dialect
    task = await served.send(d.message("ask2"))
    task = await served.send(d.message("Ada", task["id"]))
    assert said(task) == "What is your quest?"
    canceled = await served.call(d.method("CancelTask", "tasks/cancel"), {"id": task["id"]})
    assert state(canceled) == "canceled"
    assert {"event": "canceled", "task_id": task["id"]} in served.entries("canceled")


async def test_fail_is_failed_with_a_message(served: Peer) -> None:
    task = await served.send(served.dialect.message("fail"))
    assert state(task) == "failed" and said(task) == "failed on purpose"


async def test_the_sdk_pushes_with_our_token_and_its_certificate(served: Peer) -> None:
    certs, d = served.certs, served.dialect
    tls = server_context(certs / "hook.pem", certs / "hook-key.pem", [certs / "ca.pem"])
    async with receiving(tls) as hook:
        push = {"url": f"{hook.url}/hook", "token": "tok-7"}
        task = await served.send(d.message("ask"), push=push)
        await served.send(d.message("Ada", task["id"]))
        await hook.wait_for(
            lambda pushes: any(_pushed_state(d, p.body) == "completed" for p in pushes),
            "the completed task's push",
        )
    assert {p.caller for p in hook.accepted()} == {PEER}
    assert {p.headers["x-a2a-notification-token"] for p in hook.accepted()} == {"tok-7"}
    assert {p.path for p in hook.accepted()} == {"/hook"}
    pushed = [e for e in served.entries("push") if e["url"] == push["url"]]
    assert {e["status"] for e in pushed} == {200}
    assert "completed" in [_normal(e["state"]) for e in pushed]
    if d.v1:  # the SDK's quirk the matrix must cope with: the answer's turn
        # starts by re-publishing the task, still INPUT_REQUIRED
        kinds = [(next(iter(p.body)), _pushed_state(d, p.body)) for p in hook.accepted()]
        assert kinds[:4] == [
            ("task", "working"),
            ("statusUpdate", "input-required"),
            ("task", "input-required"),
            ("statusUpdate", "working"),
        ]


def _pushed_state(d: Dialect, body: dict[str, Any]) -> str | None:
    """The state a push carries: 1.0 posts a StreamResponse, 0.3 the task."""
    if d.v1:
        holder = body.get("task") or body.get("statusUpdate")
        return state(holder) if holder else None
    return state(body)


def _normal(raw: str | None) -> str | None:
    return None if raw is None else raw.removeprefix("TASK_STATE_").lower().replace("_", "-")
