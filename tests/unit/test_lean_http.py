"""uvicorn's per-connection events and pipeline, as agent_node.lean_http
makes them: what uvicorn asks of them behaves as asyncio's and a deque."""

from __future__ import annotations

import asyncio

import pytest

from agent_node.lean_http import Event, Pipeline


async def test_set_wakes_every_waiter_and_stays_set_until_cleared() -> None:
    event = Event()
    waiters = [asyncio.create_task(event.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters) and not event.is_set()
    event.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert await event.wait() and event.is_set()
    event.clear()
    later = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    assert not later.done()
    event.set()
    assert await later


async def test_a_cancelled_waiter_leaves_the_others_waiting() -> None:
    event = Event()
    gone, staying = asyncio.create_task(event.wait()), asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    event.set()
    assert await asyncio.wait_for(staying, 1)


async def test_a_waiter_from_before_a_clear_is_woken_once_only() -> None:
    event = Event()
    first = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    event.set()
    event.clear()  # before the woken waiter ran
    second = asyncio.create_task(event.wait())
    assert await first
    await asyncio.sleep(0)
    assert not second.done()
    event.set()
    assert await second


def test_the_pipeline_serves_requests_in_the_order_they_came() -> None:
    pipeline = Pipeline()
    assert not pipeline
    for request in ("first", "second", "third"):
        pipeline.appendleft(request)  # as uvicorn queues them
    assert [pipeline.pop() for _ in range(3)] == ["first", "second", "third"]
    assert not pipeline
