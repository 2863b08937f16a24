"""Who holds a lease, and whether that holder is dead.

A lease owner is ``node:host:pid:instance``. On start, an engine reclaims at
once the leases of owners that are provably dead: same node name, same host,
and either the process is gone or it is this very process and that engine
instance is no longer running (it crashed or was abandoned). Any other
owner's leases are left to expire: we cannot see into other machines.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

__all__ = ["Owner", "is_dead", "new_owner"]

_live_instances: set[str] = set()


@dataclass(frozen=True, slots=True)
class Owner:
    node: str
    host: str
    pid: int
    instance: str

    def __str__(self) -> str:
        return f"{self.node}:{self.host}:{self.pid}:{self.instance}"

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        parts = text.rsplit(":", 3)
        if len(parts) != 4 or not (parts[2].isascii() and parts[2].isdigit()):
            return None
        return cls(parts[0], parts[1], int(parts[2]), parts[3])

    def mark_live(self) -> None:
        _live_instances.add(self.instance)

    def mark_gone(self) -> None:
        _live_instances.discard(self.instance)


def new_owner(node: str) -> Owner:
    return Owner(node.replace(":", "_"), socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])


def is_dead(other: str, me: Owner) -> bool:
    """Whether the lease owner ``other`` is provably dead (see module doc)."""
    parsed = Owner.parse(other)
    if parsed is None or parsed.node != me.node or parsed.host != me.host:
        return False
    if parsed.pid == me.pid:
        return parsed.instance not in _live_instances
    return not _pid_alive(parsed.pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
