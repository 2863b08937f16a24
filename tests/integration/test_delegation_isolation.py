"""A peer that hangs never delays the delegations to the others: it holds at
most its share of the watchdog's slots, its card fetch ends at the
directory's timeout, and it is then down — one WARNING, its rows put back
without a call — until it answers again.

The hung peer is a real TCP listener on loopback that takes connections
and never says a word; the healthy one is :class:`FakePeer`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from support.delegation_rig import delegating
from support.fake_peer import PEER_URL, FakePeer

from agent_node.a2a.peers.delegator import PeerDelegator
from agent_node.a2a.peers.directory import Directory
from agent_node.a2a.peers.watchdog import Watchdog
from agent_node.config import PeerConfig
from agent_node.nodes.delegate import DelegateExecutor
from agent_node.runtime import Runtime
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.yaml_loader import load_yaml_text


def _to_hung(n: int) -> CompiledWorkflow:
    return load_yaml_text(
        f"""
workflow:
  id: hung-{n}
  version: "1"
  start: hand
  state_schema:
    type: object
    properties: {{answer: {{type: object}}}}
nodes:
  hand: {{type: delegate, peer: h, text: "work", output: answer, next: done}}
  done: {{type: end}}
"""
    )


@pytest.fixture
async def silent() -> AsyncIterator[str]:
    """A server that takes connections and never answers: its URL."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # until the client gives up

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def _ended(runtime: Runtime, execution_id: str) -> str:
    record = await runtime.store.get(execution_id)
    return record.status if record is not None else "?"


async def test_a_hung_peer_does_not_delay_the_others(
    store_url: str, silent: str, caplog: pytest.LogCaptureFixture
) -> None:
    peer = FakePeer()
    client = httpx.AsyncClient(mounts={PEER_URL: httpx.MockTransport(peer.handle)})
    peers = [PeerConfig(name="p", url=PEER_URL), PeerConfig(name="h", url=silent)]
    directory = Directory(peers, client, card_timeout=2.0)
    delegator = PeerDelegator(directory, client, push_url=None, secret=b"s")
    runtime = Runtime(
        store_url, node="a", scope="all", executors={"delegate": DelegateExecutor(delegator)}
    )
    await runtime.start()
    # Four slots: on the old code the hung peer's four rows took them all.
    watchdog = Watchdog(runtime, delegator, interval=0.1, concurrency=4)
    caplog.set_level(logging.INFO, logger="agent_node.a2a.peers.watchdog")
    try:
        hung = [await runtime.start_execution(_to_hung(i), {}) for i in range(6)]
        await asyncio.sleep(0.3)  # their rows are due first
        await watchdog.start()
        await asyncio.sleep(0.3)
        started = time.monotonic()
        healthy = await runtime.start_execution(delegating("hi"), {})
        while await _ended(runtime, healthy) != "completed":
            assert time.monotonic() - started < 1.5, "the healthy peer's delegation waited"
            await asyncio.sleep(0.02)
        # The hung peer's card fetch ends at its timeout: the peer is down,
        # said once, and its rows wait with why.
        deadline = time.monotonic() + 10
        while not any("is down" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the hung peer was never taken as down"
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.5)  # more tries, more probes: still one line
        downs = [r for r in caplog.records if "peer 'h' is down" in r.getMessage()]
        assert len(downs) == 1 and downs[0].levelno == logging.WARNING
        assert "no answer within 2 s" in downs[0].getMessage()
        rows = [row for e in hung for row in await runtime.store.delegations(e)]
        assert len(rows) == 6 and all(row.state == "sending" for row in rows)
        assert all("no answer within 2 s" in (row.last_error or "") for row in rows if row.polls)
        assert {await _ended(runtime, e) for e in hung} == {"waiting"}
    finally:
        await watchdog.close()
        await runtime.close()
        await client.aclose()
