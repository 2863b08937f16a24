"""A peer's streams that stall are closed; none outlives its delegation.

Real processes over mutual TLS: B (ours, streams but does not push) behind
a TCP front in this test; A relays three tasks to B and follows each over
SSE through the front. The front then stalls every connection it carries
(bytes stop both ways, nothing is closed: a network or a peer that hangs)
while new connections pass. B's pings no longer reach A: after
``STREAM_SILENCE`` A closes each stream, polls over a new connection (B's
task is still going on) and follows the task again, over a connection that
passes: each task completes from its stream's news, and A holds no
connection to the stalled front (before: the three streams stayed open for
good, a descriptor and one of the 100 follow places each, and the tasks
completed only at the safety-net poll; a walk saw the streams 17 minutes
later).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from e2e.procs import Spawn, opened, wait_until
from e2e.test_delegation import HELLO, Net, _with_steps, events_of, finished, send
from support.certs import make_certs

from agent_node.a2a.peers.calls import STREAM_SILENCE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

#: Seconds B works on each task: past the stall and A's silence deadline.
WORK = int(STREAM_SILENCE) + 15


class StallingFront:
    """A TCP front on ``port`` to ``upstream``: bytes copied both ways until
    :meth:`stall`, after which the connections it carries copy nothing more
    and are never closed by it (an end the peer closes is not passed on);
    new ones pass. ``held``: the stalled connections whose client has not
    closed them."""

    def __init__(self, port: int, upstream: int) -> None:
        self.port, self.upstream = port, upstream
        self.held = 0
        self._stalled = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._jobs: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    def stall(self) -> None:
        self._stalled.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for job in list(self._jobs):
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stalls = not self._stalled.is_set()  # a connection made after the stall passes
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer, stalls, hold=False)),
            asyncio.create_task(self._pipe(up_reader, writer, stalls, hold=True)),
        ]
        self._jobs.update(pipes)
        self.held += stalls
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.held -= stalls
            for pipe in pipes:
                pipe.cancel()
            self._jobs.difference_update(pipes)
            writer.close()
            up_writer.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stalls: bool, hold: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if stalls and self._stalled.is_set():
                    continue  # swallowed: nothing gets through any more
                writer.write(data)
                await writer.drain()
        if hold and stalls and self._stalled.is_set():
            await asyncio.Event().wait()  # the peer's close is not passed on either


def _connections_to(pid: int, port: int) -> int:
    """How many TCP connections process ``pid`` holds open to ``port``."""
    return sum(
        1
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


async def _followed(net: Net, tasks: list[dict[str, Any]]) -> bool:
    """Whether each task's delegation is followed over its stream (the
    watchdog then leaves its row to the safety-net poll, ``max_poll`` away)."""
    async with opened(net.store("a")) as store:
        rows = [row for t in tasks for row in await store.delegations(t["id"])]
    return len(rows) == len(tasks) and all(
        row.state == "sent" and row.next_poll_at > time.time() + 30 for row in rows
    )


async def test_streams_that_stall_are_closed_and_their_delegations_complete(
    tmp_path: Path, spawn: Spawn
) -> None:
    net = Net(tmp_path, make_certs(tmp_path / "certs", "a", "b", "alice"), spawn)
    slow = _with_steps(net.root / "slow.yaml")
    # B's tasks outlast the stall's silence: A follows them again to learn their end.
    slow.write_text(HELLO.read_text().replace("duration: 500ms", f"duration: {WORK}s"))
    inner = net.port("b-inner")
    config = net.configure("b", {"greet": slow}, [], f"public_url: {net.url('b')}\n")
    text = config.read_text().replace(f"port: {net.port('b')}", f"port: {inner}")
    config.write_text(text.replace("push: {allow: [127.0.0.0/8]}", "push: {enabled: false}"))
    net.configure("a", {"relay": net.relay("a", "b", "greet", poll=0.5)}, ["b"])
    front = StallingFront(net.port("b"), inner)
    await front.start()
    try:
        await net.start("b")
        a = await net.start("a")
        tasks = [await send(net, "a", f"Ada {i}", blocking=False) for i in range(3)]
        await wait_until(lambda: _followed(net, tasks), "A to follow B's tasks", timeout=30)
        await asyncio.sleep(1.0)  # their streams open
        assert _connections_to(a.pid, net.port("b")) >= 3
        front.stall()
        stalled_at = time.monotonic()
        assert front.held >= 3  # the three streams, and any idle connection of A's pool

        async def all_done() -> bool:
            return all([await finished(net.store("a"), t["id"]) for t in tasks])

        await wait_until(all_done, "A's tasks to complete", timeout=WORK + 60)
        for task in tasks:
            events = await events_of(net.store("a"), task["id"])
            (resolved,) = [e.data for e in events if e.kind == "wait_resolved"]
            assert resolved["payload"]["via"] == "stream", resolved  # followed again
        await wait_until(
            lambda: front.held == 0,
            "A to close every connection the front stalled",
            timeout=max(5.0, STREAM_SILENCE + 30 - (time.monotonic() - stalled_at)),
        )
    finally:
        await front.close()
