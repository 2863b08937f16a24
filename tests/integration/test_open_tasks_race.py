"""Sends racing at ``limits.max_open_tasks_per_caller`` make no more tasks
than the cap has room for, on every store: each read the count before any
had made its task (forced: the counts meet before any goes on), and one
got the one place left, the others were refused saying so. Far from the
cap, racing sends all go on.

(Before: each send checked the count alone, so N sends in flight at the cap
less one made N tasks.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agent_node import Runtime, load_workflow
from agent_node.a2a.protocol.models import (
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
)
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.open_tasks import TooManyOpenTasks
from agent_node.a2a.server.tasks import TaskService
from agent_node.store import Store, store_from_url

ROOT = Path(__file__).resolve().parents[2]
CAP = 5
ALICE = CallContext(caller="spiffe://example.org/agent/alice")


class CountsMeet:
    """``inner``, a store, save that the next ``parties`` reads of a caller's
    open tasks wait for each other once read: every send has its count
    before any goes on."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.meeting: asyncio.Barrier | None = None
        self.met = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def meet(self, parties: int) -> None:
        self.meeting, self.met = asyncio.Barrier(parties), 0

    async def count_open(self, caller: str, limit: int) -> int:
        counted: int = await self.inner.count_open(caller, limit)
        if self.meeting is not None and self.met < self.meeting.parties:
            self.met += 1
            await self.meeting.wait()
        return counted


def booking(text: str) -> SendMessageRequest:
    """A send of the ``book`` skill, which parks asking when: it stays open."""
    message = Message(message_id=text, role=Role.USER, parts=[Part(text=text)])
    return SendMessageRequest(
        message=message,
        metadata={"skill": "book"},
        configuration=SendMessageConfiguration(return_immediately=True),
    )


@pytest.mark.parametrize(("room", "sends"), [(1, 4), (2, 6), (CAP, 3)])
async def test_sends_racing_at_the_cap_make_only_the_tasks_it_has_room_for(
    store_url: str, room: int, sends: int
) -> None:
    store = CountsMeet(store_from_url(store_url))
    async with Runtime(store, scope="all", poll_interval=0.05) as runtime:  # type: ignore[arg-type]
        book = load_workflow(str(ROOT / "examples/greeter/book.py") + ":wf")
        service = TaskService(runtime, {"book": book}, default_skill="book")
        service.max_open_tasks_per_caller = CAP
        for n in range(CAP - room):
            await service.send_message(booking(f"before {n}"), ALICE)
        store.meet(sends)
        answers = await asyncio.gather(
            *(service.send_message(booking(f"racing {n}"), ALICE) for n in range(sends)),
            return_exceptions=True,
        )
        assert store.met == sends  # every send read the count before any went on
        made = [a for a in answers if not isinstance(a, BaseException)]
        refused = [a for a in answers if isinstance(a, TooManyOpenTasks)]
        assert len(made) == min(room, sends), answers
        assert len(refused) == sends - len(made), answers
        for error in refused:
            assert f"has {CAP} open tasks" in str(error)
            assert error.metadata == {"openTasks": str(CAP), "limit": str(CAP)}
        assert await runtime.store.count_open(ALICE.caller or "", 100) == CAP - room + len(made)


class FirstCountWaits:
    """``inner``, a store, save that the first read of a caller's open tasks,
    once read, waits for ``go``: a send whose count is older than what
    other sends made meanwhile."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.read, self.go = asyncio.Event(), asyncio.Event()
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def count_open(self, caller: str, limit: int) -> int:
        counted: int = await self.inner.count_open(caller, limit)
        if self.armed:
            self.armed = False
            self.read.set()
            await self.go.wait()
        return counted


async def test_a_send_whose_count_is_older_than_a_task_made_meanwhile_counts_it(
    store_url: str,
) -> None:
    """The last place is taken by a send that made its task while another's
    count was being read: that count, one short, does not pass the cap."""
    store = FirstCountWaits(store_from_url(store_url))
    async with Runtime(store, scope="all", poll_interval=0.05) as runtime:  # type: ignore[arg-type]
        book = load_workflow(str(ROOT / "examples/greeter/book.py") + ":wf")
        service = TaskService(runtime, {"book": book}, default_skill="book")
        service.max_open_tasks_per_caller = CAP
        for n in range(CAP - 1):
            await service.send_message(booking(f"before {n}"), ALICE)
        store.armed = True
        late = asyncio.create_task(service.send_message(booking("late"), ALICE))
        await asyncio.wait_for(store.read.wait(), 3)  # its count: CAP - 1
        await service.send_message(booking("first"), ALICE)  # takes the last place
        store.go.set()
        with pytest.raises(TooManyOpenTasks, match=f"has {CAP} open tasks"):
            await late
        assert await runtime.store.count_open(ALICE.caller or "", 100) == CAP
