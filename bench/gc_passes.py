"""What Python's garbage collector costs under conc200, by generation, with
the runtime's freeze of its starting heap (agent_node/collector.py) and
without it (``AGENT_NODE_GC_FREEZE=0``), each in a process of its own.

    .venv/bin/python bench/gc_passes.py [--rounds 2] [--batches 10]

Per run: one Runtime on a fresh SQLite file, a warm-up, then ``--batches``
batches of 200 concurrent five-step workflows (``bench/ours.py``'s); prints
steps/s and, per generation, how many passes ran and the milliseconds they
took (``gc.callbacks``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


async def _one(batches: int) -> dict[str, object]:
    sys.path.insert(0, str(HERE))
    from ours import build_workflows

    from agent_node import Runtime

    passes = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    began = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            seen = passes[info["generation"]]
            seen[0] += 1
            seen[1] += time.perf_counter() - began[0]

    seq, conc, _, state = build_workflows()
    with tempfile.TemporaryDirectory() as directory:
        async with Runtime(f"sqlite:///{directory}/gc.db") as rt:
            await rt.run(seq, state())
            await asyncio.gather(*(rt.run(conc, state()) for _ in range(200)))
            tracked, frozen = len(gc.get_objects()), gc.get_freeze_count()
            gc.callbacks.append(timed)
            started = time.perf_counter()
            for _ in range(batches):
                await asyncio.gather(*(rt.run(conc, state()) for _ in range(200)))
            elapsed = time.perf_counter() - started
            gc.callbacks.remove(timed)
    return {
        "freeze": os.environ.get("AGENT_NODE_GC_FREEZE", "1") != "0",
        "steps_per_s": round(batches * 200 * 5 / elapsed),
        "tracked": tracked,
        "frozen": frozen,
        "passes": {g: {"n": n, "ms": round(s * 1000, 1)} for g, (n, s) in passes.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_one(args.batches))))
        return
    for _ in range(args.rounds):
        for freeze in ("0", "1"):
            done = subprocess.run(
                [sys.executable, __file__, "--child", "--batches", str(args.batches)],
                capture_output=True,
                text=True,
                env={**os.environ, "AGENT_NODE_GC_FREEZE": freeze},
                check=True,
            )
            print(done.stdout.strip())


if __name__ == "__main__":
    main()
