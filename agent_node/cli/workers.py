"""Commands that run an engine over the whole store: ``resume`` and ``worker``.

``resume`` drives every pending or running execution, and every waiting one
whose timer is due, until each has ended or parked on a wait, then exits;
``worker`` keeps claiming work (including timers as they fall due) until it
is told to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from agent_node.errors import StoreOutdated
from agent_node.printable import printable
from agent_node.runtime import Runtime
from agent_node.store import ExecutionRecord, Store, WaitRecord
from agent_node.workflow.compiled import CompiledWorkflow

from .common import (
    EXIT_FAILURE,
    EXIT_OUTDATED,
    handle_errors,
    load_target,
    run_async,
    started_runtime,
    store_option,
)
from .configured import config_option, equipped, node_config, node_of, skill_workflows, store_of
from .invoked import command_name

if TYPE_CHECKING:
    from agent_node.config import NodeConfig
    from agent_node.node_equipment import Equipment

__all__ = ["resume", "worker"]

_POLL = 0.2
_ACTIVE = ["pending", "running"]

node_option = click.option(
    "--node",
    default="local",
    show_default=True,
    metavar="NAME",
    help="Node name: leases held by dead processes of this node are reclaimed at once.",
)


# -- resume ------------------------------------------------------------------------


@dataclass
class ResumeReport:
    records: list[ExecutionRecord] = field(default_factory=list)
    timers: int = 0
    stuck: list[ExecutionRecord] = field(default_factory=list)
    #: Executions with a visit left to a process equipped for it, and why.
    left: dict[str, str] = field(default_factory=dict)


@click.command()
@node_option
@click.option(
    "--idle-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="Give up when no execution made progress for this long.",
)
@config_option
@store_option
@handle_errors
def resume(node: str, idle_timeout: float, config_path: str | None, store_url: str) -> None:
    """Run every pending or running execution, and every one whose timer is
    due, until it ends or waits.

    With a node's --config, its nodes run as the node runs them (its mcp:
    servers, models, peers, and the workflow versions its skills register);
    without, a node that needs them is left to the node (said at the end).
    Exits 1 when an execution failed or made no progress for --idle-timeout.
    """
    config = node_config(config_path)
    url = store_of(config, store_url)
    report = run_async(_resume(url, node_of(config, node), idle_timeout, config))
    _show_resume(report, config_path)
    if report.stuck or any(r.status in {"failed", "canceled"} for r in report.records):
        raise click.exceptions.Exit(EXIT_FAILURE)


async def _resume(
    url: str, node: str, idle_timeout: float, config: NodeConfig | None
) -> ResumeReport:
    report = ResumeReport()
    async with (
        equipped(config) as equipment,
        _runtime(url, config, equipment, scope="all", node=node, create=False) as runtime,
    ):
        seen: dict[str, int] = {}
        last_progress = time.monotonic()
        while active := await _movable(runtime, await _active(runtime.store)):
            moved = [r for r in active if seen.get(r.id) != r.last_seq]
            seen.update((r.id, r.last_seq) for r in moved)
            if moved or await _busy(runtime, active):
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > idle_timeout:
                report.stuck = active
                break
            await asyncio.sleep(_POLL)
        # Those an older release left stranded, settled as the engine started.
        seen.update((r.id, r.last_seq) for r in runtime.engine.settled if r.id not in seen)
        for execution_id in seen:
            record = await runtime.store.get(execution_id)
            if record is not None:
                report.records.append(record)
                report.timers += await _has_timer(runtime, record)
        for (execution_id, _, _), why in runtime.engine.left.items():
            report.left[execution_id] = why
    return report


@contextlib.asynccontextmanager
async def _runtime(
    url: str,
    config: NodeConfig | None,
    equipment: Equipment | None,
    workflows: Sequence[CompiledWorkflow] = (),
    **options: Any,
) -> AsyncIterator[Runtime]:
    """A started runtime over the whole store: with a node's config, its
    skills' workflows and its nodes' equipment."""
    if equipment is not None:
        options["executors"] = equipment.executors
    known = [*workflows, *skill_workflows(config)]
    async with started_runtime(url, known, **options) as runtime:
        if equipment is not None:
            equipment.use_store(runtime.store)
        yield runtime


async def _movable(runtime: Runtime, active: list[ExecutionRecord]) -> list[ExecutionRecord]:
    """``active`` without the executions whose work left here waits for a
    process equipped for it (unless some of their work still runs here)."""
    left = {execution_id for execution_id, _, _ in runtime.engine.left}
    if not left:
        return active
    owner = str(runtime.engine.owner)
    kept = []
    for record in active:
        if record.id not in left or any(
            item.lease_owner == owner for item in await runtime.store.work(record.id)
        ):
            kept.append(record)
    return kept


async def _active(store: Store) -> list[ExecutionRecord]:
    """Pending and running executions, and waiting ones whose timer or
    timeout is due (the engine fires it; a process killed while it waited
    for the timer left it there)."""
    active = await store.list_executions(status=_ACTIVE, limit=10_000, state=False)
    known = {record.id for record in active}
    for wait in await store.due_waits(time.time(), 10_000):
        if wait.execution_id in known:
            continue
        record = await store.get(wait.execution_id)
        if record is not None and record.status == "waiting":
            active.append(record)
            known.add(record.id)
    return active


async def _busy(runtime: Runtime, active: Sequence[ExecutionRecord]) -> bool:
    """Whether a quiet execution is still making progress: one of its nodes runs
    here (a slow step), or a retry is scheduled for later."""
    owner, now = str(runtime.engine.owner), time.time()
    for record in active:
        for item in await runtime.store.work(record.id):
            if item.lease_owner == owner or item.available_at > now:
                return True
    return False


async def _has_timer(runtime: Runtime, record: ExecutionRecord) -> bool:
    if record.status != "waiting":
        return False
    waits: list[WaitRecord] = await runtime.store.waits(record.id)
    return any(w.kind != "event" or w.deadline is not None for w in waits)


def _show_resume(report: ResumeReport, config_path: str | None) -> None:
    if not report.records and not report.stuck:
        click.echo("nothing to resume: no pending or running executions, no timer due")
        return
    counts = Counter(r.status for r in report.records)
    shown = ["completed", "failed", "waiting", *(s for s in counts if s in {"canceled", *_ACTIVE})]
    summary = ", ".join(f"{counts[status]} {status}" for status in shown)
    click.echo(f"resumed {len(report.records)} execution(s): {summary}")
    for record in report.records:
        if record.status == "failed":
            click.secho(printable(f"  {record.id} failed: {record.error}"), fg="red")
    if report.timers:
        click.echo(
            f"{report.timers} execution(s) wait for a timer or timeout:"
            f" a running `{command_name()} worker` fires it when due"
        )
    if report.left:
        _show_left(report.left, config_path)
    if report.stuck:
        names = ", ".join(f"{r.id} ({r.workflow_id}@{r.workflow_version})" for r in report.stuck)
        click.secho(
            f"error: no progress for the idle timeout; gave up on {printable(names)}"
            " (is its workflow loadable here, or is another worker holding it?)",
            fg="red",
            err=True,
        )


def _show_left(left: dict[str, str], config_path: str | None) -> None:
    program = command_name()
    hint = f"restart `{program} serve --config …` (it takes them on)"
    if config_path is None:
        hint += f", or run `{program} resume --config …` with the node's configuration"
    click.secho(
        f"left {len(left)} execution(s) for a process that can run them (a node configured"
        f" with mcp:/peers:, or one that registers their workflow version): {hint}",
        fg="yellow",
    )
    for execution_id, why in left.items():
        click.echo(printable(f"  {execution_id}: {why}"))


# -- worker ------------------------------------------------------------------------


@click.command()
@click.argument("workflows", nargs=-1, metavar="[WORKFLOW]...")
@node_option
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    metavar="N",
    help="Node visits run at once (default: the engine's, 512).",
)
@click.option(
    "--stop-grace",
    type=click.FloatRange(min=0, max=3600),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="On SIGTERM or Ctrl-C, how long the steps running here may finish (no new"
    " work is taken) before they are cut and run again elsewhere.",
)
@config_option
@store_option
@handle_errors
def worker(
    workflows: tuple[str, ...],
    node: str,
    concurrency: int | None,
    stop_grace: float,
    config_path: str | None,
    store_url: str,
) -> None:
    """Claim and run work of every execution until SIGTERM or SIGINT.

    WORKFLOW (a file or module:attr) is loaded up front; executions of other
    workflows are loaded from the reference they recorded. On SIGTERM it
    takes no more work and lets the steps running here finish (--stop-grace;
    a second signal ends the wait), then releases what is left for other
    workers to take at once. With a node's --config, its nodes run as the
    node runs them (mcp:, models:, peers:, its skills' workflow versions);
    without, a node that needs them is left to a process that has them.
    Once a newer agent-node upgraded the store it stops, exit status 75.
    """
    loaded = [load_target(ref) for ref in workflows]
    options: dict[str, Any] = {} if concurrency is None else {"concurrency": concurrency}
    config = node_config(config_path)
    url = store_of(config, store_url)
    run_async(_work(url, node_of(config, node), loaded, options, stop_grace, config))


async def _work(
    url: str,
    node: str,
    workflows: list[CompiledWorkflow],
    options: dict[str, Any],
    grace: float,
    config: NodeConfig | None,
) -> None:
    stop = asyncio.Event()
    running: list[Runtime] = []

    def asked() -> None:
        if stop.is_set() and running:  # asked again while its steps finish: no more grace
            running[0].engine.cut_stop_short()
        stop.set()

    with _stop_on_signals(asked):
        async with (
            equipped(config) as equipment,
            _runtime(
                url, config, equipment, workflows, scope="all", node=node, **options
            ) as runtime,
        ):
            running.append(runtime)
            runtime.engine.outdated_hooks.append(lambda _error: stop.set())
            known = ", ".join(w.key for w in workflows) or "loaded on demand"
            click.echo(f"worker {runtime.engine.owner} on {url} (workflows: {known})")
            click.echo("stop with SIGTERM or Ctrl-C")
            await stop.wait()
            if isinstance(runtime.engine.crash, StoreOutdated):  # said at ERROR when found
                click.echo(f"stopped: the store is newer than this worker (exit {EXIT_OUTDATED})")
                raise click.exceptions.Exit(EXIT_OUTDATED)
            click.echo(f"stopping: running steps may finish (up to {grace:g} s); no new work")
            await runtime.engine.stop(grace)
            click.echo("stopping: releasing leases")
    click.echo("stopped")


@contextlib.contextmanager
def _stop_on_signals(asked: Callable[[], None]) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Not every platform's loop supports signal handlers; Ctrl-C still interrupts there.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, asked)
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
