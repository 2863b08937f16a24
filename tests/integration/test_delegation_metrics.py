"""A delegate node's visit is timed and counted like any other: from its
delegation's record to the peer's answer, in ``node_completed``'s
``duration`` and so in ``agent_node_node_duration_seconds`` (found by an
operator's walk: a delegate visit had no duration, and the histogram never
counted one)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from support.delegation_rig import delegating, rig

from agent_node.telemetry.metrics import NodeMetrics

SLOW = delegating("hang")
#: How long the peer's task works before it completes (s).
WORKS = 0.3


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples named ``name`` of a scrape, by their sorted labels."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def test_a_delegate_visit_lasts_from_its_send_to_the_answer(store_url: str) -> None:
    async with rig(store_url) as s:
        metrics = NodeMetrics(s.runtime.store, s.runtime.workflows, "n")
        try:
            execution_id = await s.start(SLOW)
            await s.drive()
            row = await s.row(execution_id)
            assert row is not None and row.state == "sent"
            await asyncio.sleep(WORKS)
            (task,) = s.peer.tasks.values()
            task["status"] = {"state": "TASK_STATE_COMPLETED"}
            record = await s.finish(execution_id)
            assert record.status == "completed", record
            events = await s.runtime.store.events(execution_id)
            (done,) = [e for e in events if e.kind == "node_completed" and e.node == "hand"]
            took = json.loads(done.data or "{}")["duration"]
            assert WORKS <= took < WORKS + 5, took
            assert done.at - took >= row.sent_at - 0.001  # measured from the record
            text = (await metrics.scrape()).decode()
        finally:
            metrics.close()
    counted = samples(text, "agent_node_node_duration_seconds_count")
    assert counted[(("outcome", "completed"), ("type", "delegate"))] == 1, counted


async def test_a_delegation_that_timed_out_unsent_is_counted(store_url: str) -> None:
    """A delegation whose message never reached its peer before its timeout
    counts as ``unsent`` (a walk: 67 timed out unsent and counted nowhere,
    the counter holding only delegations the peer had taken), and says so."""

    def refuse(body: dict[str, Any]) -> httpx.Response | None:
        raise httpx.ConnectError("connection refused")

    async with rig(store_url) as s:
        metrics = NodeMetrics(s.runtime.store, s.runtime.workflows, "n")
        try:
            s.peer.answer = refuse
            execution_id = await s.start(delegating("hello", "timeout: 1s"))
            record = None
            for _ in range(100):
                record = await s.runtime.store.get(execution_id)
                if record is not None and record.status == "failed":
                    break
                await asyncio.sleep(0.05)
            assert record is not None and record.status == "failed", record
            assert "the peer never took the message" in (record.error or ""), record.error
            text = (await metrics.scrape()).decode()
        finally:
            metrics.close()
    counted = samples(text, "agent_node_delegations_total")
    assert counted == {(("outcome", "unsent"), ("peer", "p")): 1}, counted
