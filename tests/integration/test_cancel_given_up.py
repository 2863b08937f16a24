"""A cancel of a peer's task that is given up — tried for about ten minutes
against a peer out of reach, or refused — is said where an operator looks:
the execution's log holds ``delegation_cancel_given_up`` (what was tried,
how often, the last error), the operator API's delegation view shows it,
and so does ``agent-node inspect``: the peer's task may still be running
(before: a WARNING line in the node's log was all, and the row was gone).
On every store; the watchdog is driven by hand (:mod:`support.delegation_rig`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from support.delegation_rig import Rig, delegating, rig

from agent_node.a2a.server.ops_views import execution_view
from agent_node.cli.main import cli

HANG = delegating("hang")


@pytest.fixture
async def r(store_url: str) -> AsyncIterator[Rig]:
    async with rig(store_url) as made:
        yield made


async def _given_up(r: Rig, execution_id: str) -> dict[str, Any]:
    """Drive the cancel until its row is gone; the delegation's view."""
    record = await r.canceled(execution_id)
    (delegation,) = (await execution_view(r.runtime, record))["delegations"]
    assert isinstance(delegation, dict)
    return delegation


def _inspected(store_url: str, execution_id: str) -> list[str]:
    """``agent-node inspect``'s delegation lines."""
    result = CliRunner().invoke(
        cli, ["inspect", execution_id, "--store", store_url], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 0, result.output
    return [line for line in result.output.splitlines() if line.startswith("delegation")]


async def test_a_cancel_out_of_reach_for_ten_minutes_is_said_given_up(
    r: Rig, store_url: str
) -> None:
    execution_id = await r.start(HANG)
    await r.drive()  # the peer has task t1

    def refuse(body: dict[str, Any]) -> httpx.Response | None:
        raise httpx.ConnectError("connection refused")

    r.peer.answer = refuse
    await r.runtime.engine.control.cancel(execution_id)
    delegation = await _given_up(r, execution_id)
    assert r.peer.canceled == [] and list(r.peer.tasks) == ["t1"]  # t1 still runs
    given_up = delegation["cancel_given_up"]
    assert given_up is not None and delegation["task_id"] == "t1"
    assert (given_up["tried"], given_up["refused"]) == ("CancelTask", False)
    assert given_up["tries"] >= 15  # 1, 2, 4 … 60 s apart: about ten minutes
    assert "peer 'p'" in given_up["error"]
    events = await r.runtime.store.events(execution_id)
    assert events[-1].kind == "delegation_cancel_given_up"
    assert (events[-1].node, events[-1].visit) == ("hand", 1)
    if not store_url.startswith("memory"):
        (line,) = await asyncio.to_thread(_inspected, store_url, execution_id)
        tries = given_up["tries"]
        assert f"node 'hand' to p: gave up canceling its task t1, after {tries} tries" in line
        assert "it may still be running; last error: peer 'p'" in line


async def test_a_cancel_the_peer_refuses_is_given_up_at_once(r: Rig, store_url: str) -> None:
    execution_id = await r.start(HANG)
    await r.drive()

    def unsupported(body: dict[str, Any]) -> httpx.Response | None:
        if body["method"] != "CancelTask":
            return None
        error = {"code": -32004, "message": "this agent does not cancel"}
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "error": error})

    r.peer.answer = unsupported
    await r.runtime.engine.control.cancel(execution_id)
    delegation = await _given_up(r, execution_id)
    given_up = delegation["cancel_given_up"]
    assert (given_up["tried"], given_up["tries"], given_up["refused"]) == ("CancelTask", 1, True)
    assert "this agent does not cancel" in given_up["error"]
    if not store_url.startswith("memory"):
        (line,) = await asyncio.to_thread(_inspected, store_url, execution_id)
        assert "gave up canceling its task t1, refused" in line


async def test_a_cancel_that_reaches_the_peer_gives_up_nothing(r: Rig) -> None:
    execution_id = await r.start(HANG)
    await r.drive()
    await r.runtime.engine.control.cancel(execution_id)
    delegation = await _given_up(r, execution_id)
    assert delegation["cancel_given_up"] is None and r.peer.canceled == ["t1"]
    kinds = [e.kind for e in await r.runtime.store.events(execution_id)]
    assert "delegation_cancel_given_up" not in kinds
