"""``telemetry_bench.py --paired``: what telemetry costs a ``SendMessage`` in
CPU time, with the settings' nodes measured side by side instead of one
after the other.

On a shared machine the speed of a core drifts by tens of % within minutes
(the same node answered 604 and 831 req/s in two rounds of one run), more
than the few % being measured; a count of instructions
(``--instructions``) does not drift, but under valgrind a request takes ~50
times as long, so whatever a node does by the clock (checkpoints, timers,
the batch processor's schedule) is counted many times over. Here one node
per setting runs at once, all pinned to core 0, and one client on core 1
sends each of them a blocking ``SendMessage`` in turn: off, metrics,
traces, off, … on one keep-alive connection each. A node works only while
the others wait, so each meets the machine as it is at that moment, and a
drift falls on all alike; each block starts with the next node
(:func:`rotated`), so no setting is always the first after a pause. Every
``--block`` requests a node, each node's CPU
time (every thread, from ``/proc/<pid>/task/*/schedstat``: nanoseconds on a
CPU) gives its µs per request in that block; the table gives, per setting,
the median over the blocks of its µs per request and of its difference
against ``off`` in the same block.

``--measures seq,conc`` do the same for workflow steps: one child per
setting (:class:`telemetry_steps.StepRunner`, the node's telemetry
attached to a ``Runtime`` on SQLite), all pinned to core 0, told in turn to
run one unit — a 200-step workflow (``seq``) or a batch of 200 workflows of
5 steps (``conc``) — and measured as above, in µs per step.
"""

from __future__ import annotations

import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import telemetry_bench as tb
import telemetry_counted as tc

T = TypeVar("T")
#: Requests each node answers before its CPU time is first read.
WARMUP = 200
#: Step units (a seq run, a conc batch) each child runs before it is measured.
STEP_WARMUP = 2
#: The child of ``telemetry_bench.py`` that runs step units when told:
#: ``_paired_steps SETTING MEASURE DIR ENDPOINT``.
STEPS_CHILD = "_paired_steps"


def cpu_ns(pid: int) -> int:
    """Nanoseconds ``pid`` (every thread) has run on a CPU."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as found:
                total += int(found.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
            continue
    return total


@dataclass(frozen=True)
class Children:
    """Where the measured children run: their scratch directory, the
    receiver of their spans, whether they are pinned, and the trees
    (``--tree``) whose code a ``NAME:setting`` runs."""

    scratch: Path
    endpoint: str
    pin: bool
    trees: Mapping[str, str]


def tree_of(setting: str, trees: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """``setting``'s own name and its child's environment: ``NAME:traces``
    is ``traces`` run with the ``agent_node`` of tree ``NAME`` (``--tree``)."""
    name, _, plain = setting.rpartition(":")
    return plain, tb.child_env(trees[name] if name else None)


def _start(setting: str, at: Children) -> tuple[subprocess.Popen[bytes], int]:
    plain, env = tree_of(setting, at.trees)
    work = Path(tempfile.mkdtemp(prefix=f"paired-{plain}-", dir=at.scratch))
    port = tb.free_port()
    command = tb.pinned(0, tb.serve_command(work, plain, at.endpoint, port), at.pin)
    node, log = tb.launch(command, work, env)
    tb.wait_listening(node, log)
    return node, port


def paired(
    settings: Sequence[str], at: Children, blocks: int, block: int
) -> dict[str, list[float]]:
    """Each setting's CPU µs per request in each of ``blocks`` blocks of
    ``block`` requests a node, the nodes sent to in turn."""
    if at.pin:  # the client (and the receiver's thread) off the nodes' core
        os.sched_setaffinity(0, {1})
    nodes = [_start(setting, at) for setting in settings]
    found: dict[str, list[float]] = {setting: [] for setting in settings}
    try:
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _, port in nodes]
        sent = 0
        for _ in range(WARMUP):
            for conn in conns:
                tc._send(conn, sent)
            sent += 1
        for number in range(blocks):
            before = [cpu_ns(node.pid) for node, _ in nodes]
            turn = rotated(conns, number)
            for _ in range(block):
                for conn in turn:
                    tc._send(conn, sent)
                sent += 1
            after = [cpu_ns(node.pid) for node, _ in nodes]
            for setting, start, end in zip(settings, before, after, strict=True):
                found[setting].append((end - start) / block / 1000)
            row = "  ".join(f"{s} {found[s][-1]:7.1f}" for s in settings)
            print(f"paired block {number + 1}: µs CPU per request  {row}", flush=True)
        for conn in conns:
            conn.close()
    finally:
        for node, _ in nodes:
            node.send_signal(signal.SIGTERM)
        for node, _ in nodes:
            tb.ended(node, 30)
    return found


def rotated(items: Sequence[T], number: int) -> list[T]:
    """``items`` in the order block ``number`` visits them: each block starts
    one further on. The one visited first meets the machine after the
    client's own pause, colder: always first, one setting measured +0.9 to
    +3.0 % against four copies of itself (five identical children, 40
    blocks of ``seq``); in turn, that falls on every setting alike."""
    shift = number % len(items) if items else 0
    return [*items[shift:], *items[:shift]]


def paired_table(found: dict[str, list[float]], unit: str = "request") -> str:
    """Per setting: the median µs per ``unit``, and the median over blocks of
    its difference against ``off``'s in the same block (and their range); a
    tree's setting (``NAME:traces``) against its own ``NAME:off`` when
    measured, and against this tree's ``traces`` in the same block."""
    head, width = f"µs CPU/{unit}", max([8, *map(len, found)])
    lines = [f"{'setting':<{width}} {head:>15} {'against off':>12}  (range over blocks)"]
    for setting, values in found.items():
        name, _, plain = setting.rpartition(":")
        off = f"{name}:off" if name else "off"
        base = found.get(off) or found.get("off")
        line = f"{setting:<{width}} {statistics.median(values):15.1f}"
        if base is not None and plain != "off":
            against = [v / b - 1 for v, b in zip(values, base, strict=True)]
            spread = f"({min(against):+.1%} to {max(against):+.1%})"
            line += f" {statistics.median(against):+12.1%}  {spread}"
        if name and plain in found:
            mine = [v / b - 1 for v, b in zip(values, found[plain], strict=True)]
            line += f"  against {plain} {statistics.median(mine):+.1%}"
        lines.append(line)
    return "\n".join(lines)


