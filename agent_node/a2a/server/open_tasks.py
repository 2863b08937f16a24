"""The cap on a caller's open tasks (``limits.max_open_tasks_per_caller``).

A task stays open while it is submitted, working, or parked asking its
caller for input, however long that takes, and retention prunes finished
tasks only: without a cap, one caller could park tasks until the store is
full. So a send that would make a caller's open tasks one more than the cap
is refused before anything is made, with :class:`TooManyOpenTasks` (the
family of the per-caller request cap: JSON-RPC -32032, HTTP 429, gRPC
RESOURCE_EXHAUSTED), saying how many are open and how to close some. It
has no ``Retry-After``: time alone closes none.

The count is the store's (:meth:`~agent_node.store.base.Store.count_open`,
on an index of the unfinished executions that have a caller), so it holds
across restarts and every replica of one database sees the same one; it
reads at most the cap's number of that caller's entries, and a caller with
a few open tasks costs one short indexed read per new task.

Sends in flight at once each read the count before any has made its task:
counted alone, all of them would pass a cap that has room for one. So a
send holds room for its task (:func:`room_for_task`) from its count until
its task is made, and in this process the count is exact:

* a send whose count, with the room the caller's other sends hold and
  those that made their task while it read, leaves room for one more goes
  on at once — far from the cap, sends never wait for each other;
* else, near the cap, the caller's sends go one at a time: each waits for
  those that hold room to have made their tasks, and reads the count again,
  which is then the whole truth; at the cap it is refused.

Across replicas of one PostgreSQL database the count of each sees the
tasks the others made, not those they are making: sends racing at the cap
on several replicas may pass it by as many as the other replicas have in
flight for that caller at that moment (at most
``limits.max_concurrent_per_caller`` each). A caller without an identity
(``--insecure-dev``) is not counted: its tasks carry no caller. Follow-ups
and repeated sends make no task and are never refused here.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agent_node.a2a.protocol.errors import TooManyRequests
from agent_node.store.base import Store

__all__ = ["TooManyOpenTasks", "room_for_task"]

#: The task service's log: a refused start is one of its lines.
log = logging.getLogger("agent_node.a2a.server.tasks")


class TooManyOpenTasks(TooManyRequests):
    """The caller has as many open tasks as the node keeps for one caller;
    its metadata: ``openTasks`` and ``limit``."""


class _Rooms:
    """The room one caller's sends hold in this process."""

    __slots__ = ("drained", "held", "made", "one_at_a_time", "sends")

    def __init__(self) -> None:
        #: Sends holding room: counted, their task not made yet.
        self.held = 0
        #: Sends that held room and let it go (their task made, or not), ever.
        self.made = 0
        #: Sends under way (whether they hold room or still count): while
        #: any is, this is kept.
        self.sends = 0
        #: Near the cap: one send at a time counts.
        self.one_at_a_time = asyncio.Lock()
        #: Set when no send holds room.
        self.drained = asyncio.Event()


#: Each store's callers with sends under way.
_rooms: weakref.WeakKeyDictionary[Store, dict[str, _Rooms]] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def room_for_task(store: Store, caller: str | None, cap: int) -> AsyncIterator[None]:
    """Room for one more open task of ``caller``, held until the block ends:
    make the task in it. Raises :class:`TooManyOpenTasks` when the caller
    has ``cap`` open tasks (0: no cap)."""
    if not cap or caller is None:
        yield
        return
    callers = _rooms.setdefault(store, {})
    rooms = callers.setdefault(caller, _Rooms())
    rooms.sends += 1
    try:
        await _take(store, caller, cap, rooms)
        try:
            yield
        finally:
            rooms.held -= 1
            rooms.made += 1
            if not rooms.held:
                rooms.drained.set()
    finally:
        rooms.sends -= 1
        if not rooms.sends:
            callers.pop(caller, None)


async def _take(store: Store, caller: str, cap: int, rooms: _Rooms) -> None:
    """Take room for one task (see the module doc), or refuse."""
    made_before = rooms.made
    counted = await store.count_open(caller, cap)
    # A task made while the count was read may be in it or not: count it.
    bound = counted + rooms.held + (rooms.made - made_before)
    if bound < cap and not rooms.one_at_a_time.locked():
        rooms.held += 1
        return
    async with rooms.one_at_a_time:
        while rooms.held:
            rooms.drained.clear()
            await rooms.drained.wait()
        held = await store.count_open(caller, cap)
        if held >= cap:
            raise _refused(caller, held, cap)
        rooms.held += 1


def _refused(caller: str, held: int, cap: int) -> TooManyOpenTasks:
    log.warning("refused: %s has %d open tasks", caller, held)
    return TooManyOpenTasks(
        f"{caller} has {held} open tasks, the most this agent keeps for one caller;"
        " close some first: cancel them (CancelTask) or answer those that ask for"
        " input (ListTasks lists them), then send again",
        metadata={"openTasks": str(held), "limit": str(cap)},
    )
