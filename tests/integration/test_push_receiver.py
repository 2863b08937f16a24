"""``/a2a/push`` as a peer that pushes every event of its task uses it.

a2a-sdk 1.x pushes each event in turn, awaiting our answer to each: the
task (WORKING) before its ``SendMessage`` answer, then each artifact, then
a status update that settles the task but names only the task. These tests
drive the receiver (a real Starlette app, in process) against the
delegation rig's fake peer, at the exact moments that matter.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from support.delegation_rig import Rig, delegating, rig, until
from support.fake_peer import now

from agent_node.a2a.peers.push_receiver import PUSH_PATH, PushReceiver
from agent_node.a2a.peers.push_tokens import push_token

HANG = delegating("hang")
COMPLETED = "TASK_STATE_COMPLETED"


@asynccontextmanager
async def receiving(r: Rig) -> AsyncIterator[tuple[PushReceiver, httpx.AsyncClient]]:
    """The rig's push receiver, served in process, and a client to push with."""
    receiver = PushReceiver(r.runtime, r.watchdog.delegator, require_identity=False)
    app = Starlette(routes=[Route(PUSH_PATH, receiver.endpoint, methods=["POST"])])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://a.test") as pusher:
        try:
            yield receiver, pusher
        finally:
            await receiver.close()


async def push(pusher: httpx.AsyncClient, key: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"X-A2A-Notification-Token": push_token(b"s", key)}
    return await pusher.post(PUSH_PATH, json=body, headers=headers)


async def sent(r: Rig, execution_id: str) -> str:
    """Drive the send of ``execution_id``'s delegation; its key."""
    await r.drive()
    row = await r.row(execution_id)
    assert row is not None and row.state == "sent", row
    return row.key


def finish_at_peer(r: Rig, task_id: str, text: str) -> None:
    task = r.peer.tasks[task_id]
    task["status"] = {"state": COMPLETED, "timestamp": now()}
    task["artifacts"] = [{"artifactId": "a", "parts": [{"text": text}]}]


async def test_a_finished_artifact_brings_home_a_task_already_done(durable_url: str) -> None:
    """The push of a finished artifact has the task read at once: when the
    peer is done, the delegation settles before the status push comes."""
    async with rig(durable_url) as r, receiving(r) as (_, pusher):
        execution_id = await r.start(HANG)
        key = await sent(r, execution_id)
        finish_at_peer(r, "t1", "the whole answer")
        artifact = {"artifactId": "a", "parts": [{"text": "the whole answer"}]}
        update = {"taskId": "t1", "contextId": "c", "artifact": artifact, "lastChunk": True}
        answer = await push(pusher, key, {"artifactUpdate": update})
        assert answer.status_code == 200
        await until(lambda: _ended(r, execution_id), "the execution to end")
        record = await r.runtime.store.get(execution_id)
        assert record is not None and record.status == "completed"
        assert json.loads(record.state)["answer"]["text"] == "the whole answer"
        # The status push that follows is news of a settled delegation.
        status = {"taskId": "t1", "contextId": "c", "status": {"state": COMPLETED}}
        late = await push(pusher, key, {"statusUpdate": status})
        assert late.json() == {"ignored": "that delegation is settled"}


async def test_a_finished_artifact_before_the_send_s_answer_brings_the_task_home(
    durable_url: str,
) -> None:
    """a2a-sdk answers the send only once its first push is answered, so the
    next push (the artifact) can find the row still sending."""
    async with rig(durable_url) as r, receiving(r) as (_, pusher):
        execution_id = await r.start(HANG)
        row = await r.row(execution_id)
        assert row is not None and row.state == "sending"
        r.peer.tasks["t1"] = {"id": "t1", "contextId": "c"}
        finish_at_peer(r, "t1", "before the answer")
        artifact = {"artifactId": "a", "parts": [{"text": "before the answer"}]}
        update = {"taskId": "t1", "contextId": "c", "artifact": artifact, "lastChunk": True}
        assert (await push(pusher, row.key, {"artifactUpdate": update})).status_code == 200
        await until(lambda: _ended(r, execution_id), "the execution to end")
        record = await r.runtime.store.get(execution_id)
        assert record is not None and record.status == "completed"
        assert json.loads(record.state)["answer"]["text"] == "before the answer"


async def test_a_chunk_that_does_not_finish_its_artifact_reads_nothing(durable_url: str) -> None:
    async with rig(durable_url) as r, receiving(r) as (_, pusher):
        execution_id = await r.start(HANG)
        key = await sent(r, execution_id)
        reads: list[str] = []

        def record(body: dict[str, Any]) -> None:
            reads.append(body["method"])

        r.peer.answer = record
        artifact = {"artifactId": "a", "parts": [{"text": "half"}]}
        update = {"taskId": "t1", "contextId": "c", "artifact": artifact, "lastChunk": False}
        assert (await push(pusher, key, {"artifactUpdate": update})).status_code == 200
        await asyncio.sleep(0.05)
        assert reads == []


