"""LangGraph with its SQLite checkpointer on a file.

    python bench/peers/langgraph_bench.py <seq200|conc200|wait2000|import|big|append>
        [--variant sync|default] --dir TMPDIR

A "workflow" is a compiled ``StateGraph`` whose nodes are no-op steps
(``lambda s: {"n": s["n"] + 1}``) chained linearly; LangGraph checkpoints the
graph state after every super-step (= every node here).  The checkpointer is
``langgraph-checkpoint-sqlite`` on ``<dir>/lg.sqlite`` (it sets WAL;
``synchronous`` stays at SQLite's default FULL; one commit per put).

Variants (LangGraph's ``durability=`` argument of invoke/ainvoke)
  sync     ``durability="sync"``: the checkpoint is written before the next
           step starts (the DBOS-like, crash-safe-per-step mode).
  default  no argument = ``"async"``: the checkpoint of step N is written in
           the background while step N+1 runs (a crash can lose the last step).

API per scenario
  seq200   the faster of the two APIs (measured): sync ``SqliteSaver`` +
           ``graph.invoke`` (see ``--api`` to force async).
  conc200  ``AsyncSqliteSaver`` (one aiosqlite connection) + ``asyncio.gather``
           of 200 ``graph.ainvoke`` calls, each with its own thread_id.
  wait2000 ``AsyncSqliteSaver``; the first node calls ``interrupt()``, so each
           ``ainvoke`` returns with the thread checkpointed at the interrupt and
           nothing left running in memory (resume = ``Command(resume=...)``).
  big      ``bench/state_bench.py``'s, timed as ours (``bench/state_timing.py``):
           ``SqliteSaver`` + ``invoke``; the graph state holds a 1 MB str and
           a counter, and a linear graph of 50 nodes each returns
           ``{"n": n + 1}`` (a node returns the keys it changes).
  append   the same; the state's ``items`` key has the ``operator.add``
           reducer (what a LangGraph user writes for a growing list), and one
           node looping on itself 400 times (a conditional edge) returns
           ``{"items": [<one more 1 KB str>]}``.
"""

from __future__ import annotations

import asyncio
import operator
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Annotated, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse

from common import (
    CONC_RUNS,
    CONC_STEPS,
    CONC_WORKFLOWS,
    IDLE_SECONDS,
    SEQ_RUNS,
    SEQ_STEPS,
    WAIT_COUNT,
    block_network,
    conc_metrics,
    disk_bytes,
    emit,
    emit_unavailable,
    idle_cpu_async,
    package_versions,
    rss_bytes,
    run_import_scenario,
    seq_metrics,
    thread_count,
    wait_metrics,
)
from state_timing import APPEND_STEPS, BIG_STEPS, CHUNKS, TIMED_RUNS, Marks, Runs, big_blob

SYSTEM = "langgraph"

p = argparse.ArgumentParser()
p.add_argument(
    "scenario", choices=("seq200", "conc200", "wait2000", "import", "floor", "big", "append")
)
p.add_argument("--variant", default="default", choices=("sync", "default", "-"))  # "-": import only
p.add_argument("--dir", required=True)
p.add_argument("--api", default="auto", choices=("auto", "sync", "async"), help="seq200 only")
args = p.parse_args()
Path(args.dir).mkdir(parents=True, exist_ok=True)
block_network()
VERSIONS = package_versions(
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "aiosqlite",
    "langchain-core",
)
VARIANT = args.variant
DURABILITY = {"sync": {"durability": "sync"}}.get(VARIANT, {})
DUR_NOTE = 'durability="sync"' if VARIANT == "sync" else 'default durability ("async")'

if args.scenario == "import":
    run_import_scenario(
        SYSTEM,
        "-",
        "from langgraph.graph import StateGraph; from langgraph.checkpoint.sqlite import "
        "SqliteSaver",
        VERSIONS,
    )
    sys.exit(0)
if args.scenario == "floor":
    emit_unavailable(SYSTEM, VARIANT, "floor", "floor is a raw-sqlite scenario")
    sys.exit(0)

import aiosqlite  # noqa: E402
from langgraph.checkpoint.sqlite import SqliteSaver  # noqa: E402
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.types import interrupt  # noqa: E402

DB_PATH = Path(args.dir).resolve() / "lg.sqlite"


class S(TypedDict):
    n: int


def noop(s: S) -> dict:
    return {"n": s["n"] + 1}


