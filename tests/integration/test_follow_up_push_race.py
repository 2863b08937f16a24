"""A follow-up's push config and its message are one decision for the client.

Before, a follow-up checked that its task had room for its push config,
gave its message to the task, and only then stored the config: another add
that took the task's last place in between made the store refuse the
config, and the client was told -32602 for a message its task had taken
(and would send it again). Now the config takes its place first and the
message goes in after, or the config is given back (and the one it
replaced put back) when the message is refused. The races are forced at
the interleave point ``task_answer``, between the two, on SQLite and
PostgreSQL, and in the database itself: the add comes while the
follow-up's first write waits for a lock another connection holds.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from agent_node import Runtime, load_workflow
from agent_node.a2a.protocol.errors import A2AError, InvalidParams, UnsupportedOperation
from agent_node.a2a.protocol.models import (
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    TaskPushNotificationConfig,
)
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.push import PushSender
from agent_node.a2a.server.task_push import MAX_PUSH_CONFIGS
from agent_node.a2a.server.tasks import TaskService
from agent_node.config import PushSettings
from agent_node.engine import faults
from agent_node.store import store_from_url
from agent_node.store.records import PushConfigRecord
from agent_node.store.sql import PUSH_COLUMNS
from agent_node.store.sql_rows import push_row

ROOT = Path(__file__).resolve().parents[2]
CTX = CallContext()


@asynccontextmanager
async def booking(url: str) -> AsyncIterator[tuple[TaskService, str]]:
    """A task service of the ``book`` skill (it asks when, then books), and
    a task of it asking (:func:`asking`)."""
    async with Runtime(url, scope="all", poll_interval=0.05) as runtime:
        book = load_workflow(str(ROOT / "examples/greeter/book.py") + ":wf")
        service = TaskService(runtime, {"book": book})
        allow = PushSettings(allow=["127.0.0.0/8"])
        service.push = PushSender(runtime.store, service.render_push, allow, owner="test")
        yield service, await asking(service)


async def asking(service: TaskService) -> str:
    """A new task that asks when, with the push config ``first``."""
    task = (await service.send_message(send("Lisbon", "first"), CTX)).task
    assert task is not None
    while (await status(service, task.id)) != "waiting":
        await asyncio.sleep(0.02)
    return task.id


def send(text: str, push_id: str | None, task_id: str | None = None) -> SendMessageRequest:
    message = Message(message_id=text, role=Role.USER, parts=[Part(text=text)], task_id=task_id)
    push = None
    if push_id is not None:
        push = TaskPushNotificationConfig(id=push_id, url=f"http://127.0.0.1:9/{push_id}")
    config = SendMessageConfiguration(task_push_notification_config=push, return_immediately=True)
    return SendMessageRequest(message=message, configuration=config, metadata={"skill": "book"})


def new_config(task_id: str, push_id: str) -> TaskPushNotificationConfig:
    return TaskPushNotificationConfig(
        task_id=task_id, id=push_id, url=f"http://127.0.0.1:9/{push_id}"
    )


async def status(service: TaskService, task_id: str) -> str | None:
    record = await service.runtime.store.get(task_id)
    return record.status if record else None


async def configs(service: TaskService, task_id: str) -> dict[str, str]:
    """The task's push configs: id → URL."""
    stored = await service.runtime.store.push_configs(task_id)
    return {c.id: TaskPushNotificationConfig.model_validate_json(c.config).url for c in stored}


def armed(action: Any) -> list[Any]:
    """Run ``action(task_id)`` once, the first time a follow-up reaches the
    point between its push config and its message; what it returned or raised."""
    outcome: list[Any] = []

    async def once(point: str, task_id: Any) -> None:
        faults.on(point, None)
        try:
            outcome.append(await action(task_id))
        except A2AError as exc:
            outcome.append(exc)

    faults.on("task_answer", once)
    return outcome


async def test_an_add_racing_for_the_last_place_loses_to_the_follow_up_it_meets(
    durable_url: str,
) -> None:
    """Before: the follow-up's message was taken, then its config refused
    (-32602), the add having taken the place; the client would send again."""
    async with booking(durable_url) as (service, task_id):
        for n in range(MAX_PUSH_CONFIGS - 2):  # nine with "first": one place left
            await service.create_task_push_notification_config(new_config(task_id, f"c{n}"), CTX)

        async def add(task_id: str) -> Any:
            return await service.create_task_push_notification_config(
                new_config(task_id, "racer"), CTX
            )

        racer = armed(add)
        answered = await service.send_message(send("in May", "late", task_id), CTX)
        assert answered.task is not None and answered.task.id == task_id
        (refused,) = racer  # the race was met at the point
        assert isinstance(refused, InvalidParams), refused
        assert "10 push configs already" in refused.message
        held = await configs(service, task_id)
        assert len(held) == MAX_PUSH_CONFIGS and "late" in held and "racer" not in held
        await service.runtime.engine.wait(task_id)
        assert await status(service, task_id) == "completed"  # the message was taken


