"""A peer that asks for authorization: its AUTH_REQUIRED bubbles up like a question.

Our visit parks as a wait of kind ``auth`` with the peer's prompt (our task
is AUTH_REQUIRED to our caller), our caller's answer is relayed down to the
peer's task once, and the execution completes with the peer's result —
unless the node routes the request itself (``on_auth_required``). Before,
a peer's AUTH_REQUIRED failed the delegation.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from support.delegation_rig import Rig, delegating, rig

from agent_node.a2a.protocol.models import TaskState
from agent_node.a2a.server.taskview import render_task
from agent_node.results import to_event


@pytest.fixture
async def r(store_url: str) -> AsyncIterator[Rig]:
    async with rig(store_url) as made:
        yield made


async def test_the_peers_request_is_asked_of_our_caller_and_the_answer_relayed(r: Rig) -> None:
    execution_id = await r.start(delegating("login"))
    await r.drive()
    row = await r.row(execution_id)
    assert row is not None and row.state == "asked"
    (wait,) = await r.runtime.store.waits(execution_id)
    assert wait.kind == "auth"
    record = await r.runtime.store.get(execution_id)
    assert record is not None and record.status == "waiting"
    events = [to_event(e) for e in await r.runtime.store.events(execution_id)]
    task = render_task(record, events, [wait])
    assert task.status.state == TaskState.AUTH_REQUIRED
    assert task.status.message is not None and task.status.message.parts[0].text == "Sign in"

    await r.runtime.engine.control.signal(execution_id, "input", "tok-42")
    done = await r.finish(execution_id)
    assert done.status == "completed", done
    assert r.peer.answers == ["tok-42"]  # relayed exactly once
    assert json.loads(done.state)["answer"]["text"] == "hello tok-42"
    parked = [e for e in await r.runtime.store.events(execution_id) if e.kind == "wait_started"]
    # On the peer, asking our caller (once), on the peer again with the answer.
    assert [json.loads(e.data or "{}")["kind"] for e in parked] == [
        "delegation",
        "auth",
        "delegation",
    ]


async def test_on_input_required_alone_does_not_catch_it(r: Rig) -> None:
    workflow = delegating("login", "on_input_required: failed")
    execution_id = await r.start(workflow)
    await r.drive()
    (wait,) = await r.runtime.store.waits(execution_id)
    assert wait.kind == "auth"


async def test_on_auth_required_routes_the_request(r: Rig) -> None:
    execution_id = await r.start(delegating("login", "on_auth_required: failed"))
    done = await r.finish(execution_id)
    assert done.status == "completed"
    answer = json.loads(done.state)["answer"]
    assert (answer["state"], answer["message"]) == ("TASK_STATE_AUTH_REQUIRED", "Sign in")
    assert r.peer.answers == []
