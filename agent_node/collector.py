"""The collector's full passes and a running node's long-lived heap.

CPython's cyclic garbage collector walks every object it tracks in each full
(generation 2) pass. Most of a node's heap is what existed when it started —
modules, classes, schemas, compiled workflows — and lives as long as the
process; under load a full pass came every ~1,500 steps and walked it all
(68,000 objects in ``bench/ours.py``; more with a model client or the HTTP
server imported): 17 % of the time of 200 concurrent five-step workflows,
for nothing it could free. While a runtime runs, :func:`hold` keeps the
objects alive at its start in the collector's permanent generation
(``gc.freeze``): full passes skip them, young objects are collected as
before, and reference counting frees any of them as usual. When the last
runtime of the process closes, :func:`release` gives them back
(``gc.unfreeze``), so that any of them left in garbage cycles meanwhile is
collected then. The first runtime collects once before it freezes (7 ms with
the node's modules imported): garbage frozen would hold memory the work
could have reused (``bench/ours.py wait2000``: 424 to 514 B of RSS per waiting
execution without that pass, 258 to 272 with it, 283 to 385 with no freeze).
Freezing and unfreezing are constant-time.

Young passes are paused while a group commit gathers its jobs (:func:`pause`,
:func:`resume`; SQLite's writer and PostgreSQL's group commit). Each job of
a batch holds what its step made — its transaction, records, events — until
the batch has committed and its awaiters run again: 200 concurrent steps
keep thousands of such objects alive at once, by design. A young pass
(every 700 allocations more than deallocations) then finds them all alive
and promotes them, and the middle and full passes walk them again: ~785
young, ~71 middle and 7 full passes per 10,000 steps of 200 concurrent
five-step workflows on SQLite, 122 to 184 ms (8 to 9 % of their CPU).
Paused from a batch's first job to the loop's iteration after it settled
(where its awaiters have let go of them): ~30, 3 and 0 passes, 13 to 32 ms,
and 8 % less CPU a step (PostgreSQL: 7 to 12 % less of the process's).
Cyclic garbage made meanwhile waits that long; a pause ends after
:data:`MAX_PAUSE` whatever happens.

``AGENT_NODE_GC_FREEZE=0`` leaves the collector alone (a program that tunes
it itself): no freeze and no pauses.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time

__all__ = ["hold", "pause", "release", "resume", "resume_soon"]

_holders = 0
#: Whether :func:`pause` turned the collector off (and :func:`resume` owes
#: turning it back on): never a collector someone else turned off.
_paused = False
#: The longest pause (seconds).
MAX_PAUSE = 0.1
#: When the pause under way began (``time.monotonic()``), and the timer that
#: ends it once it has lasted :data:`MAX_PAUSE`, on the loop it runs on.
_since = 0.0
_watch: asyncio.TimerHandle | None = None
_watch_loop: asyncio.AbstractEventLoop | None = None


def hold() -> None:
    """A runtime starts: freeze what is alive now (again, with what the
    runtimes already running have made since)."""
    global _holders
    if os.environ.get("AGENT_NODE_GC_FREEZE", "1") == "0":
        return
    if _holders == 0:
        gc.collect()  # what is garbage already is freed, not frozen
    _holders += 1
    gc.freeze()


def release() -> None:
    """A runtime that :func:`hold` counted closed: the last one unfreezes."""
    global _holders
    if _holders == 0:
        return
    _holders -= 1
    if _holders == 0:
        resume()
        gc.unfreeze()


def pause() -> None:
    """No young passes until :func:`resume` (module doc), or for
    :data:`MAX_PAUSE` at most (a commit stuck on its database must not hold
    the collector off): while a runtime runs, on its event loop, and only
    when the collector is on.

    The limit is kept by one timer that outlives the pauses (:func:`_watch_over`),
    not one armed and cancelled by each: a pause a step, cancelled timers
    stay in the loop's heap behind any live one due sooner (each push into
    it then compares against them, in Python), and a node has such timers
    — its commits held for their observers (:mod:`agent_node.store.notify`),
    its connections' — once it does anything but steps: up to 100 of them,
    1.5 to 2.9 % of a traced sequential step's CPU (``bench/README.md``,
    session 23)."""
    global _paused, _since, _watch, _watch_loop
    if _holders and not _paused and gc.isenabled():
        gc.disable()
        _paused, _since = True, time.monotonic()
        loop = asyncio.get_running_loop()
        if _watch is None or _watch_loop is not loop:  # none yet, or another loop's
            _watch_loop, _watch = loop, loop.call_later(MAX_PAUSE, _watch_over, loop)


def _watch_over(loop: asyncio.AbstractEventLoop) -> None:
    """A pause that has lasted :data:`MAX_PAUSE` ends; one still shorter
    is watched again when it will have (none under way: no timer left)."""
    global _watch, _watch_loop
    if loop is not _watch_loop:  # the watch of a loop since left for another
        return
    _watch = _watch_loop = None
    if not _paused:
        return
    left = _since + MAX_PAUSE - time.monotonic()
    if left <= 0:
        resume()
    else:
        _watch_loop, _watch = loop, loop.call_later(left, _watch_over, loop)


def resume() -> None:
    """The collector back on, if :func:`pause` turned it off. Any resume
    does (two stores' batches overlapping lose a little of the pause, never
    the collector); the last runtime's close resumes too."""
    global _paused
    if _paused:
        _paused = False
        gc.enable()


def resume_soon(loop: asyncio.AbstractEventLoop) -> None:
    """:func:`resume` in ``loop``'s next iteration, after the awaiters a
    commit has just woken (at once when the loop is closed)."""
    try:
        loop.call_soon(resume)
    except RuntimeError:  # the loop is closed
        resume()
