"""Resident memory of open A2A streams on a node, over mutual TLS (issue 18).

    .venv/bin/python bench/a2a/sse_memory.py [--streams 200] [--plain | --http2]

Serves bench/delegation/park.yaml (a task that waits forever) with
``agent-node serve`` over mutual TLS (certificates from bench/a2a/mtls.py),
opens ``--streams`` ``SendStreamingMessage`` streams at once, each on its own
TLS connection (``--http2``: as streams of HTTP/2 connections, up to
:data:`PER_CONNECTION` on each), reads each stream's first event (the task is parked and
WORKING), and keeps them open (it checks that the node still holds as many
connections while it measures). The node's RSS (psutil, after a settle) is
read before, with the streams open, and after they are closed; prints the
RSS per open stream and what stays per stream after they closed.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import mtls  # noqa: E402

PARK = HERE.parent / "delegation" / "park.yaml"


def serve(scratch: Path, certs: Path | None) -> tuple[subprocess.Popen[str], str]:
    conf = scratch / "node.yaml"
    conf.write_text(
        "name: streams\nlisten: {host: 127.0.0.1, port: 0}\n"
        f"store: sqlite:///{scratch / 'streams.db'}\n"
        f"skills:\n  - {{id: park, workflow: '{PARK}', default: true}}\n"
        "limits: {max_concurrent_per_caller: 0}\n"
    )
    flags = ["--insecure-dev"]
    if certs is not None:
        flags = ["--cert-dir", str(certs), "--identity", mtls.SERVER]
    node = subprocess.Popen(
        [sys.executable, "-m", "agent_node.cli.main", "serve", "--config", str(conf), *flags],
        stdout=subprocess.PIPE,
        stderr=open(scratch / "node.err", "w"),
        text=True,
    )
    assert node.stdout is not None
    first = node.stdout.readline()
    if "listening on" not in first:
        raise SystemExit(first + (scratch / "node.err").read_text())
    return node, first.split()[-1]


SETTLE = 6.0
#: Streams on one HTTP/2 connection with ``--http2`` (the node allows 256;
#: httpx, 100 at once: past that, a request waits for a stream to end).
PER_CONNECTION = 100


async def settle(pid: int) -> tuple[int, float]:
    """RSS after a settle, and the CPU seconds the node spent settling.
    The settle is longer than the node's heap trim period (agent_node/heap.py):
    what a burst of handshakes freed is given back before RSS is read."""
    process = psutil.Process(pid)
    cpu = sum(process.cpu_times()[:2])
    await asyncio.sleep(SETTLE)
    return int(process.memory_info().rss), sum(process.cpu_times()[:2]) - cpu


def established(pid: int) -> int:
    """The node's established TCP connections: its open streams."""
    return sum(c.status == psutil.CONN_ESTABLISHED for c in psutil.Process(pid).net_connections())


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--plain", action="store_true", help="plain HTTP instead of mTLS")
    parser.add_argument("--http2", action="store_true", help="streams share HTTP/2 connections")
    args = parser.parse_args()
    if args.http2 and args.plain:
        raise SystemExit("--http2 is served over TLS only")
    scratch = Path(tempfile.mkdtemp(prefix="agent-node-sse-"))
    certs = None if args.plain else mtls.make(scratch / "certs")
    node, url = serve(scratch, certs)
    verify: object = mtls.client_context(certs) if certs else False
    try:
        # Warm: one stream opened and closed, so one-time costs are not counted.
        connections = -(-args.streams // PER_CONNECTION) if args.http2 else args.streams

        def new_clients() -> list[httpx.AsyncClient]:
            return [
                httpx.AsyncClient(verify=verify, timeout=60, http2=args.http2)  # type: ignore[arg-type]
                for _ in range(connections)
            ]

        clients = new_clients()
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendStreamingMessage",
            "params": {"message": {"role": "ROLE_USER", "parts": [{"data": {"n": 1}}]}},
        }
        headers = {"A2A-Version": "1.0", "Accept": "text/event-stream"}

        async def hold(
            client: httpx.AsyncClient, n: int, opened: asyncio.Event, done: asyncio.Event
        ) -> None:
            message = {"role": "ROLE_USER", "parts": [{"data": {"n": 1}}], "messageId": f"m{n}"}
            payload = {**body, "params": {"message": message}}
            async with client.stream("POST", f"{url}/a2a", json=payload, headers=headers) as answer:
                # Held, not dropped after the break: a dropped line iterator is
                # finalized at once, and that closes the connection.
                lines = answer.aiter_lines()
                async for line in lines:
                    if line.startswith("data:"):
                        break
                opened.set()
                await done.wait()
                await lines.aclose()

        warm_done = asyncio.Event()
        warm_open = asyncio.Event()
        first = httpx.AsyncClient(verify=verify, timeout=60, http2=args.http2)  # type: ignore[arg-type]
        warm = asyncio.create_task(hold(first, -1, warm_open, warm_done))
        await warm_open.wait()
        warm_done.set()
        await warm
        await first.aclose()
        before, idle = await settle(node.pid)
        rounds = []
        for round_no in range(2):  # the second round: is what the first left reused?
            done = asyncio.Event()
            events = [asyncio.Event() for _ in range(args.streams)]
            began = time.perf_counter()
            holders = [
                asyncio.create_task(
                    hold(clients[n % connections], round_no * 10_000 + n, events[n], done)
                )
                for n in range(args.streams)
            ]
            await asyncio.gather(*(e.wait() for e in events))
            opened_in = time.perf_counter() - began
            during, busy = await settle(node.pid)
            connected = established(node.pid)
            if connected != connections:
                raise SystemExit(f"{connected} connections open, not {connections}")
            done.set()
            await asyncio.gather(*holders)
            for client in clients:
                await client.aclose()
            clients = new_clients()
            after, _ = await settle(node.pid)
            rounds.append((opened_in, during, after, busy))
    finally:
        node.terminate()
        node.wait(30)
    n = args.streams
    kind = "plain HTTP" if args.plain else "mutual TLS"
    kind += f", HTTP/2 on {connections} connection(s)" if args.http2 else ""
    print(
        f"{n} streams over {kind}; RSS before: {before / 2**20:.1f} MiB;"
        f" CPU before: {idle / SETTLE:.1%}"
    )
    base = before
    for number, (opened_in, during, after, busy) in enumerate(rounds, 1):
        print(
            f"round {number}: opened in {opened_in:.2f} s; per open stream"
            f" {(during - base) / n / 1024:.1f} KiB; CPU while open {busy / SETTLE:.1%};"
            f" closed: {(after - before) / 2**20:.1f} MiB above the start"
        )
        base = after


if __name__ == "__main__":
    asyncio.run(main())
