"""Driving a foreign peer server through the scenario contract, over plain JSON-RPC.

``test_js_peers.py`` and ``test_sdk_peers.py`` check that each foreign
server (``@a2a-js/sdk`` and a2a-sdk, 1.x and 0.3.x) serves the contract of
:mod:`e2e.foreign` before the matrix relies on it. A server runs as a real
process over mutual TLS (:func:`running`); httpx speaks JSON-RPC to it, no
SDK on this side, in the :class:`Dialect` of its generation. Each entry of
:data:`SCENARIOS` drives one scenario and checks the answers and the log.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.procs import Child, child_env, wait_until
from support.certs import make_certs
from support.ports import free_port
from support.tls import caller_context
from support.webhook import Push, receiving

from agent_node.security.tls import server_context

#: The identity the peer's certificate (``f``) carries.
PEER = "spiffe://example.org/agent/f"
#: The fields of each log entry the contract documents (``e2e.foreign``).
LOGGED = {
    "request": ("event", "method", "task_id", "message_id", "idempotency_key", "text"),
    "task_created": ("event", "task_id", "message_id"),
    "canceled": ("event", "task_id"),
    "push": ("event", "url", "status", "state"),
}
#: ``js_peer`` / ``python_peer``: (generation, *, port, certs, name, log, push, streaming).
Launcher = Callable[..., tuple[list[str], dict[str, str]]]


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

    def pushed_state(self, body: dict[str, Any]) -> str | None:
        """The state a push carries: 1.0 posts a StreamResponse, 0.3 the task."""
        if self.v1:
            holder = body.get("task") or body.get("statusUpdate")
            return state(holder) if holder else None
        return state(body)

    def artifact_update(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """A streamed event's artifact update, if it is one."""
        if self.v1:
            update: dict[str, Any] | None = event.get("artifactUpdate")
            return update
        return event if event.get("kind") == "artifact-update" else None


def state(task: dict[str, Any]) -> str:
    """A task's state in 0.3 spelling ("input-required"), whichever generation."""
    return normal(str(task["status"]["state"]))


def normal(raw: str) -> str:
    return raw.removeprefix("TASK_STATE_").lower().replace("_", "-")


def said(task: dict[str, Any]) -> str:
    parts = (task["status"].get("message") or {}).get("parts", [])
    return " ".join(p.get("text", "") for p in parts)


def artifact_text(task: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for a in task.get("artifacts", []) for p in a["parts"])


@dataclass
class Peer:
    """A running foreign peer server (``f``), and how to speak to it as ``alice``."""

    url: str
    certs: Path
    log: Path
    child: Child
    dialect: Dialect

    def entries(self, event: str) -> list[dict[str, Any]]:
        """The log's ``event`` entries, as far as the contract documents them
        (a server may log more: a time, a push's headers and body)."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        fields = LOGGED[event]
        return [{k: e[k] for k in fields} for e in map(json.loads, lines) if e["event"] == event]

    def client(self, name: str | None = "alice") -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=caller_context(self.certs, name), timeout=30)

    async def call(self, method: str, params: dict[str, Any], **headers: str) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        async with self.client() as http:
            answer = await http.post(self.url, json=body, headers=self.dialect.headers | headers)
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

    async def cancel(self, task_id: str) -> dict[str, Any]:
        d = self.dialect
        task: dict[str, Any] = await self.call(
            d.method("CancelTask", "tasks/cancel"), {"id": task_id}
        )
        return task

    async def stream(self, method: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The results of a streaming call, once its stream has ended."""
        body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
        events: list[dict[str, Any]] = []
        async with (
            self.client() as http,
            http.stream("POST", self.url, json=body, headers=self.dialect.headers) as answer,
        ):
            assert answer.headers["content-type"].startswith("text/event-stream")
            async for line in answer.aiter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line.removeprefix("data:"))["result"])
        return events

    async def settled(self, task_id: str, want: str) -> dict[str, Any]:
        found: dict[str, Any] = {}

        async def there() -> bool:
            found.update(await self.get(task_id))
            return state(found) == want

        await wait_until(there, f"task {task_id} to be {want}", timeout=20, interval=0.05)
        return found

    async def card(self) -> dict[str, Any]:
        async with self.client() as http:
            answer = await http.get(f"{self.url}.well-known/agent-card.json", timeout=5)
        answer.raise_for_status()
        card: dict[str, Any] = answer.json()
        return card

    async def serving(self) -> None:
        """Wait until the server answers for its card (it is starting, or running)."""

        async def answers() -> bool:
            try:
                await self.card()
            except httpx.HTTPError:
                return False
            return True

        await wait_until(answers, "the peer to serve its card", timeout=60, alive=[self.child])