async def test_a_follow_up_refused_once_its_config_is_in_gives_the_place_back(
    durable_url: str,
) -> None:
    """The task is answered by another message meanwhile: this one is
    refused, and its config (new, and the one it replaced) goes back."""
    async with booking(durable_url) as (service, task_id):

        async def answer_first(task_id: str) -> Any:
            return await service.send_message(send("in June", None, task_id), CTX)

        other = armed(answer_first)
        with pytest.raises((UnsupportedOperation, InvalidParams)):
            await service.send_message(send("in May", "late", task_id), CTX)
        assert other and not isinstance(other[0], A2AError), other
        assert await configs(service, task_id) == {"first": "http://127.0.0.1:9/first"}

        # Once more, the config replacing "first" (as one sent without an
        # id does: it takes the task's id, that of the config sent with it).
        second = await asking(service)
        other = armed(lambda t: service.send_message(send("in June", None, t), CTX))
        replacing = send("in May", "first", second)
        assert replacing.configuration is not None
        replacing.configuration.task_push_notification_config = TaskPushNotificationConfig(
            id="first", url="http://127.0.0.1:9/replaced"
        )
        with pytest.raises((UnsupportedOperation, InvalidParams)):
            await service.send_message(replacing, CTX)
        assert other and not isinstance(other[0], A2AError), other
        assert await configs(service, second) == {"first": "http://127.0.0.1:9/first"}


async def test_a_full_task_refuses_the_follow_up_before_its_message_is_taken(
    durable_url: str,
) -> None:
    async with booking(durable_url) as (service, task_id):
        for n in range(MAX_PUSH_CONFIGS - 1):
            await service.create_task_push_notification_config(new_config(task_id, f"c{n}"), CTX)
        with pytest.raises(InvalidParams, match="10 push configs already"):
            await service.send_message(send("in May", "late", task_id), CTX)
        assert await status(service, task_id) == "waiting"  # still asking: nothing taken
        # The same message without a config is the answer.
        await service.send_message(send("in May", None, task_id), CTX)
        assert (await service.runtime.engine.wait(task_id)).status == "completed"


# -- the race met in the database ---------------------------------------------

#: Starts the follow-up.
Start = Callable[[], "asyncio.Task[Any]"]


def racer(task_id: str) -> PushConfigRecord:
    config = new_config(task_id, "racer").model_dump_json(by_alias=True, exclude_none=True)
    return PushConfigRecord(task_id, "racer", config, "1.0", None, time.time())


async def add_while_postgres_locks(url: str, task_id: str, start: Start) -> bool:
    """Hold the task's row (as a transaction of another replica would),
    start the follow-up, and once it waits for the row add a config (another
    process's add, counted) and let go; whether it was added."""
    other = store_from_url(url)
    await other.open()
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM executions WHERE id = $1 FOR UPDATE", task_id)
            follow_up = start()
            waiting = (
                "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            )
            while not await conn.fetchval(waiting):
                assert not follow_up.done(), follow_up
                await asyncio.sleep(0.01)
            return await other.put_push_config(racer(task_id), MAX_PUSH_CONFIGS)
    finally:
        await conn.close()
        await other.close()


async def add_while_sqlite_locks(url: str, task_id: str, start: Start) -> bool:
    """Hold the file's write lock (as another process would), start the
    follow-up and let it go as far as it can, add a config as the store does
    (counted under the lock), let go; whether it was added."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        follow_up = start()
        await asyncio.sleep(0.5)  # it waits for the lock by then
        assert not follow_up.done(), follow_up
        marks = ", ".join("?" * len(PUSH_COLUMNS.split(",")))
        added = conn.execute(
            f"INSERT INTO push_configs ({PUSH_COLUMNS}) SELECT {marks}"
            " WHERE (SELECT COUNT(*) FROM push_configs WHERE task_id = ?) < ?",
            (*push_row(racer(task_id)), task_id, MAX_PUSH_CONFIGS),
        ).rowcount
        conn.execute("COMMIT")
        return added == 1
    finally:
        conn.close()


async def test_one_of_a_follow_up_and_an_add_met_in_the_database_gets_the_last_place(
    durable_url: str,
) -> None:
    """Before: the follow-up checked the room, its message was taken while
    the add took the last place, and it was refused -32602 (nothing said
    the message had gone in). Now a refused config is a message not taken."""
    sqlite = durable_url.startswith("sqlite")
    add = add_while_sqlite_locks if sqlite else add_while_postgres_locks
    async with booking(durable_url) as (service, task_id):
        for n in range(MAX_PUSH_CONFIGS - 2):  # nine with "first": one place left
            await service.create_task_push_notification_config(new_config(task_id, f"c{n}"), CTX)
        late = send("in May", "late", task_id)
        started: list[asyncio.Task[Any]] = []

        def start() -> asyncio.Task[Any]:
            started.append(asyncio.create_task(service.send_message(late, CTX)))
            return started[0]

        added = await add(durable_url, task_id, start)
        (answered,) = await asyncio.gather(*started, return_exceptions=True)
        held = await configs(service, task_id)
        assert len(held) == MAX_PUSH_CONFIGS
        if isinstance(answered, BaseException):
            assert isinstance(answered, InvalidParams), answered
            assert added and "racer" in held and "late" not in held
            assert await status(service, task_id) == "waiting", "refused, yet taken"
        else:
            assert not added and "late" in held and "racer" not in held
            assert (await service.runtime.engine.wait(task_id)).status == "completed"
        # SQLite: the follow-up's first write waited behind the lock, and the
        # add won; PostgreSQL: its config was in before its message waited.
        assert isinstance(answered, BaseException) == sqlite, answered
