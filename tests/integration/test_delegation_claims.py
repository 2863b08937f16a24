"""A delegation row the watchdog had claimed when its process died is taken
up at once when the node starts again, as a dead worker's work leases are.

The watchdog claims a due row by moving its ``next_poll_at`` past any call
it makes (two minutes), so that no other watchdog takes it meanwhile. Found
by the chaos run (``tests/e2e/test_chaos.py``): a node SIGKILLed between
that claim and the send left the delegation untouched for the whole claim —
B's delegation to C was sent 120 s after it was recorded, and the task of A
above it took 121 s instead of about one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from support.delegation_rig import delegating, rig

from agent_node.engine import faults

HANG = delegating("hang")


async def test_a_row_claimed_by_a_watchdog_that_died_is_due_when_the_node_restarts(
    durable_url: str,
) -> None:
    async with rig(durable_url) as first:
        execution_id = await first.start(HANG)
        died: list[str] = []

        async def die(_point: str, row: Any) -> None:
            died.append(row.state)
            await first.runtime.engine.abandon()  # the process is gone: nothing more runs
            raise asyncio.CancelledError

        faults.on("watchdog_claimed", die)
        await first.drive()
        faults.on("watchdog_claimed", None)
        assert died == ["sending"] and first.peer.messages == []
        row = await first.row(execution_id)
        assert row is not None and row.next_poll_at > time.time() + 60  # claimed

        async with rig(durable_url) as again:  # the node starts again on its store
            again.runtime.workflows.add(HANG)  # as a node's skills are
            row = await again.row(execution_id)
            assert row is not None and row.next_poll_at <= time.time()
            await again.drive()
            assert len(again.peer.messages) == 1  # sent at once, not in two minutes
            row = await again.row(execution_id)
            assert row is not None and row.state == "sent"


async def test_a_live_watchdogs_claims_are_left_alone(durable_url: str) -> None:
    """Another process of the node (a replica) starting on the same store
    does not take the rows a running watchdog holds."""
    async with rig(durable_url) as first:
        execution_id = await first.start(HANG)
        held: list[float] = []

        async def hold(_point: str, row: Any) -> None:
            held.append(row.next_poll_at)
            async with rig(durable_url) as replica:
                row = await replica.row(execution_id)
                assert row is not None and row.next_poll_at == held[0]
                await replica.drive()
                assert replica.peer.messages == []

        faults.on("watchdog_claimed", hold)
        await first.drive()
        assert held and len(first.peer.messages) == 1


async def test_expiring_an_owners_leases_frees_the_rows_it_claimed(store_url: str) -> None:
    async with rig(store_url) as r:
        await r.start(HANG)
        store, now = r.runtime.store, time.time()
        (row,) = await store.claim_delegations(
            now=now, lease_until=now + 120, limit=5, owner="a:elsewhere:1:gone"
        )
        assert "a:elsewhere:1:gone" in await store.lease_owners()
        assert await store.claim_delegations(now=now, lease_until=now + 120, limit=5) == []
        assert await store.expire_leases(["a:elsewhere:2:alive"], now) == 0
        assert await store.expire_leases(["a:elsewhere:1:gone"], now) == 1
        assert "a:elsewhere:1:gone" not in await store.lease_owners()
        (again,) = await store.claim_delegations(now=now + 0.01, lease_until=now + 120, limit=5)
        assert (again.execution_id, again.polls) == (row.execution_id, row.polls + 1)
