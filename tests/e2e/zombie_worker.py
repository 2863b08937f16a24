"""A worker process for the zombie test: ``zombie_worker.py STORE NODE LEASE_TTL HEARTBEAT``.

Runs ``flows.py:five_steps`` with ``scope="all"`` and the given lease and
heartbeat (``on``/``off``) until SIGTERM, logging warnings to stderr. With a
short lease and no heartbeat, a worker that is paused (SIGSTOP) mid-step
loses its lease to another worker and must drop its result when it wakes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from agent_node import Runtime, load_workflow

FIVE_STEPS = f"{Path(__file__).resolve().parent / 'flows.py'}:five_steps"


async def main(url: str, node: str, lease_ttl: float, heartbeat: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    runtime = Runtime(url, node=node, scope="all", lease_ttl=lease_ttl, heartbeat=heartbeat)
    runtime.workflows.add(load_workflow(FIVE_STEPS))
    async with runtime:
        print(f"working as {runtime.engine.owner}", flush=True)
        await stop.wait()
    print("stopped", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    store_url, node_name, ttl, beat = sys.argv[1:]
    asyncio.run(main(store_url, node_name, float(ttl), beat == "on"))
