"""Peers down for minutes: parked delegations wait, and all complete after.

Node A delegates to two peers of ours, B and C, over mutual TLS. B is
down from the start: A takes 1,000 tasks for it, each parks its delegation
in ``sending``. C is up: A sends it 1,000 tasks, which C works on slowly;
once every one of them is with C (sent, parked), C is SIGKILLed. Both
stay down for ``AGENT_NODE_OUTAGE_SECONDS`` (120 by default) while A keeps
running; then both come back on their ports and stores. Every task must
complete with its own answer, and each peer must hold exactly one task per
delegation (no duplicate from the retries). A's CPU while the peers were
down, and the time to complete after they returned, are printed (and
measured the same way by ``bench/delegation/outage_bench.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from e2e.procs import Spawn, opened, wait_until
from e2e.test_delegation import HELLO, V10, Net, _with_steps, client
from support.certs import make_certs

OUTAGE = float(os.environ.get("AGENT_NODE_OUTAGE_SECONDS", "120"))
COUNT = int(os.environ.get("AGENT_NODE_OUTAGE_COUNT", "1000"))

pytestmark = [pytest.mark.slow, pytest.mark.timeout(OUTAGE + 600)]


@pytest.fixture
def net(tmp_path: Path, spawn: Spawn) -> Net:
    return Net(tmp_path, make_certs(tmp_path / "certs", "a", "b", "c", "alice"), spawn)


async def _send_all(net: Net, skill: str, count: int) -> list[str]:
    gate = asyncio.Semaphore(32)

    async def one(http: Any, i: int) -> str:
        message = {
            "messageId": f"{skill}-{i}",
            "role": "ROLE_USER",
            "parts": [{"data": {"name": f"{skill} {i}"}}],
            "metadata": {"skill": skill},
        }
        params = {"message": message, "configuration": {"returnImmediately": True}}
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params}
        async with gate:
            answer = (await http.post(f"{net.url('a')}/a2a", json=body, headers=V10)).json()
        return str(answer["result"]["task"]["id"])

    # A task group, not gather: should one send fail, the others are
    # cancelled and the client closed, not left to the next test's loop.
    async with client(net.certs) as http, asyncio.TaskGroup() as group:
        sends = [group.create_task(one(http, i)) for i in range(count)]
    return [send.result() for send in sends]


async def _count(url: str, **filters: Any) -> int:
    async with opened(url) as store:
        return await store.count_executions(**filters)


async def _all_sent(url: str, ids: list[str]) -> bool:
    async with opened(url) as store:
        for execution_id in ids:
            rows = await store.delegations(execution_id)
            if not rows or not rows[0].remote_task_id:
                return False
    return True


async def test_peers_down_for_minutes_then_every_delegation_completes_once(net: Net) -> None:
    slow = _with_steps(net.root / "slow.yaml")
    # C's tasks outlast the sending and the kill: they are in flight when it dies.
    slow.write_text(HELLO.read_text().replace("duration: 500ms", "duration: 60s"))
    net.configure("b", {"greet": HELLO}, [])
    net.configure("c", {"greet": slow}, [])
    to_b = net.relay("ab", "b", "greet", poll=2.0)
    to_c = net.relay("ac", "c", "greet", poll=2.0)
    to_c.write_text(to_c.read_text().replace("id: relay", "id: relay-c"))
    net.configure("a", {"one": to_b, "two": to_c}, ["b", "c"])
    c = await net.start("c")
    a = await net.start("a")

    two = await _send_all(net, "two", COUNT)  # C takes them, slowly
    await wait_until(lambda: _all_sent(net.store("a"), two), "C to have them all", timeout=300)
    c.send(signal.SIGKILL)
    c.wait(10)
    assert await _count(net.store("c"), status=["completed"]) == 0  # all in flight
    one = await _send_all(net, "one", COUNT)  # B is down: they park in sending

    process = psutil.Process(a.pid)
    cpu_before, down_at = process.cpu_times(), time.monotonic()
    await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
    cpu_after = process.cpu_times()
    outage = time.monotonic() - down_at
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    assert await _count(net.store("a"), status=["failed"]) == 0  # nothing gave up meanwhile

    back = time.monotonic()
    await net.start("b")
    await net.start("c")

    async def all_done() -> bool:
        return await _count(net.store("a"), status=["completed"]) == 2 * COUNT

    await wait_until(all_done, "every delegation to complete", timeout=300, interval=1.0)
    took = time.monotonic() - back
    print(
        f"\noutage {outage:.0f} s with {2 * COUNT} delegations parked: A used {cpu:.2f} s CPU"
        f" ({100 * cpu / outage:.1f} % of a core); all completed {took:.1f} s after the peers"
        " returned"
    )
    async with opened(net.store("a")) as store:
        assert await store.count_executions(status=["failed", "waiting", "running"]) == 0
        for skill, ids in (("one", one), ("two", two)):
            for execution_id in ids[:: max(1, COUNT // 50)]:
                record = await store.get(execution_id)
                assert record is not None
                assert json.loads(record.state)["verdict"].startswith(f"{skill} ")
    for peer in ("b", "c"):
        held = await _count(net.store(peer))
        assert held == COUNT, f"{peer} holds {held} tasks for {COUNT} delegations"
        assert await _count(net.store(peer), status=["completed"]) == COUNT
