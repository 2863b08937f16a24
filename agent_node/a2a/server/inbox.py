"""A queue for one waiting task, the size of an open stream.

Every open stream holds a queue of events (its :class:`~.task_stream.TaskStream`).
``asyncio.Queue`` keeps three deques (~760 bytes each, empty) whether
anybody waits or not: some 2 KiB per stream that is idle almost all of its
life. :class:`Inbox` keeps a list and, only while its one reader waits, a
future. It does not bound what it holds nor serve two readers at once (a
second ``get`` while one waits raises ``RuntimeError``).
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

__all__ = ["Inbox"]

T = TypeVar("T")


class _OneWaiter:
    __slots__ = ("_waiter",)

    def __init__(self) -> None:
        self._waiter: asyncio.Future[None] | None = None

    async def _wait(self) -> None:
        if self._waiter is not None:
            raise RuntimeError(f"a {type(self).__name__} has one reader")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Inbox(_OneWaiter, Generic[T]):
    """Items in the order put, for one reader; unbounded."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        super().__init__()
        self._items: list[T] = []

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        self._wake()

    async def get(self) -> T:
        while not self._items:
            await self._wait()
        return self._items.pop(0)

    def get_nowait(self) -> T:
        """The first item (IndexError when there is none)."""
        return self._items.pop(0)

    def peek(self) -> T:
        """The first item, left in place (IndexError when there is none)."""
        return self._items[0]

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)