def chain(n: int, state: type = S, step=noop) -> StateGraph:
    """``n`` nodes running ``step`` one after the other."""
    g = StateGraph(state)
    prev = START
    for i in range(n):
        g.add_node(f"s{i}", step)
        g.add_edge(prev, f"s{i}")
        prev = f"s{i}"
    g.add_edge(prev, END)
    return g


class Big(TypedDict):
    blob: str
    n: int


class Lines(TypedDict):
    items: Annotated[list[str], operator.add]


#: The marks of the run under way (big, append).
marks = Marks(0)


def bump(s: Big) -> dict:
    marks(s["n"] + 1)
    return {"n": s["n"] + 1}


def grow(s: Lines) -> dict:
    done = len(s["items"])
    marks(done + 1)
    return {"items": [CHUNKS[done]]}


def state_graph(big: bool) -> StateGraph:
    """``big``: 50 ``bump`` nodes one after the other; else one ``grow`` node
    looping on itself until the list has 400 lines."""
    if big:
        return chain(BIG_STEPS, Big, bump)
    g = StateGraph(Lines)
    g.add_node("grow", grow)
    g.add_edge(START, "grow")
    g.add_conditional_edges(
        "grow", lambda s: "grow" if len(s["items"]) < APPEND_STEPS else END, ["grow", END]
    )
    return g


def state_runs(scenario: str) -> dict:
    """1 warm-up run, then ``TIMED_RUNS``, each on a thread of its own."""
    global marks
    big = scenario == "big"
    steps = BIG_STEPS if big else APPEND_STEPS
    conn = sqlite3.connect(str(DB_PATH), check_same_thread=False)
    graph = state_graph(big).compile(checkpointer=SqliteSaver(conn))
    timed = Runs(steps)
    for run in range(TIMED_RUNS + 1):
        marks = Marks(steps)
        state = {"blob": big_blob(), "n": 0} if big else {"items": []}
        out = graph.invoke(state, cfg(f"{scenario}{run}", steps), **DURABILITY)
        if (out["n"] if big else len(out["items"])) != steps:
            raise RuntimeError(f"{scenario}: the run ended short of {steps} steps")
        if run:
            timed.add(marks.times, marks.written)
    conn.close()
    return timed.metrics()


def wait_node(s: S) -> dict:
    answer = interrupt({"waiting_for": "go"})  # parks the thread; resumes with Command(resume=...)
    return {"n": s["n"] + (1 if answer else 0)}


def cfg(tid: str, steps: int) -> dict:
    return {"configurable": {"thread_id": tid}, "recursion_limit": steps + 10}


def count_threads_in_db() -> int:
    con = sqlite3.connect(str(DB_PATH), timeout=30)
    try:
        return con.execute("SELECT count(DISTINCT thread_id) FROM checkpoints").fetchone()[0]
    finally:
        con.close()


def seq_sync() -> list[float]:
    conn = sqlite3.connect(str(DB_PATH), check_same_thread=False)
    graph = chain(SEQ_STEPS).compile(checkpointer=SqliteSaver(conn))
    graph.invoke({"n": 0}, cfg("warmup", SEQ_STEPS), **DURABILITY)
    runs = []
    for r in range(SEQ_RUNS):
        t0 = time.perf_counter()
        out = graph.invoke({"n": 0}, cfg(f"seq{r}", SEQ_STEPS), **DURABILITY)
        runs.append(time.perf_counter() - t0)
        assert out["n"] == SEQ_STEPS, out
    # sanity: every step was checkpointed
    n_ckpt = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id='seq0'").fetchone()[0]
    assert n_ckpt >= SEQ_STEPS, f"only {n_ckpt} checkpoints for {SEQ_STEPS} steps"
    conn.close()
    return runs


async def seq_async() -> list[float]:
    async with aiosqlite.connect(str(DB_PATH)) as conn:
        graph = chain(SEQ_STEPS).compile(checkpointer=AsyncSqliteSaver(conn))
        await graph.ainvoke({"n": 0}, cfg("warmup", SEQ_STEPS), **DURABILITY)
        runs = []
        for r in range(SEQ_RUNS):
            t0 = time.perf_counter()
            out = await graph.ainvoke({"n": 0}, cfg(f"seq{r}", SEQ_STEPS), **DURABILITY)
            runs.append(time.perf_counter() - t0)
            assert out["n"] == SEQ_STEPS, out
        return runs


