"""While the watchdog tries a delegation (a send, a poll, a cancel under
way), its row says so and since when (``claimed_at``): the operator API's
view shows the try in flight, with no next try, and ``agent-node inspect``
says ``a try in flight since …`` (before: both showed the claim's expiry as
the next try, two minutes ahead, while the try was running). Whatever ends
the try clears it: a reschedule, news applied to the row, a lease freed.
On every store; the try is held at a fault point."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from support.delegation_rig import Rig, delegating, rig

from agent_node.a2a.server.ops_views import execution_view
from agent_node.cli.main import cli
from agent_node.cli.render import describe_delegation
from agent_node.engine import faults
from agent_node.store.records import DelegationRecord


@pytest.fixture
async def r(store_url: str) -> AsyncIterator[Rig]:
    async with rig(store_url) as made:
        yield made


async def _live(r: Rig, execution_id: str) -> dict[str, Any]:
    record = await r.runtime.store.get(execution_id)
    assert record is not None
    (delegation,) = (await execution_view(r.runtime, record))["delegations"]
    live: dict[str, Any] = delegation["live"]
    return live


def _inspected(store_url: str, execution_id: str) -> str:
    """``agent-node inspect``'s delegation line."""
    result = CliRunner().invoke(
        cli, ["inspect", execution_id, "--store", store_url], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("delegation")]
    return line


async def test_a_try_in_flight_is_shown_as_such_until_it_ends(r: Rig, store_url: str) -> None:
    def unreachable(body: dict[str, Any]) -> httpx.Response | None:
        raise httpx.ConnectError("connection refused")

    r.peer.answer = unreachable
    execution_id = await r.start(delegating("hello"))
    seen: dict[str, Any] = {}

    async def look(point: str, claimed: DelegationRecord) -> None:
        stored = await r.runtime.store.delegation(execution_id, "hand", 1)
        assert stored is not None
        seen["row"], seen["live"] = stored, await _live(r, execution_id)
        if not store_url.startswith("memory"):
            seen["inspect"] = await asyncio.to_thread(_inspected, store_url, execution_id)

    faults.on("watchdog_claimed", look)
    began = time.time()
    await r.drive()  # claimed, looked at, then the send fails: backed off
    faults.disarm()
    assert seen["live"]["next_poll_at"] is None  # the row's is the claim's expiry
    if "inspect" in seen:
        assert "node 'hand' to p: sending, attempt 1; a try in flight since " in seen["inspect"]
        assert "next try" not in seen["inspect"]
    row: DelegationRecord = seen["row"]
    assert row.claimed_at is not None and began <= row.claimed_at <= time.time()
    assert row.next_poll_at > row.claimed_at + 60
    assert seen["live"]["claimed_at"] == row.claimed_at
    said = describe_delegation(row, row.claimed_at + 35)
    assert said.endswith(" (35 s)") and "sending, attempt 1; a try in flight since " in said

    after = await r.row(execution_id)  # the try ended: backed off ~1 s
    assert after is not None and after.claimed_at is None and after.last_error
    assert after.next_poll_at < time.time() + 5
    live = await _live(r, execution_id)
    assert (live["claimed_at"], live["next_poll_at"]) == (None, after.next_poll_at)
    assert "; next try " in describe_delegation(after, time.time())


async def test_news_applied_and_a_freed_lease_end_the_try(r: Rig) -> None:
    execution_id = await r.start(delegating("hang"))
    await r.drive()  # sent: the peer's answer applied to the row
    sent = await r.row(execution_id)
    assert sent is not None and (sent.state, sent.claimed_at) == ("sent", None)
    await r.due_now(execution_id)
    now = time.time()
    (claimed,) = await r.runtime.store.claim_delegations(
        now=now, lease_until=now + 120, limit=1, owner="dead-watchdog"
    )
    assert claimed.claimed_at == now
    stored = await r.row(execution_id)
    assert stored is not None and stored.claimed_at == now
    await r.runtime.store.expire_leases(["dead-watchdog"], time.time())
    freed = await r.row(execution_id)
    assert freed is not None and freed.claimed_at is None and freed.next_poll_at <= time.time()
