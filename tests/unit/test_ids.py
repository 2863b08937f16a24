"""New execution and task ids are version 7 UUIDs: unique, unguessable, and
in the order they were made (to the millisecond), so that the rows of the
executions running at one moment sit side by side in every index."""

from __future__ import annotations

import asyncio
import time
import uuid

from pydantic import BaseModel

from agent_node import Runtime, Workflow
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.task_origin import task_id_of
from agent_node.ids import new_id


def test_an_id_is_a_version_7_uuid_that_begins_with_its_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    made = uuid.UUID(new_id())
    after = time.time_ns() // 1_000_000
    assert made.version == 7 and made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after
    assert len(str(made)) == 36 and str(made) == str(made).lower()


def test_ids_are_unique_and_sort_by_when_they_were_made() -> None:
    first = [new_id() for _ in range(20_000)]
    assert len(set(first)) == len(first)
    time.sleep(0.002)
    later = [new_id() for _ in range(100)]
    assert max(first) < min(later)
    # The random part is random: no two of a millisecond share their tail.
    assert len({i[-12:] for i in first}) == len(first)


def test_executions_and_tasks_get_such_ids() -> None:
    assert uuid.UUID(task_id_of(CallContext())).version == 7
    keyed = task_id_of(CallContext(caller="c", idempotency_key="k"))
    assert keyed == task_id_of(CallContext(caller="c", idempotency_key="k"))  # as before

    class S(BaseModel):
        n: int = 0

    wf = Workflow("ids", version="1")
    wf.state(S)

    @wf.step
    async def one(s: S) -> None:
        return None

    async def run() -> list[str]:
        async with Runtime("memory://") as rt:
            return [(await rt.run(wf.compile(), S())).execution_id for _ in range(3)]

    ids = asyncio.run(run())
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)