async def conc() -> list[float]:
    async with aiosqlite.connect(str(DB_PATH)) as conn:
        graph = chain(CONC_STEPS).compile(checkpointer=AsyncSqliteSaver(conn))

        async def batch(tag: str, n: int) -> float:
            t0 = time.perf_counter()
            outs = await asyncio.gather(
                *(
                    graph.ainvoke({"n": 0}, cfg(f"{tag}-{i}", CONC_STEPS), **DURABILITY)
                    for i in range(n)
                )
            )
            assert all(o["n"] == CONC_STEPS for o in outs)
            return time.perf_counter() - t0

        await batch("warm", 20)
        return [await batch(f"b{r}", CONC_WORKFLOWS) for r in range(CONC_RUNS)]


async def wait() -> None:
    from langgraph.types import Command

    async with aiosqlite.connect(str(DB_PATH)) as conn:
        g = StateGraph(S)
        g.add_node("ask", wait_node)
        g.add_edge(START, "ask")
        g.add_edge("ask", END)
        graph = g.compile(checkpointer=AsyncSqliteSaver(conn))
        # warm-up: one full park / resume cycle
        out = await graph.ainvoke({"n": 0}, cfg("warm", 5), **DURABILITY)
        assert "__interrupt__" in out, out
        out = await graph.ainvoke(Command(resume=True), cfg("warm", 5), **DURABILITY)
        assert out["n"] == 1, out
        del out
        await asyncio.sleep(0.5)
        rss0, disk0 = rss_bytes(), disk_bytes(args.dir)
        t0 = time.perf_counter()
        for i in range(WAIT_COUNT):
            r = await graph.ainvoke({"n": 0}, cfg(f"w{i}", 5), **DURABILITY)
            assert "__interrupt__" in r
        del r
        park_s = time.perf_counter() - t0
        await asyncio.sleep(1.0)
        rss1, disk1 = rss_bytes(), disk_bytes(args.dir)
        cpu, idle = await idle_cpu_async(IDLE_SECONDS)
        st = await graph.aget_state(cfg("w7", 5))
        assert st.next == ("ask",) and st.interrupts, st
        emit(
            SYSTEM,
            VARIANT,
            "wait2000",
            wait_metrics(
                rss0,
                rss1,
                disk0,
                disk1,
                cpu,
                idle,
                park_s=round(park_s, 2),
                threads_in_db=count_threads_in_db() - 1,
                threads=thread_count(),
            ),
            note=f"AsyncSqliteSaver, {DUR_NOTE}; node calls interrupt(): each ainvoke returns "
            "with the thread checkpointed at the interrupt, nothing stays in memory or runs",
            versions=VERSIONS,
        )


def main() -> None:
    if args.scenario == "seq200":
        api = args.api
        if api == "auto":
            api = "sync"
        runs = seq_sync() if api == "sync" else asyncio.run(seq_async())
        saver = "SqliteSaver + invoke" if api == "sync" else "AsyncSqliteSaver + ainvoke"
        emit(
            SYSTEM,
            VARIANT,
            "seq200",
            seq_metrics(runs),
            note=f"{saver}, {DUR_NOTE}; linear graph of {SEQ_STEPS} nodes; median of "
            f"{SEQ_RUNS} after 1 warm-up",
            versions=VERSIONS,
            api=api,
        )
    elif args.scenario == "conc200":
        runs = asyncio.run(conc())
        emit(
            SYSTEM,
            VARIANT,
            "conc200",
            conc_metrics(runs),
            note=f"AsyncSqliteSaver + asyncio.gather of {CONC_WORKFLOWS} ainvoke, {DUR_NOTE}; "
            f"median of {CONC_RUNS} batches",
            versions=VERSIONS,
        )
    elif args.scenario in ("big", "append"):
        what = (
            "linear graph of 50 nodes over {blob: 1 MB str, n}"
            if args.scenario == "big"
            else "one node looping 400 times, items: Annotated[list[str], operator.add]"
        )
        emit(
            SYSTEM,
            VARIANT,
            args.scenario,
            state_runs(args.scenario),
            note=f"SqliteSaver + invoke, {DUR_NOTE}; {what}; median of {TIMED_RUNS} after "
            "1 warm-up",
            versions=VERSIONS,
        )
    elif args.scenario == "wait2000":
        asyncio.run(wait())
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
