"""A delegate node's visit is timed and counted like any other: from its
delegation's record to the peer's answer, in ``node_completed``'s
``duration`` and so in ``agent_node_node_duration_seconds`` (found by an
operator's walk: a delegate visit had no duration, and the histogram never
counted one)."""

from __future__ import annotations

import asyncio
import json

from prometheus_client.parser import text_string_to_metric_families
from support.delegation_rig import delegating, rig

from agent_node.telemetry.metrics import NodeMetrics

SLOW = delegating("hang")
#: How long the peer's task works before it completes (s).
WORKS = 0.3


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
    counted = {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "agent_node_node_duration_seconds_count"
    }
    assert counted[(("outcome", "completed"), ("type", "delegate"))] == 1, counted
