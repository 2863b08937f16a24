"""Canceling our task at any moment of its delegation ends with the peer's
task canceled, or never created: before the send, while it is in flight
(claimed; sent but its answer not recorded), after it, during a relay, and
when the send's answer was lost (the task is looked up by the contextId we
sent, never by sending again). On every store; the moments are forced with interleave
points (see :mod:`support.delegation_rig`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from support.delegation_rig import Rig, delegating, rig

from agent_node.a2a.peers.peer_health import PROBE_INTERVAL
from agent_node.engine import faults

HANG = delegating("hang")
ASK = delegating("ask")


@pytest.fixture
async def r(store_url: str) -> AsyncIterator[Rig]:
    async with rig(store_url) as made:
        yield made


async def _canceled(r: Rig, execution_id: str) -> None:
    """Drive until the row is gone; the execution is canceled, and so is
    every task the peer made."""
    await r.canceled(execution_id, rounds=10)
    assert sorted(r.peer.canceled) == sorted(r.peer.tasks)
    states = {t["status"]["state"] for t in r.peer.tasks.values()}
    assert states <= {"TASK_STATE_CANCELED"}


def _cancel_at(r: Rig, point: str, execution_id: str, state: str) -> list[str]:
    done: list[str] = []

    async def cancel(at: str, row: Any) -> None:
        if not done and row.state == state:
            done.append(at)
            await r.runtime.engine.control.cancel(execution_id)

    faults.on(point, cancel)
    return done


async def test_before_the_send_nothing_reaches_the_peer(r: Rig) -> None:
    execution_id = await r.start(HANG)
    await r.runtime.engine.control.cancel(execution_id)
    await _canceled(r, execution_id)
    assert r.peer.messages == []


@pytest.mark.parametrize("point", ["watchdog_claimed", "watchdog_sent"])
async def test_while_the_send_is_in_flight(r: Rig, point: str) -> None:
    execution_id = await r.start(HANG)
    done = _cancel_at(r, point, execution_id, "sending")
    await r.drive()
    assert done == [point]
    await _canceled(r, execution_id)
    assert list(r.peer.tasks) == ["t1"]


async def test_after_the_send(r: Rig) -> None:
    execution_id = await r.start(HANG)
    await r.drive()
    row = await r.row(execution_id)
    assert row is not None and (row.state, row.remote_task_id) == ("sent", "t1")
    await r.runtime.engine.control.cancel(execution_id)
    await _canceled(r, execution_id)


async def test_during_a_relay(r: Rig) -> None:
    execution_id = await r.start(ASK)
    await r.drive()
    done = _cancel_at(r, "watchdog_relayed", execution_id, "answered")
    await r.runtime.engine.control.signal(execution_id, "input", "Ada")
    await r.drive()
    assert done == ["watchdog_relayed"]
    # The peer completed with the answer before the cancel reached it: a
    # task that is over counts as canceled, nothing is left running.
    for _ in range(5):
        await r.due_now(execution_id)
        await r.drive()
    assert await r.row(execution_id) is None
    record = await r.runtime.store.get(execution_id)
    assert record is not None and record.status == "canceled"
    assert r.peer.canceled == ["t1"]


async def test_when_the_sends_answer_was_lost(r: Rig) -> None:
    """The peer made the task but its answer never came (503 after the fact):
    canceling finds the task by the contextId our message named
    (``ListTasks``), never by sending again, and cancels it."""
    lost: list[str] = []
    listed: list[str] = []

    def answer(body: dict[str, Any]) -> httpx.Response | None:
        if body["method"] == "SendMessage" and not lost:
            lost.append(r.peer._message(body["params"]["message"])["id"])
            return httpx.Response(503, text="<html>busy</html>")
        if body["method"] == "ListTasks":
            listed.append(body["params"]["contextId"])
        return None

    r.peer.answer = answer
    execution_id = await r.start(HANG)
    await r.drive()
    row = await r.row(execution_id)
    assert row is not None and (row.state, row.remote_task_id) == ("sending", "")
    assert row.last_error is not None and "HTTP 503" in row.last_error
    await r.runtime.engine.control.cancel(execution_id)
    await _canceled(r, execution_id)
    assert lost == ["t1"] and list(r.peer.tasks) == ["t1"]
    assert r.peer.messages == ["hang"]  # sent once: the cancel sent nothing
    assert listed == [r.peer.tasks["t1"]["contextId"]]


async def test_a_send_that_never_reached_the_peer_is_not_sent_by_its_cancel(r: Rig) -> None:
    """The send failed before the peer had it (a walk: the cancel sent it for
    the first time, after the delegation had timed out, and the peer ran
    it): the cancel looks, finds no task, and sends nothing."""

    def answer(body: dict[str, Any]) -> httpx.Response | None:
        if body["method"] == "SendMessage":
            raise httpx.ConnectError("connection refused")
        return None

    r.peer.answer = answer
    execution_id = await r.start(HANG)
    await r.drive()
    row = await r.row(execution_id)
    assert row is not None and row.state == "sending"
    r.peer.answer = None  # the peer is back when the cancel comes
    await asyncio.sleep(PROBE_INTERVAL)  # and is probed again
    await r.runtime.engine.control.cancel(execution_id)
    await _canceled(r, execution_id)
    assert r.peer.messages == [] and r.peer.tasks == {}


async def test_a_cancel_outlasts_a_partition(r: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """The peer is out of reach when our task is canceled: the cancel is
    tried again for minutes, not ten tries (a walk: given up after 2.5 min,
    and the peer finished work we had reported canceled); the row shows it
    meanwhile, and the peer's task is canceled once it answers. The peer
    going down and coming back are one WARNING each, not one a try."""
    caplog.set_level(logging.WARNING, logger="agent_node.a2a.peers.watchdog")
    execution_id = await r.start(HANG)
    await r.drive()

    def refuse(body: dict[str, Any]) -> httpx.Response | None:
        raise httpx.ConnectError("connection refused")

    r.peer.answer = refuse
    await r.runtime.engine.control.cancel(execution_id)
    for _ in range(14):
        await r.due_now(execution_id)
        await r.drive()
    row = await r.row(execution_id)
    assert row is not None and row.state == "canceling" and row.polls >= 12
    assert row.last_error is not None and "unreachable" in row.last_error
    r.peer.answer = None
    await asyncio.sleep(PROBE_INTERVAL)
    await _canceled(r, execution_id)
    said = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert [m.split(":")[0] for m in said] == ["peer 'p' is down", "peer 'p' is back"], said
    assert "ConnectError: connection refused" in said[0]