@contextmanager
def running(launcher: Launcher, generation: str, folder: Path) -> Iterator[Peer]:
    """The ``generation`` server of ``launcher`` as ``f``, pushing and streaming,
    with the certificates of ``f``, ``alice`` (our caller) and ``hook`` (our webhook)."""
    certs = make_certs(folder / "certs", "f", "alice", "hook")
    port, log = free_port(), folder / "peer.jsonl"
    argv, env = launcher(
        generation, port=port, certs=certs, name="f", log=log, push=True, streaming=True
    )
    child = Child("peer", argv, {**child_env(folder, 0.0), **env}, folder)
    try:
        yield Peer(f"https://127.0.0.1:{port}/", certs, log, child, Dialect(generation))
    finally:
        child.reap()


def fixtures(launcher: Launcher, kind: str) -> tuple[Any, Any]:
    """The ``peer`` fixture (one server per generation and module, named
    ``<kind>-1`` and ``<kind>-0.3``) and the ``served`` fixture (that server,
    once it answers, checked still running after the test)."""

    @pytest.fixture(scope="module", params=["1", "0.3"], ids=[f"{kind}-1", f"{kind}-0.3"])
    def peer(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Peer]:
        generation = str(request.param)
        with running(launcher, generation, tmp_path_factory.mktemp(f"{kind}-{generation}")) as f:
            yield f

    @pytest.fixture
    async def served(peer: Peer) -> AsyncIterator[Peer]:
        await peer.serving()
        yield peer
        assert peer.child.proc.poll() is None, peer.child.describe()

    return peer, served


# -- the scenarios -----------------------------------------------------------------------


async def card_declares_the_interface_and_capabilities(peer: Peer) -> None:
    card = await peer.card()
    assert card["capabilities"]["streaming"] and card["capabilities"]["pushNotifications"]
    if peer.dialect.v1:
        (interface,) = card["supportedInterfaces"]
        assert (interface["url"], interface["protocolVersion"]) == (peer.url, "1.0")
    else:
        assert (card["url"], card["protocolVersion"]) == (peer.url, "0.3.0")


async def without_a_client_certificate_the_peer_refuses(peer: Peer) -> None:
    # TLS 1.3: the refusal ("certificate required" alert) comes after the
    # handshake; the ssl module raises it bare or httpx wraps it, by timing.
    with pytest.raises((ssl.SSLError, httpx.TransportError)) as refused:
        async with peer.client(None) as anonymous:
            await anonymous.get(f"{peer.url}.well-known/agent-card.json")
    assert "CERTIFICATE_REQUIRED" in repr(refused.value) or isinstance(
        refused.value, httpx.RemoteProtocolError | httpx.ReadError
    ), refused.value


async def complete_is_completed_during_the_send(peer: Peer) -> None:
    message = peer.dialect.message("complete the job")
    task = await peer.send(message)
    assert state(task) == "completed"
    (artifact,) = task["artifacts"]
    assert artifact["name"] == "result" and artifact_text(task) == "done: complete the job"
    requests = [e for e in peer.entries("request") if e["task_id"] == task["id"]]
    assert requests == [
        {
            "event": "request",
            "method": peer.dialect.method("SendMessage", "message/send"),
            "task_id": task["id"],
            "message_id": message["messageId"],
            "idempotency_key": None,
            "text": "complete the job",
        }
    ]
    created = [e for e in peer.entries("task_created") if e["task_id"] == task["id"]]
    assert created == [
        {"event": "task_created", "task_id": task["id"], "message_id": message["messageId"]}
    ]


async def the_idempotency_key_header_is_logged(peer: Peer) -> None:
    d = peer.dialect
    params = {"message": d.message("complete keyed")}
    result = await peer.call(
        d.method("SendMessage", "message/send"), params, **{"Idempotency-Key": "k-42"}
    )
    task_id = d.task_of(result)["id"]
    (request,) = [e for e in peer.entries("request") if e["task_id"] == task_id]
    assert request["idempotency_key"] == "k-42"


async def slow_is_working_at_once_then_completed(peer: Peer) -> None:
    task = await peer.send(peer.dialect.message("slow 300"), immediate=True)
    assert state(task) == "working"
    done = await peer.settled(task["id"], "completed")
    assert artifact_text(done) == "done: slow 300"


async def _questions(peer: Peer, word: str) -> None:
    d = peer.dialect
    task = await peer.send(d.message(word))
    answers = ["Ada", "the grail"][: 1 if word == "ask" else 2]
    questions = ["What is your name?", "What is your quest?"]
    for question, answer in zip(questions, answers, strict=False):
        assert state(task) == "input-required" and said(task) == question
        assert task["status"]["message"]["messageId"]
        task = await peer.send(d.message(answer, task["id"]))
    assert state(task) == "completed"
    assert artifact_text(task) == "hello " + " / ".join(answers)
    requests = [e["text"] for e in peer.entries("request") if e["task_id"] == task["id"]]
    assert requests == [word, *answers]


