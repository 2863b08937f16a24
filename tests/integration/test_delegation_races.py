"""Races between our caller's answer and the watchdog, forced at exact places.

A delegation whose peer asks a question is answered by our caller while the
watchdog is at each interleave point of its own handling of the row (just
claimed it; polled the peer and is about to apply the stale answer; about to
reschedule; has relayed the answer but not recorded it). Whatever the
order, the answer reaches the peer exactly once, the caller is asked once,
and the execution completes — on every store.

The peer is a small in-memory A2A 1.0 JSON-RPC agent behind
``httpx.MockTransport`` (no network): the interleavings, not the wire, are
under test here; the wire is proven against real peers in ``tests/e2e``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from agent_node.a2a.delegator import PeerDelegator
from agent_node.a2a.discovery import Directory
from agent_node.a2a.watchdog import Watchdog, inform
from agent_node.config import PeerConfig
from agent_node.engine import faults
from agent_node.nodes.delegate import DelegateExecutor
from agent_node.runtime import Runtime
from agent_node.store.records import DelegationRecord
from agent_node.workflow.yaml_loader import load_yaml_text

ASK = load_yaml_text(
    """
workflow:
  id: ask
  version: "1"
  start: hand
  state_schema:
    type: object
    properties: {name: {type: string}, answer: {type: object}}
nodes:
  hand: {type: delegate, peer: p, text: "ask", output: answer, next: done}
  done: {type: end}
"""
)
PEER = "http://peer.test"


@dataclass
class FakePeer:
    """An A2A 1.0 agent that asks one question, then completes with the answer."""

    answers: list[str] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def card(self) -> dict[str, Any]:
        return {
            "name": "p",
            "description": "asks a question",
            "version": "1",
            "supportedInterfaces": [
                {"url": f"{PEER}/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
            ],
            "capabilities": {"streaming": False, "pushNotifications": False},
            "defaultInputModes": ["text/plain"],
            "defaultOutputModes": ["text/plain"],
            "skills": [{"id": "ask", "name": "ask", "description": "asks", "tags": ["ask"]}],
        }

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=self.card())
        body = json.loads(request.content)
        params = body["params"]
        if body["method"] == "GetTask":
            result: dict[str, Any] = self.tasks[params["id"]]
        elif body["method"] == "SendMessage" and params["message"].get("taskId"):
            task = self.tasks[params["message"]["taskId"]]
            self.answers.append(params["message"]["parts"][0]["text"])
            task["status"] = {"state": "TASK_STATE_COMPLETED", "timestamp": _now()}
            task["artifacts"] = [
                {"artifactId": "a", "parts": [{"text": "hello " + self.answers[-1]}]}
            ]
            result = {"task": task}
        elif body["method"] == "SendMessage":
            task_id = f"t{len(self.tasks) + 1}"
            question = {"messageId": "q1", "role": "ROLE_AGENT", "parts": [{"text": "Name?"}]}
            status = {
                "state": "TASK_STATE_INPUT_REQUIRED",
                "message": question,
                "timestamp": _now(),
            }
            self.tasks[task_id] = {"id": task_id, "contextId": "c", "status": status}
            result = {"task": self.tasks[task_id]}
        else:
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": 1, "result": {}})
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": result})


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z"


@dataclass
class Setup:
    runtime: Runtime
    watchdog: Watchdog
    peer: FakePeer


@pytest.fixture
async def setup(store_url: str) -> AsyncIterator[Setup]:
    peer = FakePeer()
    client = httpx.AsyncClient(transport=httpx.MockTransport(peer.handle))
    directory = Directory([PeerConfig(name="p", url=PEER)], client)
    delegator = PeerDelegator(directory, client, push_url=None, secret=b"s")
    runtime = Runtime(
        store_url, node="a", scope="all", executors={"delegate": DelegateExecutor(delegator)}
    )
    await runtime.start()
    watchdog = Watchdog(runtime, delegator)  # driven by hand: check_due + idle
    try:
        yield Setup(runtime, watchdog, peer)
    finally:
        faults.disarm()
        await watchdog.close()
        await runtime.close()
        await client.aclose()


async def _row(s: Setup, execution_id: str) -> DelegationRecord | None:
    rows = await s.runtime.store.delegations(execution_id)
    return rows[0] if rows else None


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    import asyncio

    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def _asked(s: Setup) -> str:
    """Start an execution and drive it until the peer's question is ours to answer."""
    execution_id = await s.runtime.start_execution(ASK, {})

    async def parked() -> bool:
        return await _row(s, execution_id) is not None

    await _until(parked, "the delegation row")
    await s.watchdog.check_due()
    await s.watchdog.idle()
    row = await _row(s, execution_id)
    assert row is not None and row.state == "asked"
    return execution_id


async def _due_now(s: Setup, execution_id: str) -> None:
    row = await _row(s, execution_id)
    assert row is not None
    assert await s.runtime.store.reschedule_delegation(row, 0.0)


async def _finish(s: Setup, execution_id: str) -> None:
    """Let the watchdog run whatever is due until the execution ends."""
    for _ in range(20):
        record = await s.runtime.store.get(execution_id)
        assert record is not None
        if record.status in ("completed", "failed"):
            return
        row = await _row(s, execution_id)
        if row is not None and row.next_poll_at > time.time():
            await s.runtime.store.reschedule_delegation(row, 0.0)
        await s.watchdog.check_due()
        await s.watchdog.idle()
        await s.runtime.engine.wait(execution_id) if row is None else None
    raise AssertionError("the execution did not end")


async def _check(s: Setup, execution_id: str) -> None:
    await _finish(s, execution_id)
    record = await s.runtime.store.get(execution_id)
    assert record is not None and record.status == "completed", record
    assert s.peer.answers == ["Ada"]  # relayed exactly once
    assert json.loads(record.state)["answer"]["text"] == "hello Ada"
    events = await s.runtime.store.events(execution_id)
    asked = [e for e in events if e.kind == "wait_started" and '"kind":"input"' in (e.data or "")]
    assert len(asked) == 1  # our caller was asked once
    assert await _row(s, execution_id) is None


@pytest.mark.parametrize("point", ["watchdog_claimed", "watchdog_polled", "watchdog_reschedule"])
async def test_an_answer_while_the_watchdog_polls_is_relayed_once(setup: Setup, point: str) -> None:
    s = setup
    execution_id = await _asked(s)
    answered: list[str] = []

    async def answer(_point: str, row: Any) -> None:
        if not answered and row.state == "asked":
            answered.append(_point)
            await s.runtime.engine.control.signal(execution_id, "input", "Ada")

    faults.on(point, answer)
    await _due_now(s, execution_id)  # the asked row's safety poll, now
    await s.watchdog.check_due()
    await s.watchdog.idle()
    assert answered == [point]
    await _check(s, execution_id)


async def test_stale_news_after_the_relay_does_not_ask_again(setup: Setup) -> None:
    """The answer was relayed, and before that is recorded the peer's old
    question arrives again (a late push, a crossing poll): ignored."""
    s = setup
    execution_id = await _asked(s)
    stale = dict(s.peer.tasks["t1"])  # still asking, as the peer was

    async def late_push(_point: str, row: Any) -> None:
        await inform(s.runtime, row, {"kind": "task", "task": stale, "via": "push"})

    faults.on("watchdog_relayed", late_push)
    await s.runtime.engine.control.signal(execution_id, "input", "Ada")
    await s.watchdog.check_due()
    await s.watchdog.idle()
    row = await _row(s, execution_id)
    assert row is None or row.state == "answered"
    await _check(s, execution_id)
