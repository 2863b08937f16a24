"""``bench/state_bench.py``'s ``big`` and ``append`` on DBOS (variant ``sync``).

The state is what each ``@DBOS.step`` receives and returns: DBOS checkpoints
a step's return value (pickled, base64) in its ``operation_outputs`` row
before the workflow goes on. ``big``: 50 steps, each taking
``{"blob": <1 MB str>, "n": n}`` and returning it with ``n + 1``;
``append``: 400 steps, each taking the list of lines and returning it with
one more 1 KB line. Timed and counted as ours (``bench/state_timing.py``).
Imported by ``dbos_bench.py`` before ``DBOS.launch()``, which the workflows
must be registered before.
"""

from __future__ import annotations

from typing import Any

from dbos import DBOS
from state_timing import APPEND_STEPS, BIG_STEPS, CHUNKS, TIMED_RUNS, Marks, Runs, big_blob

NOTES = {
    "big": f"sync workflow of {BIG_STEPS} @DBOS.step, each taking and returning "
    f"{{blob: 1 MB str, n}}; median of {TIMED_RUNS} after 1 warm-up",
    "append": f"sync workflow of {APPEND_STEPS} @DBOS.step, each taking the list and "
    f"returning it with one more 1 KB str; median of {TIMED_RUNS} after 1 warm-up",
}

#: The marks of the run under way.
marks = Marks(0)


@DBOS.step()
def bump_step(state: dict[str, Any]) -> dict[str, Any]:
    marks(state["n"] + 1)
    return {**state, "n": state["n"] + 1}


@DBOS.workflow()
def big_wf(blob: str) -> int:
    state = {"blob": blob, "n": 0}
    for _ in range(BIG_STEPS):
        state = bump_step(state)
    return state["n"]


@DBOS.step()
def grow_step(items: list[str]) -> list[str]:
    marks(len(items) + 1)
    return [*items, CHUNKS[len(items)]]


@DBOS.workflow()
def append_wf() -> int:
    items: list[str] = []
    for _ in range(APPEND_STEPS):
        items = grow_step(items)
    return len(items)


def run(scenario: str) -> dict[str, Any]:
    """1 warm-up run, then ``TIMED_RUNS``; the metrics of ``state_timing.Runs``."""
    global marks
    big = scenario == "big"
    steps = BIG_STEPS if big else APPEND_STEPS
    timed = Runs(steps)
    for run in range(TIMED_RUNS + 1):
        marks = Marks(steps)
        done = big_wf(big_blob()) if big else append_wf()
        if done != steps:
            raise RuntimeError(f"{scenario}: {done} steps, not {steps}")
        if run:
            timed.add(marks.times, marks.written)
    return timed.metrics()
