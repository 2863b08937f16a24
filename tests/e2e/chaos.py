"""A chaos run: A → B → C over mutual TLS while a random node is SIGKILLed
every few seconds, and what came of every task.

    result = await run_chaos(ChaosConfig(store="sqlite", duration=60), tmp_path)
    print(result.table())

The network is :class:`~e2e.chaos_net.ChaosNet` (A as one process on
SQLite, or as replicas sharing one PostgreSQL database), the load is
:class:`~e2e.chaos_client.Load` (``in_flight`` tasks at all times). A killer
draws from ``random.Random(seed)`` when (every ``kill_every`` seconds, a
uniform draw) and which node to SIGKILL, and starts it again at once on its
port and store; a node that exits on its own is a crash, started again and
reported. After ``duration`` the killing and the sending stop, and the
tasks in flight get ``finish_timeout`` seconds to end.

What is counted (:class:`ChaosResult`): a task is *completed* when A
answered COMPLETED with exactly the output the chain computes for its
input, *wrong* when COMPLETED with anything else, *failed* when it ended in
another state, *lost* when it never ended (or A forgot it). *Duplicated*
counts the extra tasks in A's, B's and C's stores: every task carries a
unique name down the chain, so each store must hold exactly one task per
name (the client's retries, A's delegation to B and B's to C are each
deduplicated by their idempotency key, through any kill).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from e2e.chaos_client import Load, TaskRun
from e2e.chaos_net import ChaosNet, expected_output

from agent_node.store import store_from_url

__all__ = ["ChaosConfig", "ChaosResult", "run_chaos"]


@dataclass(frozen=True)
class ChaosConfig:
    store: Literal["sqlite", "postgres"] = "sqlite"
    #: Processes of node A; more than one needs ``store="postgres"``.
    replicas: int = 1
    duration: float = 60.0
    kill_every: tuple[float, float] = (2.0, 5.0)
    in_flight: int = 20
    seed: int = 1
    #: A's database when ``store="postgres"`` (an empty one).
    pg_url: str | None = None
    finish_timeout: float = 300.0


@dataclass
class ChaosResult:
    config: ChaosConfig
    tasks: int = 0
    kills: dict[str, int] = field(default_factory=dict)
    completed: int = 0
    wrong: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    #: Seconds from the last kill until the last task ended (None: some never did).
    finish_after_last_kill: float | None = None
    in_flight_at_last_kill: int = 0
    #: Seconds from sending a task to seeing it end: the median and the longest.
    task_median: float = 0.0
    task_longest: float = 0.0
    #: Tasks each node's store holds (one per task sent, when nothing is duplicated).
    held: dict[str, int] = field(default_factory=dict)
    #: Calls of the client that failed (a node down) and were tried again.
    client_retries: int = 0
    crashes: dict[str, int] = field(default_factory=dict)
    #: What went wrong, one line each (task, its ids and error; crash logs).
    problems: list[str] = field(default_factory=list)
    #: The kills, as (seconds from the start, node), and the tasks that ended
    #: last (name, A's task id, seconds from the start to its send and its end).
    kill_log: list[tuple[float, str]] = field(default_factory=list)
    last: list[tuple[str, str | None, float, float]] = field(default_factory=list)
    root: str = ""

    @property
    def ok(self) -> bool:
        bad = self.wrong + self.failed + self.lost + self.duplicated + sum(self.crashes.values())
        return bad == 0 and self.completed == self.tasks > 0

    def table(self) -> str:
        c = self.config
        kills = ", ".join(f"{name} {n}" for name, n in sorted(self.kills.items()))
        after = self.finish_after_last_kill
        head = (
            f"chaos run: A x{c.replicas} on {c.store}, B and C on sqlite; {c.duration:.0f} s,"
            f" a kill every {c.kill_every[0]:g}-{c.kill_every[1]:g} s, {c.in_flight} in flight,"
            f" seed {c.seed}"
        )
        rows = [
            ("tasks", str(self.tasks)),
            ("kills", f"{sum(self.kills.values())} ({kills})"),
            ("completed", str(self.completed)),
            ("failed", str(self.failed)),
            ("wrong output", str(self.wrong)),
            ("lost", str(self.lost)),
            ("duplicated", str(self.duplicated)),
            (
                "max time to finish after the last kill",
                "never" if after is None else f"{after:.1f} s",
            ),
            ("in flight at the last kill", str(self.in_flight_at_last_kill)),
            ("task time, median / longest", f"{self.task_median:.1f} / {self.task_longest:.1f} s"),
            ("tasks held by A / B / C", " / ".join(str(self.held.get(n, 0)) for n in "abc")),
            ("client calls retried", str(self.client_retries)),
            ("node crashes (not our kills)", str(sum(self.crashes.values()))),
        ]
        key = max(len(k) for k, _ in rows)
        value = max(len(v) for _, v in rows)
        lines = [
            head,
            f"| {'':<{key}} | {'':<{value}} |",
            f"|{'-' * (key + 2)}|{'-' * (value + 2)}|",
        ]
        lines += [f"| {k:<{key}} | {v:<{value}} |" for k, v in rows]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def run_chaos(config: ChaosConfig, root: Path) -> ChaosResult:
    """Run the chaos scenario in ``root`` (logs and stores stay there)."""
    if config.replicas > 1 and config.store != "postgres":
        raise ValueError("replicas of A share a PostgreSQL database")
    a_store = f"sqlite:///{root}/a.db"
    if config.store == "postgres":
        if not config.pg_url:
            raise ValueError("store='postgres' needs pg_url")
        a_store = config.pg_url
    net = ChaosNet(root, a_store, config.replicas)
    result = ChaosResult(config, root=str(root))
    try:
        await net.start_all()
        load = Load(net.a_urls, net.certs, config.in_flight, config.seed)
        await _run(config, net, load, result)
    finally:
        await net.stop_all()  # SIGKILL: whatever is committed is what counts
    result.crashes = {name: len(node.crashes) for name, node in net.nodes.items() if node.crashes}
    for name, node in net.nodes.items():
        result.kills[name] = node.kills
        result.problems += [f"{name} crashed: {log}" for log in node.crashes]
    _judge(load.runs, load.started, result)
    await _count_held(net, load.runs, result)
    return result


async def _run(config: ChaosConfig, net: ChaosNet, load: Load, result: ChaosResult) -> None:
    sending = asyncio.create_task(load.run())
    watching = asyncio.create_task(_restart_crashed(net))
    try:
        last_kill = await _kill(config, net, load, result)
        load.stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(sending), config.finish_timeout)
        ended = [run.done for run in load.runs]
        if last_kill is not None and None not in ended:
            result.finish_after_last_kill = max(0.0, max(d for d in ended if d) - last_kill)
        elif last_kill is None:
            result.finish_after_last_kill = 0.0
    finally:
        for job in (sending, watching):
            job.cancel()
        await asyncio.gather(sending, watching, return_exceptions=True)


async def _kill(
    config: ChaosConfig, net: ChaosNet, load: Load, result: ChaosResult
) -> float | None:
    """SIGKILL and restart a node every ``kill_every`` seconds for ``duration``;
    the time of the last kill."""
    rng = random.Random(config.seed)
    names = sorted(net.nodes)
    start = load.started
    at, last = start, None
    while True:
        at += rng.uniform(*config.kill_every)
        victim = rng.choice(names)
        if at > start + config.duration:
            break
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        await net.kill_and_restart(victim)
        last = time.monotonic()
        result.kill_log.append((round(last - start, 2), victim))
        result.in_flight_at_last_kill = len(load.in_progress())
    await asyncio.sleep(max(0.0, start + config.duration - time.monotonic()))
    return last


async def _restart_crashed(net: ChaosNet) -> None:
    while True:
        net.restart_crashed()
        await asyncio.sleep(0.5)


def _judge(runs: list[TaskRun], started: float, result: ChaosResult) -> None:
    result.tasks = len(runs)
    ended = sorted((r for r in runs if r.done), key=lambda r: r.done or 0)[-5:]
    result.last = [
        (r.name, r.task_id, round(r.started - started, 2), round((r.done or 0) - started, 2))
        for r in ended
    ]
    result.client_retries = sum(run.retries for run in runs)
    took = sorted(run.done - run.started for run in runs if run.done is not None)
    if took:
        result.task_median, result.task_longest = statistics.median(took), took[-1]
    for run in runs:
        if run.done is None:
            result.lost += 1
            verdict = "lost"
        elif run.state != "TASK_STATE_COMPLETED":
            result.failed += 1
            verdict = "failed"
        elif run.output != expected_output(run.name):
            result.wrong += 1
            verdict = f"wrong output {run.output!r}"
        else:
            result.completed += 1
            continue
        result.problems.append(
            f"task {run.name} ({run.task_id}): {verdict}, state {run.state},"
            f" retries {run.retries}, 'not found' {run.seen_missing}x, last error: {run.error}"
        )


async def _count_held(net: ChaosNet, runs: list[TaskRun], result: ChaosResult) -> None:
    """How many tasks each node's store holds per task name: one, or it is a
    duplicate (an extra task on that node)."""
    sent = {run.name for run in runs}
    for node in ("a", "b", "c"):
        store = store_from_url(net.stores[node])
        await store.open()
        try:
            records = await store.list_executions(limit=10 * len(runs) + 100)
        finally:
            await store.close()
        names = Counter(json.loads(record.state).get("name") for record in records)
        result.held[node] = len(records)
        for name, count in names.items():
            if count > 1:
                result.duplicated += count - 1
                result.problems.append(f"{node} holds {count} tasks for {name}")
            if name not in sent:
                result.problems.append(f"{node} holds a task for {name}, never sent")
