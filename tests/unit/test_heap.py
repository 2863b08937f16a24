"""agent_node/heap.py: the C heap's free pages go back to the system after
a burst (glibc only; elsewhere the functions do nothing)."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util

import psutil
import pytest

from agent_node import heap

pytestmark = pytest.mark.skipif(heap.free_bytes() is None, reason="not glibc")

_LIBC = ctypes.CDLL(ctypes.util.find_library("c"))
_LIBC.malloc.restype = ctypes.c_void_p
_LIBC.malloc.argtypes = [ctypes.c_size_t]
_LIBC.free.argtypes = [ctypes.c_void_p]
BLOCK = 32 * 1024  # under glibc's mmap threshold: from the heap
BLOCKS = 640  # 20 MiB


def burst() -> list[int]:
    """A burst's leftovers: 20 MiB written then freed inside the heap, each
    block fenced by one still held (as large, so that it comes from the
    heap's top, right after the block, not from some small free chunk
    elsewhere), so none of it is the heap's top, which glibc would return
    by itself."""
    big, fences = [], []
    for _ in range(BLOCKS):
        block = _LIBC.malloc(BLOCK)
        ctypes.memset(block, 1, BLOCK)  # resident
        big.append(block)
        fences.append(_LIBC.malloc(BLOCK))
    for block in big:
        _LIBC.free(block)
    return fences


def release(fences: list[int]) -> None:
    for fence in fences:
        _LIBC.free(fence)


def test_trim_gives_freed_pages_inside_the_heap_back() -> None:
    fences = burst()
    try:
        assert (heap.free_bytes() or 0) >= BLOCKS * BLOCK
        before = psutil.Process().memory_info().rss
        assert heap.trim() is True
        after = psutil.Process().memory_info().rss
        assert before - after > BLOCKS * BLOCK // 2, (before, after)
    finally:
        release(fences)


async def test_keep_trimmed_trims_once_the_slack_is_passed() -> None:
    keeper = asyncio.create_task(heap.keep_trimmed(every=0.05, slack=4 * 1024 * 1024))
    fences = burst()
    try:
        rss = psutil.Process().memory_info().rss
        for _ in range(100):
            await asyncio.sleep(0.05)
            if psutil.Process().memory_info().rss < rss - BLOCKS * BLOCK // 2:
                break
        assert psutil.Process().memory_info().rss < rss - BLOCKS * BLOCK // 2
    finally:
        keeper.cancel()
        release(fences)
