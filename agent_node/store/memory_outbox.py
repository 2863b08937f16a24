"""The in-memory store: the rows that carry news to and from other agents.

A2A push configs (the outbox of pushes to our callers) and delegations (our
tasks at peers, as state machines): their writes, reads and claims, on the
tables of :mod:`.memory_tables`. Apart from the store because they are the
part of it the peers' machinery uses (push sender, watchdog), as
:mod:`.sqlite_outbox` and :mod:`.pg_outbox` are for the SQL stores.
"""

from __future__ import annotations

from agent_node.store.memory_tables import MemoryTables
from agent_node.store.records import DelegationRecord, PushClaim, PushConfigRecord, copied

__all__ = ["MemoryOutbox"]


class MemoryOutbox(MemoryTables):
    """Push configs and delegations of :class:`~.memory.MemoryStore`."""

    # -- push configs --------------------------------------------------------

    async def put_push_config(self, config: PushConfigRecord, limit: int | None = None) -> bool:
        key = (config.task_id, config.id)
        if limit is not None and key not in self._pushes:
            if sum(1 for task_id, _ in self._pushes if task_id == config.task_id) >= limit:
                return False
        self._pushes[key] = copied(config)
        return True

    async def take_back_push_config(
        self, put: PushConfigRecord, previous: PushConfigRecord | None
    ) -> bool:
        key = (put.task_id, put.id)
        held = self._pushes.get(key)
        if held is None or (held.created_at, held.config) != (put.created_at, put.config):
            return False
        if previous is None:
            del self._pushes[key]
        else:
            self._pushes[key] = copied(previous)
        return True

    async def push_configs(self, task_id: str) -> list[PushConfigRecord]:
        found = [copied(c) for c in self._pushes.values() if c.task_id == task_id]
        return sorted(found, key=lambda c: (c.created_at, c.id))

    async def delete_push_config(self, task_id: str, config_id: str) -> bool:
        return self._pushes.pop((task_id, config_id), None) is not None

    async def claim_pushes(
        self, owner: str, *, now: float, lease_until: float, limit: int
    ) -> list[PushClaim]:
        due: list[PushClaim] = []
        for config in sorted(self._pushes.values(), key=lambda c: c.next_attempt_at):
            task = self._executions.get(config.task_id)
            if len(due) == limit:
                break
            if task is None or config.settled or config.next_attempt_at > now:
                continue
            if config.lease_owner is not None and (config.lease_expires_at or 0.0) >= now:
                continue
            if task.last_seq > config.pushed_seq and task.status not in ("pending", "running"):
                config.lease_owner, config.lease_expires_at = owner, lease_until
                due.append(PushClaim(copied(config), task.last_seq, task.status))
        return due

    async def release_push(self, owner: str, config: PushConfigRecord) -> bool:
        held = self._pushes.get((config.task_id, config.id))
        if held is None or held.lease_owner != owner:
            return False
        released = copied(config)
        released.lease_owner = released.lease_expires_at = None
        self._pushes[(config.task_id, config.id)] = released
        return True

    # -- delegations ---------------------------------------------------------

    async def delegations_of_task(self, remote_task_id: str) -> list[DelegationRecord]:
        return [copied(d) for d in self._delegations.values() if d.remote_task_id == remote_task_id]

    async def delegations(self, execution_id: str) -> list[DelegationRecord]:
        found = [copied(d) for d in self._delegations.values() if d.execution_id == execution_id]
        return sorted(found, key=lambda d: d.sent_at)

    async def delegation(self, execution_id: str, node: str, visit: int) -> DelegationRecord | None:
        held = self._delegations.get((execution_id, node, visit))
        return copied(held) if held is not None else None

    async def claim_delegations(
        self, *, now: float, lease_until: float, limit: int, owner: str | None = None
    ) -> list[DelegationRecord]:
        due = sorted(
            (d for d in self._delegations.values() if d.next_poll_at <= now),
            key=lambda d: d.next_poll_at,
        )[:limit]
        for delegation in due:
            delegation.next_poll_at = lease_until
            delegation.polls += 1
            delegation.claimed_at = now
            at = (delegation.execution_id, delegation.node, delegation.visit)
            if owner is None:
                self._claimed.pop(at, None)
            else:
                self._claimed[at] = owner
        return [copied(d) for d in due]

    async def reschedule_delegation(
        self, delegation: DelegationRecord, next_poll_at: float, error: str | None = None
    ) -> bool:
        held = self._held(delegation)
        if held is not None:
            held.next_poll_at, held.last_error, held.claimed_at = next_poll_at, error, None
        return held is not None

    async def next_delegation_at(self) -> float | None:
        firsts = (d.next_poll_at for d in self._delegations.values() if d.polls == 0)
        return min(firsts, default=None)

    async def wake_delegations(self, peer: str, state: str, now: float, within: float) -> int:
        woken = [
            d
            for d in self._delegations.values()
            if d.peer == peer
            and d.state == state
            and now < d.next_poll_at <= within
            and d.last_error
        ]
        for delegation in woken:
            delegation.next_poll_at = now
        return len(woken)

    async def drop_delegation(self, delegation: DelegationRecord) -> bool:
        held = self._held(delegation)
        if held is not None:
            del self._delegations[(held.execution_id, held.node, held.visit)]
            self._claimed.pop((held.execution_id, held.node, held.visit), None)
        return held is not None

    def _held(self, delegation: DelegationRecord) -> DelegationRecord | None:
        """The row of ``delegation`` if it is still in its state and turn."""
        d = delegation
        held = self._delegations.get((d.execution_id, d.node, d.visit))
        if held is None or (held.state, held.turn) != (d.state, d.turn):
            return None
        return held
