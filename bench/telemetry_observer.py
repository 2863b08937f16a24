"""What the traces observer costs per node visit, apart from everything else
(issue 17): the commits of real runs, recorded once, replayed through the
node's commit observer (ledger, spans written, bundles handed over).

    .venv/bin/python bench/telemetry_observer.py [--reps 20]
    .venv/bin/python bench/telemetry_observer.py --instructions

A ``Runtime`` on ``memory://`` runs the workflows of ``telemetry_bench.py``
(``conc``: 200 executions of 5 no-op steps at once; ``seq``: one of 200),
each with a ``traceparent`` as an A2A task has; the commits its store
reports are kept. Each measure then replays them through the node's
commit observer (:class:`~agent_node.telemetry.traces_follow.Follower`)
with the batch processor replaced by a list (the exporter's thread is not
in it: ``telemetry_bench.py`` has the whole node):

* timed: the best of ``--reps`` replays, CPU µs per visit (a fresh
  follower each; the span factory's per-node parts stay made, as in a
  serving node);
* ``--instructions``: valgrind's callgrind counts a child replaying once and
  one replaying six times; the difference over five replays' visits is the
  instructions a visit costs — the same on a busy machine.

``conc`` includes each execution's own spans and bookkeeping (one per five
visits); ``seq`` is the visit alone.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import telemetry_bench  # noqa: E402  (the same workflows)

REPLAY = "_replay"
MEASURES = ("seq", "conc")


async def record() -> dict[str, list[Any]]:
    """The commits of a ``conc`` batch and a ``seq`` run, as the observer saw them."""
    from agent_node.runtime import Runtime
    from agent_node.tracing import new_traceparent

    seq, conc, state = telemetry_bench._workflows()
    runtime = Runtime("memory://", node="bench", scope="all")
    await runtime.start()
    for workflow in (seq, conc):
        runtime.workflows.add(workflow)
    seen: list[Any] = []
    runtime.store.observe(lambda told: seen.extend((copy.copy(e), evs) for e, evs in told))

    async def run(workflow: Any) -> None:
        metadata = {"traceparent": new_traceparent(), "trace_root": True}
        execution_id, _ = await runtime.engine.submit(workflow, state(), metadata=metadata)
        await runtime.engine.wait(execution_id)
        runtime.engine.release(execution_id)

    await asyncio.gather(*(run(conc) for _ in range(telemetry_bench.CONC_WORKFLOWS)))
    runtime.store.tell_observers()
    commits = {"conc": list(seen)}
    seen.clear()
    await run(seq)
    runtime.store.tell_observers()
    commits["seq"] = list(seen)
    await runtime.close()
    return {k: [(e, list(evs)) for e, evs in v] for k, v in commits.items()}


async def replay(path: Path, measure: str, reps: int) -> float:
    """CPU µs per visit, the best of ``reps`` replays (after one unmeasured)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from agent_node.runtime import Runtime
    from agent_node.store.notify import HELD
    from agent_node.telemetry.traces import _spec_finder
    from agent_node.telemetry.traces_follow import Follower
    from agent_node.telemetry.traces_spans import SpanFactory

    commits = pickle.loads(path.read_bytes())[measure]
    seq, conc, _ = telemetry_bench._workflows()
    runtime = Runtime("memory://", node="bench", scope="all")
    for workflow in (seq, conc):
        runtime.workflows.add(workflow)
    visits = sum(1 for _, events in commits for e in events if e.kind == "node_completed")
    handed: list[bytes] = []
    scope = InstrumentationScope("agent_node")
    spans = SpanFactory(Resource.create({}), scope, "bench", _spec_finder(runtime))
    gc.collect()
    gc.freeze()
    best = float("inf")
    for rep in range(reps + 1):
        follower = Follower(spans, handed.append, lambda request: None)  # no store, no pipeline
        began = time.process_time()
        for at in range(0, len(commits), HELD):  # as the store tells them
            follower.committed(commits[at : at + HELD])
        follower.stop()
        took = (time.process_time() - began) / visits * 1e6
        if rep:
            best = min(best, took)
    return best


def instructions(path: Path, measure: str) -> float:
    counts = []
    for reps in (0, 5):
        with tempfile.TemporaryDirectory() as out:
            done = subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    f"--callgrind-out-file={out}/cg",
                    sys.executable,
                    __file__,
                    REPLAY,
                    str(path),
                    measure,
                    str(reps),
                ],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict orders each time
            )
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise RuntimeError(done.stderr[-2000:])
        counts.append(int(found[1]))
    commits = pickle.loads(path.read_bytes())[measure]
    visits = sum(1 for _, events in commits for e in events if e.kind == "node_completed")
    return (counts[1] - counts[0]) / (5 * visits)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == REPLAY:
        print(asyncio.run(replay(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--instructions", action="store_true")
    args = parser.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        sys.exit("--instructions needs valgrind")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "commits.pickle"
        path.write_bytes(pickle.dumps(asyncio.run(record())))
        for measure in MEASURES:
            if args.instructions:
                print(f"{measure}: {instructions(path, measure):,.0f} instructions per visit")
            else:
                took = asyncio.run(replay(path, measure, args.reps))
                print(f"{measure}: {took:.2f} µs CPU per visit (best of {args.reps})")


if __name__ == "__main__":
    main()