async def steps_child(setting: str, measure: str, work: Path, endpoint: str) -> None:
    """Run one unit of ``measure`` for each ``run`` line on stdin, answering
    ``done <steps>``; at end of input, flush the spans and stop."""
    import asyncio

    from telemetry_steps import StepRunner

    runner = StepRunner(setting, work, endpoint)
    await runner.start()
    loop = asyncio.get_running_loop()
    try:
        print("ready", flush=True)
        while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "run":
            print(f"done {await runner.unit(measure)}", flush=True)
    finally:
        await runner.close()


def paired_steps(
    measure: str, settings: Sequence[str], at: Children, blocks: int, block: int
) -> dict[str, list[float]]:
    """Each setting's CPU µs per step of ``measure`` in each of ``blocks``
    blocks of ``block`` units a child, the children told in turn."""
    if at.pin:
        os.sched_setaffinity(0, {1})
    children = [_steps_child(s, measure, at) for s in settings]
    found: dict[str, list[float]] = {setting: [] for setting in settings}

    def unit(child: subprocess.Popen[str]) -> int:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("run\n")
        child.stdin.flush()
        answer = child.stdout.readline().split()
        if not answer or answer[0] != "done":
            raise RuntimeError(f"a {measure} child stopped: {answer}")
        return int(answer[1])

    try:
        for _ in range(STEP_WARMUP):
            for child in children:
                unit(child)
        for number in range(blocks):
            before = [cpu_ns(child.pid) for child in children]
            steps = [0] * len(children)
            turn = rotated(list(enumerate(children)), number)
            for _ in range(block):
                for index, child in turn:
                    steps[index] += unit(child)
            after = [cpu_ns(child.pid) for child in children]
            for index, setting in enumerate(settings):
                found[setting].append((after[index] - before[index]) / steps[index] / 1000)
            row = "  ".join(f"{s} {found[s][-1]:7.1f}" for s in settings)
            print(f"paired {measure} block {number + 1}: µs CPU per step  {row}", flush=True)
    finally:
        _stop(children)
    return found


def _steps_child(setting: str, measure: str, at: Children) -> subprocess.Popen[str]:
    """A child of :func:`steps_child`, started and ready."""
    plain, env = tree_of(setting, at.trees)
    work = Path(tempfile.mkdtemp(prefix=f"paired-{measure}-{plain}-", dir=at.scratch))
    command = [sys.executable, tb.__file__, STEPS_CHILD, plain, measure, str(work), at.endpoint]
    child = subprocess.Popen(
        tb.pinned(0, command, at.pin),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        _stop([child])
        raise RuntimeError(f"a {measure} child of {setting} did not start")
    return child


def _stop(children: Sequence[subprocess.Popen[str]]) -> None:
    """End of input: each child flushes its spans and stops."""
    for child in children:
        if child.stdin is not None:
            child.stdin.close()
    for child in children:
        tb.ended(child, 60)


def run_paired(
    args: Any, measures: Sequence[str], settings: Sequence[str], scratch: Path, endpoint: str
) -> None:
    """``telemetry_bench.py --paired``: each of ``measures``, its table printed."""
    at = Children(scratch, endpoint, args.pin, args.trees)
    for measure in measures:
        if measure == "send":
            print(paired_table(paired(settings, at, args.blocks, args.block)), flush=True)
            continue
        units = args.block_units or (5 if measure == "seq" else 2)
        found = paired_steps(measure, settings, at, args.blocks, units)
        print(paired_table(found, f"{measure} step"), flush=True)
