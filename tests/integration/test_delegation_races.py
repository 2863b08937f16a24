"""Races between our caller's answer and the watchdog, forced at exact places.

A delegation whose peer asks a question is answered by our caller while the
watchdog is at each interleave point of its own handling of the row (just
claimed it; polled the peer and is about to apply the stale answer; about to
reschedule; has relayed the answer but not recorded it). Whatever the
order, the answer reaches the peer exactly once, the caller is asked once,
and the execution completes — on every store.

The peer is :class:`support.fake_peer.FakePeer` (no network): the
interleavings, not the wire, are under test here; the wire is proven
against real peers in ``tests/e2e``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.delegation_rig import Rig, delegating, rig

from agent_node.a2a.peers.news import inform
from agent_node.engine import faults

ASK = delegating("ask")


@pytest.fixture
async def setup(store_url: str) -> AsyncIterator[Rig]:
    async with rig(store_url) as r:
        yield r


async def _asked(s: Rig) -> str:
    """Start an execution and drive it until the peer's question is ours to answer."""
    execution_id = await s.start(ASK)
    await s.drive()
    row = await s.row(execution_id)
    assert row is not None and row.state == "asked"
    return execution_id


async def _check(s: Rig, execution_id: str) -> None:
    record = await s.finish(execution_id)
    assert record.status == "completed", record
    assert s.peer.answers == ["Ada"]  # relayed exactly once
    assert json.loads(record.state)["answer"]["text"] == "hello Ada"
    events = await s.runtime.store.events(execution_id)
    asked = [e for e in events if e.kind == "wait_started" and '"kind":"input"' in (e.data or "")]
    assert len(asked) == 1  # our caller was asked once
    assert await s.row(execution_id) is None


@pytest.mark.parametrize("point", ["watchdog_claimed", "watchdog_polled", "watchdog_reschedule"])
async def test_an_answer_while_the_watchdog_polls_is_relayed_once(setup: Rig, point: str) -> None:
    s = setup
    execution_id = await _asked(s)
    answered: list[str] = []

    async def answer(at: str, row: Any) -> None:
        if not answered and row.state == "asked":
            answered.append(at)
            await s.runtime.engine.control.signal(execution_id, "input", "Ada")

    faults.on(point, answer)
    await s.due_now(execution_id)  # the asked row's safety poll, now
    await s.drive()
    assert answered == [point]
    await _check(s, execution_id)


async def test_stale_news_after_the_relay_does_not_ask_again(setup: Rig) -> None:
    """The answer was relayed, and before that is recorded the peer's old
    question arrives again (a late push, a crossing poll): ignored."""
    s = setup
    execution_id = await _asked(s)
    stale = dict(s.peer.tasks["t1"])  # still asking, as the peer was

    async def late_push(_at: str, row: Any) -> None:
        await inform(s.runtime, row, {"kind": "task", "task": stale, "via": "push"})

    faults.on("watchdog_relayed", late_push)
    await s.runtime.engine.control.signal(execution_id, "input", "Ada")
    await s.drive()
    row = await s.row(execution_id)
    assert row is None or row.state == "answered"
    await _check(s, execution_id)