async def ask_is_answered_by_a_follow_up(peer: Peer) -> None:
    await _questions(peer, "ask")


async def ask2_is_answered_by_two_follow_ups(peer: Peer) -> None:
    await _questions(peer, "ask2")


async def stream_sends_three_chunks_over_sse(peer: Peer) -> None:
    d = peer.dialect
    method = d.method("SendStreamingMessage", "message/stream")
    events = await peer.stream(method, {"message": d.message("stream")})
    chunks = [update for e in events if (update := d.artifact_update(e)) is not None]
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


async def a_subscription_follows_the_stream_to_its_end(peer: Peer) -> None:
    """What the matrix's ``sse`` path does: send, subscribe, read the task
    once over: its artifact holds each chunk once."""
    d = peer.dialect
    task = await peer.send(d.message("stream"), immediate=True)
    method = d.method("SubscribeToTask", "tasks/resubscribe")
    events = await peer.stream(method, {"id": task["id"]})
    last = events[-1]["statusUpdate"] if d.v1 else events[-1]
    assert state(last) == "completed"
    done = await peer.settled(task["id"], "completed")
    assert artifact_text(done) == "chunk-1 chunk-2 chunk-3"


async def hang_works_until_canceled(peer: Peer) -> None:
    task = await peer.send(peer.dialect.message("hang"), immediate=True)
    assert state(task) == "working"
    assert state(await peer.get(task["id"])) == "working"
    assert state(await peer.cancel(task["id"])) == "canceled"
    assert {"event": "canceled", "task_id": task["id"]} in peer.entries("canceled")


async def an_input_required_task_is_canceled_too(peer: Peer) -> None:
    d = peer.dialect
    task = await peer.send(d.message("ask2"))
    task = await peer.send(d.message("Ada", task["id"]))
    assert said(task) == "What is your quest?"
    assert state(await peer.cancel(task["id"])) == "canceled"
    assert {"event": "canceled", "task_id": task["id"]} in peer.entries("canceled")


async def fail_is_failed_with_a_message(peer: Peer) -> None:
    task = await peer.send(peer.dialect.message("fail"))
    assert state(task) == "failed" and said(task) == "failed on purpose"


async def pushes_of_an_answered_question(peer: Peer) -> list[Push]:
    """``ask`` answered, its pushes received on our mutual-TLS webhook: each
    with our token and the peer's certificate, logged by the peer; the pushes."""
    certs, d = peer.certs, peer.dialect
    tls = server_context(certs / "hook.pem", certs / "hook-key.pem", [certs / "ca.pem"])
    async with receiving(tls) as hook:
        push = {"url": f"{hook.url}/hook", "token": "tok-7"}
        task = await peer.send(d.message("ask"), push=push)
        await peer.send(d.message("Ada", task["id"]))
        await hook.wait_for(
            lambda pushes: any(d.pushed_state(p.body) == "completed" for p in pushes),
            "the completed task's push",
        )
    assert {p.caller for p in hook.accepted()} == {PEER}
    assert {p.headers["x-a2a-notification-token"] for p in hook.accepted()} == {"tok-7"}
    assert {p.path for p in hook.accepted()} == {"/hook"}

    def logged() -> bool:  # a push is logged once its answer is in
        return "completed" in [normal(e["state"] or "") for e in peer.entries("push")]

    await wait_until(logged, "the peer to log the completed push", timeout=10)
    pushed = [e for e in peer.entries("push") if e["url"] == push["url"]]
    assert {e["status"] for e in pushed} == {200}
    return hook.accepted()


async def the_sdk_pushes_with_our_token_and_its_certificate(peer: Peer) -> None:
    await pushes_of_an_answered_question(peer)


#: Every scenario, by name: what both test modules run against each server.
SCENARIOS: dict[str, Callable[[Peer], Awaitable[None]]] = {
    f.__name__: f
    for f in (
        card_declares_the_interface_and_capabilities,
        without_a_client_certificate_the_peer_refuses,
        complete_is_completed_during_the_send,
        the_idempotency_key_header_is_logged,
        slow_is_working_at_once_then_completed,
        ask_is_answered_by_a_follow_up,
        ask2_is_answered_by_two_follow_ups,
        stream_sends_three_chunks_over_sse,
        a_subscription_follows_the_stream_to_its_end,
        hang_works_until_canceled,
        an_input_required_task_is_canceled_too,
        fail_is_failed_with_a_message,
        the_sdk_pushes_with_our_token_and_its_certificate,
    )
}