async def test_a_read_that_finds_the_task_working_settles_nothing(durable_url: str) -> None:
    """Read too early, the task still works: the status push reads it again."""
    async with rig(durable_url) as r, receiving(r) as (_, pusher):
        execution_id = await r.start(HANG)
        key = await sent(r, execution_id)
        artifact = {"artifactId": "a", "parts": [{"text": "early"}]}
        update = {"taskId": "t1", "contextId": "c", "artifact": artifact, "lastChunk": True}
        assert (await push(pusher, key, {"artifactUpdate": update})).status_code == 200
        await asyncio.sleep(0.05)
        row = await r.row(execution_id)
        assert row is not None and row.state == "sent"
        finish_at_peer(r, "t1", "done after all")
        status = {"taskId": "t1", "contextId": "c", "status": {"state": COMPLETED}}
        assert (await push(pusher, key, {"statusUpdate": status})).json() == {"ok": True}
        await until(lambda: _ended(r, execution_id), "the execution to end")
        record = await r.runtime.store.get(execution_id)
        assert record is not None and json.loads(record.state)["answer"]["text"] == "done after all"


async def test_a_settling_push_whose_task_cannot_be_read_settles_nothing(
    durable_url: str,
) -> None:
    """Settled with no artifacts would lose the peer's answer: the push is
    refused (503) and the watchdog's poll brings the task home."""
    async with rig(durable_url) as r, receiving(r) as (_, pusher):
        execution_id = await r.start(HANG)
        key = await sent(r, execution_id)
        finish_at_peer(r, "t1", "kept safe")
        r.peer.answer = lambda body: httpx.Response(502, text="<html>bad gateway</html>")
        status = {"taskId": "t1", "contextId": "c", "status": {"state": COMPLETED}}
        answer = await push(pusher, key, {"statusUpdate": status})
        assert answer.status_code == 503
        row = await r.row(execution_id)
        assert row is not None and row.state == "sent"
        r.peer.answer = None
        record = await r.finish(execution_id)
        assert record.status == "completed"
        assert json.loads(record.state)["answer"]["text"] == "kept safe"


async def test_a_push_while_sending_stands_in_for_a_lost_answer(durable_url: str) -> None:
    """The peer makes the task and pushes it, then the send's answer is lost:
    the push tells which task it is, so the send is not made again."""
    async with rig(durable_url) as r, receiving(r) as (_, pusher):
        delegator = r.watchdog.delegator
        key_of: dict[str, str] = {}

        async def lossy(request: httpx.Request) -> httpx.Response:
            answer = r.peer.handle(request)
            if request.method == "POST" and b'"SendMessage"' in request.content:
                task = answer.json()["result"]["task"]
                pushed = await push(pusher, key_of["key"], {"task": task})
                assert pushed.status_code == 200
                raise httpx.ReadError("connection reset", request=request)
            return answer

        delegator.client = httpx.AsyncClient(transport=httpx.MockTransport(lossy))
        try:
            execution_id = await r.runtime.start_execution(HANG, {})
            key_of["key"] = f"{execution_id}/hand/1"
            await until(lambda: _has_row(r, execution_id), "the delegation row")
            await r.drive()
            row = await r.row(execution_id)
            assert row is not None and row.state == "sent" and row.remote_task_id == "t1"
            assert r.peer.messages == ["hang"]  # sent once
            finish_at_peer(r, "t1", "one task only")
            record = await r.finish(execution_id)
        finally:
            await delegator.client.aclose()
        assert record.status == "completed"
        assert json.loads(record.state)["answer"]["text"] == "one task only"
        assert r.peer.messages == ["hang"]
        events = [e.kind for e in await r.runtime.store.events(execution_id)]
        assert events.count("delegation_sent") == 1


async def _ended(r: Rig, execution_id: str) -> bool:
    record = await r.runtime.store.get(execution_id)
    return record is not None and record.status in ("completed", "failed")


async def _has_row(r: Rig, execution_id: str) -> bool:
    return await r.row(execution_id) is not None


async def test_a_push_with_no_token_of_ours_is_logged_with_its_task_id_cut_short(
    durable_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone may push; the refusal's log line quotes the task id it names,
    which is as long as the pusher made it."""
    async with rig(durable_url) as r, receiving(r) as (_, pusher):
        status = {"taskId": "T" * 100_000, "contextId": "c", "status": {"state": COMPLETED}}
        with caplog.at_level(logging.WARNING):
            answer = await pusher.post(PUSH_PATH, json={"statusUpdate": status})
        assert answer.status_code == 403
    [line] = [r.getMessage() for r in caplog.records if "refused a push" in r.getMessage()]
    assert len(line) < 300, len(line)
