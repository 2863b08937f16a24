"""Named fault points: tests arm them to crash the engine at exact places.

The engine calls :func:`hit` at each point below. Unarmed, a hit costs one
dictionary lookup. Armed from a test (:func:`arm`), it raises
:class:`InjectedCrash` — a ``BaseException`` nothing in the engine catches, so
the engine stops as if its process died: leases stay held, nothing is
released. Armed through the environment (``AGENT_NODE_FAULTS=point[:N]``,
comma-separated; ``point@node[:N]`` counts only that node's hits), the N-th
hit SIGKILLs the process itself, for crash tests with real subprocesses.

Points:

``after_create``       the execution row is committed, no node has run
``after_claim``        a node visit is leased and ``node_started`` committed
``after_effect``       the node body ran; its result is not committed
``after_commit``       the result is committed; the next node has not started
``in_wait_resolution`` inside the transaction that resolves a wait (rolled back)
``after_wait_resolution`` the resolution is committed; the next node has not run
``in_inform``          inside the transaction that applies news about a visit
``after_send``         a delegation's peer took the task; its answer is not recorded
``after_relay``        our caller's answer reached the peer; that is not recorded

Interleave points are their asynchronous twins, for race tests: at
:func:`reached` the code awaits what a test put there with :func:`on` (say,
another writer's transaction), so two writers meet at an exact place rather
than by luck. Unset, a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agent_node.errors import ControlSignal

__all__ = ["POINTS", "InjectedCrash", "arm", "disarm", "hit", "on", "reached"]

POINTS = frozenset(
    {
        "after_create",
        "after_claim",
        "after_effect",
        "after_commit",
        "in_wait_resolution",
        "after_wait_resolution",
        "in_inform",
        "after_send",
        "after_relay",
    }
)


class InjectedCrash(ControlSignal):
    """A simulated process crash at a named fault point."""


@dataclass
class _Arming:
    remaining_skips: int
    kill: bool
    node: str | None


_armed: dict[str, _Arming] = {}


def arm(point: str, *, skip: int = 0, node: str | None = None, kill: bool = False) -> None:
    """Crash at the ``skip + 1``-th hit of ``point`` (only for ``node`` when given)."""
    if point not in POINTS:
        raise ValueError(f"unknown fault point {point!r} (known: {', '.join(sorted(POINTS))})")
    _armed[point] = _Arming(skip, kill, node)


def disarm() -> None:
    _armed.clear()
    _interleaved.clear()


def hit(point: str, node: str | None = None) -> None:
    arming = _armed.get(point)
    if arming is None or (arming.node is not None and arming.node != node):
        return
    if arming.remaining_skips > 0:
        arming.remaining_skips -= 1
        return
    del _armed[point]
    if arming.kill:
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedCrash(f"injected crash at {point}" + (f" (node {node})" if node else ""))


Interleave = Callable[[str, Any], Awaitable[None]]
_interleaved: dict[str, Interleave] = {}


def on(point: str, action: Interleave | None) -> None:
    """Await ``action(point, subject)`` whenever the code reaches ``point``
    (None: stop)."""
    if action is None:
        _interleaved.pop(point, None)
    else:
        _interleaved[point] = action


async def reached(point: str, subject: Any = None) -> None:
    """An interleave point: run what a test put here, if anything."""
    action = _interleaved.get(point)
    if action is not None:
        await action(point, subject)


def _arm_from_environment() -> None:
    for item in filter(None, os.environ.get("AGENT_NODE_FAULTS", "").split(",")):
        where, _, count = item.strip().partition(":")
        point, _, node = where.partition("@")
        arm(point, skip=max(0, int(count or "1") - 1), kill=True, node=node or None)


_arm_from_environment()
