"""The live channel across PostgreSQL replicas (store/pg_live.py): two stores
on one database in this process, as two replicas. Chunks written on one
reach the listeners of the other, in order, once that one watches; a
listener joining mid-stream on the other replica gets the text so far; a
long text is cut to fit NOTIFY and arrives whole; nobody watching elsewhere,
nothing is sent. Then a task service on one replica streams what the other
replica's runtime writes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from support.workflows import WRITER_YAML

from agent_node.store import store_from_url
from agent_node.store.live import Chunk
from agent_node.store.pg_live import PgLive


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[tuple[Any, Any]]:
    one, two = store_from_url(pg_url), store_from_url(pg_url)
    await one.open()
    await two.open()
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


def writer(live: PgLive, execution: str, stream: str = "s-1") -> Callable[..., None]:
    def write(text: str, *, append: bool = True, last: bool = False) -> None:
        live.publish(Chunk(execution, stream, "write", text, append, last))

    return write


async def test_chunks_reach_a_listener_on_another_replica_in_order(
    replicas: tuple[Any, Any],
) -> None:
    one, two = replicas
    got: list[Chunk] = []
    two.live.subscribe("e-1", got.append)
    await until(lambda: one.live._interest.get("e-1", 0) > 0, "the announcement")
    write = writer(one.live, "e-1")
    write("The ", append=False)
    for word in ("quick ", "brown ", "fox"):
        write(word)
    write("", last=True)
    await until(lambda: bool(got) and got[-1].last, "the last chunk")
    assert [c.text for c in got] == ["The ", "quick ", "brown ", "fox", ""]
    assert [c.append for c in got] == [False, True, True, True, True]
    assert two.live.writing("e-1") == 0  # the stream closed on the other side too


async def test_joining_mid_stream_on_another_replica_gets_the_text_so_far(
    replicas: tuple[Any, Any],
) -> None:
    one, two = replicas
    write = writer(one.live, "e-2")
    write("Once upon ", append=False)
    write("a time")
    got: list[Chunk] = []
    two.live.subscribe("e-2", got.append)
    await until(lambda: bool(got), "the text so far")
    assert (got[0].text, got[0].append) == ("Once upon a time", False)
    write(", the end.", last=False)
    write("", last=True)
    await until(lambda: got[-1].last, "the rest")
    assert "".join(c.text for c in got) == "Once upon a time, the end."


async def test_a_long_text_is_cut_to_fit_and_arrives_whole(replicas: tuple[Any, Any]) -> None:
    one, two = replicas
    got: list[Chunk] = []
    two.live.subscribe("e-3", got.append)
    await until(lambda: one.live._interest.get("e-3", 0) > 0, "the announcement")
    text = "é—" * 5000  # 10,000 characters, 25,000 bytes of UTF-8: several payloads
    writer(one.live, "e-3")(text, append=False, last=True)
    await until(lambda: bool(got) and got[-1].last, "the whole text")
    assert "".join(c.text for c in got) == text
    assert got[0].append is False and all(c.append for c in got[1:])


async def test_nothing_goes_out_while_nobody_elsewhere_watches(
    replicas: tuple[Any, Any],
) -> None:
    one, _ = replicas
    sent: list[str] = []
    original = one._notify_live

    async def counting(payload: str) -> None:
        sent.append(payload)
        await original(payload)

    await one.live.stop()  # its sender holds the original: start it again, counting
    one.live.start(counting)
    writer(one.live, "e-4")("unwatched", append=False, last=True)
    await asyncio.sleep(0.2)
    assert [json.loads(p) for p in sent] == [{"o": one.live.origin, "q": 1}]  # its start's question


async def test_a_replica_that_starts_learns_at_once_what_others_watch(
    replicas: tuple[Any, Any],
) -> None:
    """Restarted (after a crash), a replica asks who watches: the others say,
    and its chunks go out from the first — not at their next announcement."""
    one, two = replicas
    got: list[Chunk] = []
    two.live.subscribe("e-5", got.append)
    await asyncio.sleep(0.2)
    await one.live.stop()
    one.live._interest.clear()  # as a fresh process knows nothing
    one.live.start(one._notify_live)
    await until(lambda: one.live._interest.get("e-5", 0) > 0, "the watcher to answer")
    writer(one.live, "e-5")("after the restart", append=False, last=True)
    await until(lambda: len(got) == 1, "the chunk on the watching replica")
    assert got[0].text == "after the restart"


WRITER = WRITER_YAML


async def test_a_subscriber_on_one_replica_streams_what_the_other_runs(
    pg_url: str, ollama: Any, client: Any
) -> None:
    """Replica one takes the task and runs its model node; a subscriber of
    replica two (whose engine drives nothing of it) gets the text live."""
    from support.fake_ollama import text

    from agent_node import Runtime
    from agent_node.a2a.protocol.models import (
        Message,
        Part,
        Role,
        SendMessageConfiguration,
        SendMessageRequest,
        SubscribeToTaskRequest,
    )
    from agent_node.a2a.server.handler import CallContext
    from agent_node.a2a.server.tasks import TaskService
    from agent_node.nodes.model import ModelExecutor
    from agent_node.workflow.yaml_loader import load_yaml_text

    answer = "Tokens cross replicas through NOTIFY, in order."
    ollama.stream_chunks, ollama.chunk_delay = 6, 0.1
    ollama.script(text(answer))
    workflow = load_yaml_text(WRITER)
    executors = {"model": ModelExecutor(client)}
    async with (
        Runtime(pg_url, node="one", scope="all", executors=executors) as one,
        Runtime(pg_url, node="two", scope="own", executors=executors) as two,
    ):
        first = TaskService(one, {"write": workflow}, default_skill="write")
        second = TaskService(two, {"write": workflow}, default_skill="write")
        message = Message(message_id="m", role=Role.USER, parts=[Part(text="go")])
        sent = await first.send_message(
            SendMessageRequest(
                message=message, configuration=SendMessageConfiguration(return_immediately=True)
            ),
            CallContext(),
        )
        assert sent.task is not None
        stream = await second.subscribe_to_task(
            SubscribeToTaskRequest(id=sent.task.id), CallContext()
        )
        events = [event async for event in stream]
    pieces = [
        e.artifact_update
        for e in events
        if e.artifact_update is not None and e.artifact_update.artifact.name == "write"
    ]
    assert pieces and pieces[0].append is False and pieces[-1].last_chunk
    assert all(p.append for p in pieces[1:])
    assert "".join(p.artifact.parts[0].text or "" for p in pieces) == answer
    assert len(pieces) >= 3  # live: pieces as they came, not the answer at the end
    final = events[-1].status_update
    assert final is not None and str(final.status.state) == "TASK_STATE_COMPLETED"
