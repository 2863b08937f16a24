"""A node's delegation machinery in one process, driven step by step.

A :class:`Rig` is a runtime with a delegate executor, a :class:`Watchdog`
driven by hand (:meth:`Rig.drive`), and a :class:`FakePeer` behind
``httpx.MockTransport``: tests force interleavings (``faults.on``) and odd
peer answers at exact places, on every store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from agent_node.a2a.peers.delegator import PeerDelegator
from agent_node.a2a.peers.directory import Directory
from agent_node.a2a.peers.watchdog import Watchdog
from agent_node.config import PeerConfig
from agent_node.engine import faults
from agent_node.nodes.delegate import DelegateExecutor
from agent_node.runtime import Runtime
from agent_node.store.records import DelegationRecord, ExecutionRecord
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.yaml_loader import load_yaml_text
from support.fake_peer import PEER_URL, FakePeer

__all__ = ["Rig", "delegating", "rig"]


def delegating(text: str, extra: str = "") -> CompiledWorkflow:
    """A workflow whose one delegate node sends ``text`` to peer ``p``;
    ``extra``: more of the node's settings (YAML flow mapping items)."""
    settings = f'peer: p, text: "{text}", output: answer, next: done'
    if extra:
        settings += ", " + extra
    routed = "  failed: {type: end}\n" if "failed" in extra else ""
    return load_yaml_text(
        f"""
workflow:
  id: ask-{abs(hash((text, extra)))}
  version: "1"
  start: hand
  state_schema:
    type: object
    properties: {{answer: {{type: object}}}}
nodes:
  hand: {{type: delegate, {settings}}}
  done: {{type: end}}
{routed}"""
    )


@dataclass
class Rig:
    runtime: Runtime
    watchdog: Watchdog
    peer: FakePeer

    async def start(self, workflow: CompiledWorkflow) -> str:
        """Start an execution and wait until its delegation row is written."""
        execution_id = await self.runtime.start_execution(workflow, {})
        await until(lambda: self._has_row(execution_id), "the delegation row")
        return execution_id

    async def row(self, execution_id: str) -> DelegationRecord | None:
        rows = await self.runtime.store.delegations(execution_id)
        return rows[0] if rows else None

    async def due_now(self, execution_id: str) -> None:
        row = await self.row(execution_id)
        if row is not None:
            await self.runtime.store.reschedule_delegation(row, 0.0, row.last_error)

    async def drive(self) -> None:
        """Take up every row due now, and wait until that is done."""
        await self.watchdog.check_due()
        await self.watchdog.idle()

    async def finish(self, execution_id: str) -> ExecutionRecord:
        """Drive until the execution ends (rows made due at once)."""
        for _ in range(30):
            record = await self.runtime.store.get(execution_id)
            assert record is not None
            if record.status in ("completed", "failed", "canceled"):
                return record
            await self.due_now(execution_id)
            await self.drive()
            await asyncio.sleep(0.01)
        raise AssertionError(f"execution {execution_id} did not end")

    async def canceled(self, execution_id: str, rounds: int = 30) -> ExecutionRecord:
        """Drive a cancel until its delegation row is gone (rows made due at
        once); the execution, which is canceled."""
        for _ in range(rounds):
            if await self.row(execution_id) is None:
                break
            await self.due_now(execution_id)
            await self.drive()
        assert await self.row(execution_id) is None
        record = await self.runtime.store.get(execution_id)
        assert record is not None and record.status == "canceled"
        return record

    async def _has_row(self, execution_id: str) -> bool:
        return await self.row(execution_id) is not None


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def rig(store_url: str) -> AsyncIterator[Rig]:
    peer = FakePeer()
    client = httpx.AsyncClient(transport=httpx.MockTransport(peer.handle))
    directory = Directory([PeerConfig(name="p", url=PEER_URL)], client)
    delegator = PeerDelegator(directory, client, push_url=None, secret=b"s")
    executors = {"delegate": DelegateExecutor(delegator)}
    runtime = Runtime(store_url, node="a", scope="all", executors=executors)
    await runtime.start()
    watchdog = Watchdog(runtime, delegator)  # driven by hand: drive()
    try:
        yield Rig(runtime, watchdog, peer)
    finally:
        faults.disarm()
        await watchdog.close()
        await runtime.close()
        await client.aclose()
