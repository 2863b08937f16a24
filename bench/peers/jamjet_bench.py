"""JamJet's in-process durable mode (``jamjet.durable``) on a SQLite file.

    python bench/peers/jamjet_bench.py <seq200|conc200|wait2000|import>
        [--variant durable] --dir TMPDIR

Runs in ``bench/.venv-jamjet`` (Python 3.12; jamjet requires >= 3.12).

What "durable" means in jamjet 0.12 (read from the installed source):
``jamjet.durable`` memoises each ``@durable`` call under an idempotency key
(execution id from ``durable_run(...)`` + function qualname + args) in a
``SqliteCache`` (WAL, synchronous left at SQLite's default FULL).  A step's
result is committed before the call returns, so a re-run of the same
execution skips completed steps.  There is no workflow/status record: only
step results.  (``Workflow.run()`` is in-process but keeps nothing on disk,
and ``LocalRuntime``'s ``CheckpointStore`` checkpoints one entry-point call of
a ``@DurableAgent``, one DB file per execution -- neither is a per-step
durable workflow.)

  seq200   ``with durable_run(eid):`` 200 calls of a sync ``@durable`` no-op
           step (distinct args, so no cache hits).  Sync ``@durable`` does an
           atomic get-or-compute (BEGIN IMMEDIATE; SELECT; INSERT; COMMIT) on a
           fresh sqlite3 connection per call.
  conc200  200 asyncio tasks, each ``with durable_run(eid):`` awaiting 5 async
           ``@durable`` steps (async wrapper: cache.get, await fn, cache.put;
           the sqlite calls are synchronous, on the event-loop thread).
  wait2000 unavailable: the in-process mode has no durable wait / sleep /
           external-event primitive (``JamjetClient.send_external_event`` and
           human-approval nodes need the separate JamJet runtime server).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (
    CONC_RUNS,
    CONC_STEPS,
    CONC_WORKFLOWS,
    SEQ_RUNS,
    SEQ_STEPS,
    block_network,
    conc_metrics,
    emit,
    emit_unavailable,
    package_versions,
    parse_args,
    run_import_scenario,
    seq_metrics,
)

SYSTEM = "jamjet"
args = parse_args(default_variant="durable")
block_network()
VERSIONS = package_versions("jamjet", "pydantic")
VARIANT = args.variant
os.environ["JAMJET_DURABLE_DIR"] = str(Path(args.dir).resolve())  # never touch ~/.jamjet

if args.scenario == "import":
    run_import_scenario(SYSTEM, "-", "import jamjet", VERSIONS)
    sys.exit(0)
if args.scenario == "floor":
    emit_unavailable(SYSTEM, VARIANT, "floor", "floor is a raw-sqlite scenario")
    sys.exit(0)
if args.scenario == "wait2000":
    emit_unavailable(
        SYSTEM,
        VARIANT,
        "wait2000",
        "jamjet 0.12's in-process durable mode (jamjet.durable / LocalRuntime) has no durable "
        "wait, sleep or external-event primitive (policies.approval is a blocking in-process "
        "callback); durable approvals/external events need the separate JamJet runtime server",
        versions=VERSIONS,
    )
    sys.exit(0)

import sqlite3  # noqa: E402

from jamjet.durable import SqliteCache, durable, durable_run  # noqa: E402

DB_PATH = Path(args.dir).resolve() / "jamjet-durable.db"
cache = SqliteCache(DB_PATH)


@durable(cache=cache)
def noop_step(i: int) -> dict:
    return {"i": i}  # must not be None (None results are treated as cache misses)


@durable(cache=cache)
async def noop_step_async(i: int) -> dict:
    return {"i": i}


def seq_one(eid: str) -> float:
    t0 = time.perf_counter()
    with durable_run(eid):
        for i in range(SEQ_STEPS):
            assert noop_step(i) == {"i": i}
    return time.perf_counter() - t0


async def conc() -> list[float]:
    async def wf(eid: str) -> int:
        with durable_run(eid):
            for i in range(CONC_STEPS):
                await noop_step_async(i)
        return CONC_STEPS

    async def batch(tag: str, n: int) -> float:
        t0 = time.perf_counter()
        res = await asyncio.gather(*(asyncio.create_task(wf(f"{tag}-{k}")) for k in range(n)))
        assert res == [CONC_STEPS] * n
        return time.perf_counter() - t0

    await batch("warm", 20)
    return [await batch(f"b{r}", CONC_WORKFLOWS) for r in range(CONC_RUNS)]


def rows() -> int:
    con = sqlite3.connect(str(DB_PATH))
    try:
        return con.execute("SELECT count(*) FROM durable_cache").fetchone()[0]
    finally:
        con.close()


def main() -> None:
    if args.scenario == "seq200":
        seq_one("warmup")
        runs = [seq_one(f"seq{r}") for r in range(SEQ_RUNS)]
        assert rows() == SEQ_STEPS * (SEQ_RUNS + 1), rows()
        emit(
            SYSTEM,
            VARIANT,
            "seq200",
            seq_metrics(runs),
            note=f"jamjet.durable: {SEQ_STEPS} sync @durable steps in one durable_run; SqliteCache "
            f"(WAL, synchronous=FULL default); median of {SEQ_RUNS} after 1 warm-up",
            versions=VERSIONS,
        )
    elif args.scenario == "conc200":
        runs = asyncio.run(conc())
        assert rows() == CONC_STEPS * (20 + CONC_RUNS * CONC_WORKFLOWS), rows()
        emit(
            SYSTEM,
            VARIANT,
            "conc200",
            conc_metrics(runs),
            note=f"jamjet.durable: {CONC_WORKFLOWS} asyncio tasks x {CONC_STEPS} async @durable "
            f"steps (sqlite I/O runs synchronously on the loop); median of {CONC_RUNS} batches",
            versions=VERSIONS,
        )


if __name__ == "__main__":
    main()
