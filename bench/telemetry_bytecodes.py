"""``telemetry_bench.py --bytecodes``: what telemetry costs a workflow step
in Python bytecodes, by function.

Timed on this machine a step's telemetry costs about twice its share of
instructions (``--instructions``: metrics + traces +3.5 % of a sequential
step counted, +8 to +9 % timed): a step's own ~400,000 instructions are
mostly C (SQLite, pydantic-core, json) running many instructions per
bytecode, telemetry's are bytecodes that do little each, and CPython's time
goes with its bytecodes about as much as with its instructions. Counted in
bytecodes, telemetry's share is close to what the clock says; and it is
counted by function, so the count says where it goes.

Each setting runs in a child (:class:`telemetry_steps.StepRunner`):
``--units`` seq runs or conc batches warm it, one more measures how much
slower tracing makes it (its node's timers are then stretched as much, as
``--instructions`` does for callgrind), then ``--units`` are counted with
``sys.settrace`` (every bytecode the event loop's thread runs, and threads
started after). The SQLite writer's thread, started before, is not
counted: a batch it commits (few: most commit on the event loop, all of a
sequential step's) is missing from every setting alike, as is the timing
of such a batch for the metrics (``_began_by_loop``, on that thread).
"""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

#: Functions listed under the table: the largest differences against ``off``.
TOP = 12


async def count_child(setting: str, measure: str, work: Path, endpoint: str, units: int) -> None:
    """Print, as JSON, the steps counted and the bytecodes each function ran."""
    import threading

    from telemetry_steps import StepRunner, stretch_timers

    counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            counts[(code.co_filename, code.co_name)] += 1
        return tracer

    def traced(on: bool) -> None:
        sys.settrace(tracer if on else None)
        threading.settrace(tracer if on else None)  # type: ignore[arg-type]

    runner = StepRunner(setting, work, endpoint)
    await runner.start()
    try:
        began = time.perf_counter()
        for _ in range(units):
            await runner.unit(measure)
        plain = (time.perf_counter() - began) / units
        traced(True)
        began = time.perf_counter()
        await runner.unit(measure)
        traced(False)
        stretch_timers((time.perf_counter() - began) / plain)
        counts.clear()
        traced(True)
        steps = 0
        for _ in range(units):
            steps += await runner.unit(measure)
        traced(False)
    finally:
        await runner.close()
    rows = [[_short(path), name, count] for (path, name), count in counts.items()]
    print(json.dumps({"steps": steps, "counts": rows}))


def _short(path: str) -> str:
    """``path`` from its package on (``agent_node/…``, ``asyncio/…``)."""
    for mark, keep in (("/agent_node/", "agent_node/"), ("site-packages/", ""), ("/lib/", "")):
        if mark in path:
            return keep + path.rpartition(mark)[2]
    return path


def bytecodes(
    measure: str, scratch: Path, endpoint: str, settings: Sequence[str], units: int
) -> dict[str, dict[tuple[str, str], float]]:
    """Per setting: bytecodes per step of ``measure``, by (file, function)."""
    import telemetry_bench as tb

    found: dict[str, dict[tuple[str, str], float]] = {}
    for setting in settings:
        work = scratch / f"bytecodes-{measure}-{setting}"
        work.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, tb.__file__, tb.BYTECODES, setting, measure, str(work), endpoint]
        done = subprocess.run(
            [*command, str(units)], capture_output=True, text=True, env=tb.child_env()
        )
        if done.returncode != 0:
            raise RuntimeError(f"{setting} {measure} failed:\n{done.stderr[-3000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        steps = row["steps"]
        found[setting] = {(path, name): n / steps for path, name, n in row["counts"]}
    return found


def bytecodes_table(measure: str, found: dict[str, dict[tuple[str, str], float]]) -> str:
    """Bytecodes per step by setting against ``off``, then the functions
    whose counts differ most from ``off``'s."""
    totals = {setting: sum(counts.values()) for setting, counts in found.items()}
    off = totals.get("off")
    lines = [f"{'setting':<10} {f'bytecodes/{measure} step':>22} {'against off':>12}"]
    for setting, total in totals.items():
        against = f"{total / off - 1:+12.1%}" if off and setting != "off" else ""
        lines.append(f"{setting:<10} {total:22,.0f} {against}")
    base = found.get("off")
    for setting, counts in found.items():
        if base is None or setting == "off":
            continue
        keys = set(base) | set(counts)
        moved = sorted(keys, key=lambda k: -abs(counts.get(k, 0) - base.get(k, 0)))[:TOP]
        lines.append(f"{setting}: the functions that moved most, bytecodes per step")
        for path, name in moved:
            was, now = base.get((path, name), 0.0), counts.get((path, name), 0.0)
            lines.append(f"  {now - was:+8.1f}  ({was:7.1f} → {now:7.1f})  {path}:{name}")
    return "\n".join(lines)


def run_child(argv: Sequence[str]) -> None:
    """``telemetry_bench.py _bytecodes SETTING MEASURE DIR ENDPOINT UNITS``."""
    setting, measure, work, endpoint, units = argv
    asyncio.run(count_child(setting, measure, Path(work), endpoint, int(units)))
