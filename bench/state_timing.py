"""How ``bench/state_bench.py`` times a run and counts its bytes, for ours and its peers.

One module so that every system is measured the same way: the peers' scripts
(``bench/peers/dbos_bench.py``, ``bench/peers/langgraph_bench.py``) import it
from their own venv, hence the standard library only.

Each step body calls a ``Marks`` with its step number (1 to ``steps``): it
notes ``perf_counter`` at every body, and the process's ``wchar`` from
``/proc/self/io`` (every byte passed to ``write``/``pwrite``, by any thread)
just before the first body's mark and just after the last's, so that the
bytes are those of the commits of steps 1 to ``steps - 1``. ``Runs`` sums up
the timed runs as the tables report them.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

BIG_STEPS = 50
BIG_BYTES = 1_000_000
APPEND_STEPS = 400
#: Timed runs, after one warm-up run.
TIMED_RUNS = 3
#: The lines ``append`` adds, 1 KB each: incompressible (PostgreSQL compresses
#: what it TOASTs).
CHUNKS = [os.urandom(512).hex() for _ in range(APPEND_STEPS)]


def big_blob(size: int = BIG_BYTES) -> str:
    """A fresh incompressible string of ``size`` characters (one per run)."""
    return os.urandom(size // 2).hex()


def wchar() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def rate(marks: Sequence[float]) -> float:
    return (len(marks) - 1) / (marks[-1] - marks[0])


def steady(marks: Sequence[float]) -> float:
    """Steps/s over a window of marks: 1 / the median time between bodies (a
    machine shared with other work shows as outliers, which it ignores)."""
    return 1.0 / statistics.median(b - a for a, b in itertools.pairwise(marks))


class Marks:
    """The marks of one run of ``steps`` steps, from synchronous step bodies."""

    def __init__(self, steps: int, read_bytes: Callable[[], int] = wchar) -> None:
        self.steps = steps
        self.read_bytes = read_bytes
        self.times: list[float] = []
        self.written: list[int] = []

    def __call__(self, step: int) -> None:
        if step == 1:
            self.written.append(self.read_bytes())
        self.times.append(time.perf_counter())
        if step == self.steps:
            self.written.append(self.read_bytes())


class Runs:
    """The timed runs of one scenario: ``steps/s`` is the median over the runs
    of (steps - 1) / (last body - first body); with 400 steps, also the rate
    around step 10 (steps 2 to 21) and at the end (the last 20)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.rates: list[float] = []
        self.per_step: list[float] = []
        self.early: list[float] = []
        self.late: list[float] = []

    def add(self, times: Sequence[float], written: Sequence[int] = ()) -> None:
        if len(times) != self.steps:
            raise RuntimeError(f"{len(times)} step bodies ran, not {self.steps}")
        self.rates.append(rate(times))
        if len(written) == 2:
            self.per_step.append((written[1] - written[0]) / (self.steps - 1))
        if self.steps >= 40:
            self.early.append(steady(times[1:21]))
            self.late.append(steady(times[-20:]))

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "steps_per_s": round(statistics.median(self.rates), 1),
            "runs": [round(r, 1) for r in self.rates],
        }
        if self.per_step:
            out["bytes_per_step"] = round(statistics.median(self.per_step))
        if self.steps >= APPEND_STEPS:
            out["steps_per_s_at_10"] = round(statistics.median(self.early), 1)
            out["steps_per_s_at_end"] = round(statistics.median(self.late), 1)
        return out
