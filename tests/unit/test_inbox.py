"""The queue of an open stream: order, wake-up, one reader, cancel."""

from __future__ import annotations

import asyncio

import pytest

from agent_node.a2a.server.inbox import Inbox


async def test_items_come_out_in_order_and_wake_a_waiting_reader() -> None:
    inbox: Inbox[int] = Inbox()
    inbox.put_nowait(1)
    reader = asyncio.create_task(inbox.get())
    assert await reader == 1
    waiting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    inbox.put_nowait(2)
    inbox.put_nowait(3)
    assert await waiting == 2
    assert (inbox.qsize(), inbox.peek(), inbox.get_nowait(), inbox.empty()) == (1, 3, 3, True)


async def test_a_cancelled_reader_leaves_the_inbox_usable() -> None:
    inbox: Inbox[str] = Inbox()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    inbox.put_nowait("after")
    assert await asyncio.wait_for(inbox.get(), 1) == "after"


async def test_an_inbox_has_one_reader() -> None:
    inbox: Inbox[int] = Inbox()
    first = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one reader"):
        await inbox.get()
    inbox.put_nowait(7)
    assert await first == 7
