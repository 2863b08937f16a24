"""Commit observers (metrics, traces) hear what each commit wrote, on every
store: after the commit, in order, a few commits at a time, and nothing from
a transaction that failed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from agent_node.errors import Fenced
from agent_node.store import Store, Txn
from agent_node.store.base import Commit
from agent_node.store.memory import MemoryStore
from agent_node.store.notify import HELD, HOLD
from agent_node.store.records import ExecutionRecord, WorkItem
from agent_node.store.txn import Fence


def _record(execution_id: str) -> ExecutionRecord:
    now = time.time()
    return ExecutionRecord(
        execution_id, "wf", "1", None, "pending", "{}", "", 0, None, None, None, now, now
    )


async def test_observers_hear_each_commit_with_its_events(store: Store) -> None:
    heard: list[tuple[str, str, list[str]]] = []

    def observer(commits: Sequence[Commit]) -> None:
        for execution, events in commits:
            heard.append((execution.id, execution.status, [e.kind for e in events]))

    stop = store.observe(observer)

    def start(txn: Txn) -> None:
        txn.event("execution_started", data='{"input":{}}')
        txn.put_work(WorkItem("obs-1", "a", 1, 0, 0.0, None, None, 0))

    await store.create(_record("obs-1"), start)

    def claimed(txn: Txn, items: object) -> None:
        txn.event("node_started", "a", 1, 1)
        txn.execution.status = "running"

    now = time.time()
    claims = await store.claim("w", now=now, lease_until=now + 30, limit=5, plan=claimed)
    assert [c.work.node for c in claims] == ["a"]

    def bad(txn: Txn) -> None:
        txn.event("node_completed", "a", 1)

    with pytest.raises(Fenced):  # a zombie's write: nothing committed, nothing heard
        await store.apply("obs-1", bad, fence=Fence("a", 1, 99, "w"))

    def done(txn: Txn) -> None:
        txn.event("node_completed", "a", 1, data='{"duration":0.5}')
        txn.event("execution_completed", data="{}")
        txn.delete_work("a", 1)
        txn.execution.status = "completed"

    item = claims[0].work
    await store.apply("obs-1", done, fence=Fence("a", 1, item.fence, "w"))
    assert heard == []  # held a moment
    stop()  # it hears what was committed before it stopped
    await store.apply("obs-1", lambda txn: txn.event("note"))
    assert heard == [
        ("obs-1", "pending", ["execution_started"]),
        ("obs-1", "running", ["node_started"]),
        ("obs-1", "completed", ["node_completed", "execution_completed"]),
    ]


async def test_a_failing_observer_does_not_fail_the_write_nor_the_others(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(commits: Sequence[Commit]) -> None:
        raise RuntimeError("observer bug")

    heard: list[str] = []
    store.observe(broken)
    store.observe(lambda commits: heard.extend(e.id for e, _ in commits))
    await store.create(_record("obs-2"), lambda txn: txn.event("execution_started"))
    assert (await store.get("obs-2")) is not None
    store.tell_observers()
    assert heard == ["obs-2"]
    assert "commit observer failed" in caplog.text


async def test_commits_are_held_a_moment_or_until_enough_are(store: Store) -> None:
    told: list[list[str]] = []
    times: list[tuple[float, int]] = []
    store.observe(
        lambda commits: told.append([e.id for e, _ in commits]),
        lambda seconds, writes: times.append((seconds, writes)),
    )
    await store.create(_record("held-0"), lambda txn: txn.event("execution_started"))
    assert told == []
    timed = not isinstance(store, MemoryStore)  # a memory store's commits wait for nothing
    assert [writes for _, writes in times] == ([1] if timed else [])  # timed at once
    assert all(seconds >= 0 for seconds, _ in times)
    await asyncio.sleep(HOLD * 2)  # told within HOLD
    assert told == [["held-0"]]
    await asyncio.gather(
        *(
            store.create(_record(f"held-{n}"), lambda txn: txn.event("execution_started"))
            for n in range(1, HELD + 1)
        )
    )
    # HELD commits: told at once, in the order they committed.
    assert len(told) == 2 and len(told[1]) == HELD
    assert sorted(told[1]) == sorted(f"held-{n}" for n in range(1, HELD + 1))
    assert sum(writes for _, writes in times) == (HELD + 1 if timed else 0)


async def test_an_observer_hears_only_what_commits_while_it_observes(store: Store) -> None:
    first: list[str] = []
    second: list[str] = []
    stop_first = store.observe(lambda commits: first.extend(e.id for e, _ in commits))
    await store.create(_record("seen-1"), lambda txn: txn.event("execution_started"))
    store.observe(lambda commits: second.extend(e.id for e, _ in commits))
    await store.create(_record("seen-2"), lambda txn: txn.event("execution_started"))
    stop_first()
    await store.create(_record("seen-3"), lambda txn: txn.event("execution_started"))
    store.tell_observers()
    assert first == ["seen-1", "seen-2"]
    assert second == ["seen-2", "seen-3"]
