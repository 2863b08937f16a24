"""An application's own ``Runtime`` lets go of an execution that another
process ended — cancelled (``agent-node cancel``), or completed by another
worker — and its ``wait`` returns the end; it never lets go of one that
another process moves on meanwhile.

A second store on the same database is the other process: on SQLite a
store's notices reach no other store, as they reach no other process. (A
walk found a Runtime holding, until it closed, an execution the CLI had
cancelled: parked for good, swept every poll_interval.)
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from agent_node import Runtime, Workflow
from agent_node.store import Store, store_from_url
from agent_node.store.records import TERMINAL, ExecutionRecord, WaitRecord


class Ask(BaseModel):
    answer: str = ""


def asking(name: str, *, timeout: float | None = None) -> Workflow:
    """A wait for the event ``go`` (``timeout``: then to ``late``), then an end."""
    wf = Workflow(name, version="1")
    wf.state(Ask)
    if timeout is None:
        wf.wait("ask", event="go", output="answer")
    else:
        wf.wait("ask", event="go", output="answer", timeout=timeout, on_timeout="late")

    @wf.step(next=None)
    async def answered(s: Ask) -> dict[str, Any]:
        return {"answer": f"got {s.answer}"}

    if timeout is not None:

        @wf.step(next=None)
        async def late(s: Ask) -> dict[str, Any]:
            return {"answer": "late"}

    return wf


async def let_go(rt: Runtime, execution_id: str, within: float = 3.0) -> bool:
    """Whether ``rt`` stops driving the execution within ``within`` seconds."""
    deadline = time.monotonic() + within
    while rt.drives(execution_id) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return not rt.drives(execution_id)


async def test_one_cancelled_elsewhere_is_let_go_and_its_wait_returns(durable_url: str) -> None:
    wf = asking("cancelled-elsewhere").compile()
    async with Runtime(durable_url, poll_interval=0.1) as rt, Runtime(durable_url) as other:
        parked = await rt.run(wf, Ask())
        assert parked.status == "waiting" and rt.drives(parked.execution_id)
        waiting = asyncio.create_task(rt.wait(parked.execution_id, until="terminal"))
        await asyncio.sleep(0)  # the waiter reads the row once: it is parked
        assert await other.cancel(parked.execution_id, "from elsewhere")
        ended = await asyncio.wait_for(waiting, 3)
        assert ended.status == "canceled" and ended.error == "from elsewhere"
        assert await let_go(rt, parked.execution_id)


async def test_one_completed_by_another_worker_is_let_go(durable_url: str) -> None:
    """The other worker signals and completes it while every slot of ``rt``
    is busy (no claim round of ``rt`` can see it ready); ``rt`` then finds
    nothing left of it."""
    started, release = asyncio.Event(), asyncio.Event()
    busy = Workflow("busy", version="1")
    busy.state(Ask)

    @busy.step(next=None)
    async def hold(s: Ask) -> None:
        started.set()
        await release.wait()

    wf = asking("completed-elsewhere").compile()
    async with (
        Runtime(durable_url, poll_interval=0.1, concurrency=1) as rt,
        Runtime(durable_url) as other,
    ):
        parked = await rt.run(wf, Ask())
        assert parked.status == "waiting"
        other.workflows.add(wf)
        holding = await rt.start_execution(busy.compile(), Ask())
        await asyncio.wait_for(started.wait(), 3)
        await other.signal(parked.execution_id, "go", "yes")
        done = await other.wait(parked.execution_id, until="terminal")
        assert done.status == "completed" and done.state.answer == "got yes"
        release.set()
        assert (await rt.wait(holding, until="terminal")).status == "completed"
        assert await let_go(rt, parked.execution_id)
        assert (await rt.wait(parked.execution_id)).status == "completed"


class SignalledBetween:
    """``inner``, a store, save that its first read of one execution's waits
    runs ``first`` before it reads: another process's signal lands between
    what the runtime reads of the execution."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.target: str | None = None
        self.first: Callable[[], Awaitable[None]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def waits(self, execution_id: str) -> list[WaitRecord]:
        if execution_id == self.target and self.first is not None:
            first, self.first = self.first, None
            await first()
        return await self.inner.waits(execution_id)


async def settled(store: Store, execution_id: str, within: float) -> ExecutionRecord:
    """The execution's row once it ended, or as it is after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        record = await store.get(execution_id)
        assert record is not None
        if record.status in TERMINAL or time.monotonic() > deadline:
            return record
        await asyncio.sleep(0.05)


async def test_a_signal_from_elsewhere_during_a_look_is_not_lost(durable_url: str) -> None:
    """At its wait's deadline the runtime looks at the execution; another
    process's signal resolves the wait just then (its work row written, its
    wait row gone). Before, the runtime read its work before the signal and
    its waits after, saw neither, let it go, and nothing ran it again."""
    wf = asking("raced", timeout=0.3).compile()
    store = SignalledBetween(store_from_url(durable_url))
    async with Runtime(store, poll_interval=0.1) as rt, Runtime(durable_url) as other:  # type: ignore[arg-type]
        parked = await rt.run(wf, Ask())
        assert parked.status == "waiting"
        other.workflows.add(wf)

        async def signal() -> None:
            await other.engine.control.signal(parked.execution_id, "go", "just in time")

        store.target, store.first = parked.execution_id, signal
        record = await settled(other.store, parked.execution_id, within=5)
        assert store.first is None, "the runtime never looked at the execution"
        assert record.status == "completed", record
        assert json.loads(record.state) == {"answer": "got just in time"}


async def test_next_due_of_says_each_executions_next_due_in_one_read(store_url: str) -> None:
    """What the sweep and a look read: a wait for an event is due on news only
    (``inf``), one with a timeout at its deadline, a running visit at its
    lease's end; an ended or unknown execution is left out."""
    started, release = asyncio.Event(), asyncio.Event()
    running = Workflow("running", version="1")
    running.state(Ask)

    @running.step(next=None)
    async def hold(s: Ask) -> None:
        started.set()
        await release.wait()

    async with Runtime(store_url, lease_ttl=60) as rt:
        on_news = (await rt.run(asking("on-news").compile(), Ask())).execution_id
        timed = (await rt.run(asking("timed", timeout=600).compile(), Ask())).execution_id
        ended = await rt.start_execution(running.compile(), Ask())
        await asyncio.wait_for(started.wait(), 3)
        now = time.time()
        dues = await rt.store.next_due_of([on_news, timed, ended, "unknown"])
        assert set(dues) == {on_news, timed, ended}
        assert dues[on_news] == math.inf
        assert now + 590 < dues[timed] <= now + 600
        assert now + 50 < dues[ended] <= now + 60
        release.set()
        assert (await rt.wait(ended)).status == "completed"
        assert await rt.store.next_due_of([ended]) == {}
        assert await rt.store.next_due_of([]) == {}
