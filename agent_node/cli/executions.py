"""Commands that run or read single executions: run, executions, inspect, events
(signal, cancel and retry: :mod:`.operate`)."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, get_args

import click
from pydantic import ValidationError

from agent_node.errors import ConfigError, UnknownExecution, UsageError
from agent_node.ids import new_id
from agent_node.printable import printable
from agent_node.problems import describe_validation
from agent_node.results import Event, RunResult, build_timeline, to_event
from agent_node.store import ExecutionRecord, ExecutionStatus, Store, WaitRecord, default_store_url
from agent_node.store.records import TERMINAL, DelegationRecord

if TYPE_CHECKING:  # what runs workflows is imported where it is used (~0.15 s)
    from rich.console import Console

    from agent_node.config import NodeConfig
    from agent_node.store.live import Chunk
    from agent_node.workflow.budget import Budget
    from agent_node.workflow.compiled import CompiledWorkflow

from .common import (
    EXIT_FAILURE,
    handle_errors,
    load_target,
    open_store,
    parse_json_object,
    run_async,
    started_runtime,
    store_option,
)
from .configured import config_option, equipped, node_config, note_unread_config, registry, store_of

__all__ = ["events", "executions", "get_execution", "inspect", "run"]

STATUSES: tuple[str, ...] = get_args(ExecutionStatus)

#: The exit code of a run interrupted by Ctrl-C (SIGINT), as shells report it.
EXIT_INTERRUPTED = 130

#: A payload to show in the ``signal`` hint, by the JSON type of the state key it fills.
_EXAMPLE_PAYLOADS = {
    "object": "{}",
    "array": "[]",
    "string": '"yes"',
    "integer": "0",
    "number": "0",
    "boolean": "true",
}


# -- run -------------------------------------------------------------------------


@click.command()
@click.argument("target")
@click.option(
    "--input", "input_text", metavar="JSON", help="Input state: a JSON object or @file.json."
)
@click.option("--execution-id", metavar="ID", help="Id of the new execution, or of one to resume.")
@click.option(
    "--live/--no-live",
    default=None,
    help="Show the text nodes write (a model's answer) as they write it, on stderr"
    " (default: when stderr is a terminal).",
)
@click.option(
    "--budget",
    metavar="LIMITS",
    help="What this execution may spend on models, within its workflow's budget:"
    " tokens=N, cost=USD, calls=N, comma-separated (e.g. tokens=20000,cost=0.05).",
)
@config_option
@store_option
@handle_errors
def run(
    target: str,
    input_text: str | None,
    execution_id: str | None,
    live: bool | None,
    budget: str | None,
    config_path: str | None,
    store_url: str,
) -> None:
    """Run the workflow TARGET (file.yaml, file.py:attr or package.module:attr).

    With the --execution-id of an existing execution, resume it (or show how
    it ended); its --input, if given, must be the one it started with.
    Interrupted (Ctrl-C), it says how to continue. With a node's --config,
    its nodes run as the node runs them: its models: (api_base, keys,
    backends), mcp: servers and peers:, in its store (unless --store).
    """
    state = parse_json_object(input_text, "--input") if input_text is not None else None
    workflow = load_target(target)
    config = node_config(config_path)
    url = store_of(config, store_url)
    if config is None:
        note_unread_config(workflow)
    if state is not None and execution_id is None:
        execution_id = new_id()  # known before it runs, to name if interrupted
    if live is None:
        live = sys.stderr.isatty()
    limits = _budget(budget) if budget is not None else None
    running = _run(url, workflow, state, execution_id, live, limits, config)
    try:
        result, waits = run_async(running)
    except KeyboardInterrupt:
        _interrupted(target, input_text, execution_id, url, config_path)
    _show_run(url, workflow, result, waits, config_path)
    if result.status not in {"completed", "waiting"}:
        raise click.exceptions.Exit(EXIT_FAILURE)


def _budget(text: str) -> Budget:
    """``tokens=N,cost=USD,calls=N`` as a :class:`Budget` (a usage error else)."""
    limits: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, value = item.partition("=")
        if not equals or name.strip() not in ("tokens", "cost", "calls"):
            raise UsageError(f"--budget: {item!r} is not tokens=N, cost=USD or calls=N")
        limits[name.strip()] = value.strip()
    from agent_node.workflow.budget import Budget

    try:
        return Budget.model_validate(limits)
    except ValidationError as exc:
        raise UsageError(f"--budget {text!r}: {describe_validation(exc, Budget)}") from None


def _interrupted(
    target: str, input_text: str | None, execution_id: str | None, url: str, config: str | None
) -> NoReturn:
    click.echo(err=True)
    if execution_id is None:
        click.secho("interrupted", fg="red", err=True)
        raise click.exceptions.Exit(EXIT_INTERRUPTED)
    words = ["agent-node", "run", target, "--execution-id", execution_id]
    if input_text is not None:
        words += ["--input", input_text]
    words += _where(url, config)
    click.secho(
        f"interrupted: execution {execution_id} stopped where it was (what it completed is kept)",
        fg="red",
        err=True,
    )
    click.echo(f"continue it with: {shlex.join(words)}", err=True)
    raise click.exceptions.Exit(EXIT_INTERRUPTED)


def _where(url: str, config: str | None) -> list[str]:
    """The options a later command needs to find this execution and run it
    as this one did: the node's --config, the store when not the default."""
    words = ["--config", config] if config is not None else []
    return words + (["--store", url] if url != default_store_url() else [])


async def _run(
    url: str,
    workflow: CompiledWorkflow,
    state: dict[str, Any] | None,
    execution_id: str | None,
    live: bool = False,
    budget: Budget | None = None,
    config: NodeConfig | None = None,
) -> tuple[RunResult, list[WaitRecord]]:
    async with (
        equipped(config, check_skills=False) as equipment,
        started_runtime(url, executors=equipment.executors if equipment else None) as runtime,
    ):
        if equipment is not None:
            equipment.use_store(runtime.store)
        if live:
            execution_id = execution_id or new_id()
            unsubscribe = runtime.store.live.subscribe(execution_id, _LiveText())
        try:
            result = await runtime.run(workflow, state, execution_id=execution_id, budget=budget)
        finally:
            if live:
                unsubscribe()
        return result, await runtime.store.waits(result.execution_id)


class _LiveText:
    """Prints the text nodes write as it comes (stderr): each stream under
    its node's name, a stream that starts over on a fresh line."""

    def __init__(self) -> None:
        self._stream: str | None = None

    def __call__(self, chunk: Chunk) -> None:
        if not chunk.append or chunk.stream != self._stream:
            if self._stream is not None:
                click.echo(err=True)
            click.secho(f"{printable(chunk.node)}: ", dim=True, nl=False, err=True)
            self._stream = chunk.stream
        click.echo(printable(chunk.text, lines=True), nl=False, err=True)
        if chunk.last:
            click.echo(err=True)
            self._stream = None


def _show_run(
    url: str,
    workflow: CompiledWorkflow,
    result: RunResult,
    waits: list[WaitRecord],
    config: str | None,
) -> None:
    from rich.text import Text

    from . import render

    console = render.make_console()
    console.print(render.state_json(result.state.model_dump(mode="json")))
    console.print(render.timeline_table(result.timeline))
    execution = render.plain(result.execution_id, "bold")
    console.print(Text.assemble("execution ", execution, " ", render.status_text(result.status)))
    if result.error:
        console.print(render.plain(f"error: {result.error}", "red"))
        _show_traceback(console, result.events)
    for wait in waits:
        console.print(render.plain(f"waiting for {render.describe_wait(wait)}"))
        if wait.kind in ("event", "input", "auth") and wait.event is not None:
            command = _signal_command(url, config, result.execution_id, wait, workflow)
            console.print(render.plain(f"continue with: {command}"), soft_wrap=True)


def _signal_command(
    url: str, config: str | None, execution_id: str, wait: WaitRecord, workflow: CompiledWorkflow
) -> str:
    words = ["agent-node", "signal", execution_id, wait.event or "", "--data"]
    words.append(_example_payload(workflow, wait.node))
    return shlex.join(words + _where(url, config))


def _example_payload(workflow: CompiledWorkflow, node_id: str) -> str:
    output = getattr(workflow.node(node_id), "output", None)
    if not output:
        return "{}"
    schema = workflow.state_model.model_json_schema().get("properties", {}).get(output, {})
    kinds = [schema.get("type"), *(option.get("type") for option in schema.get("anyOf", []))]
    return next((_EXAMPLE_PAYLOADS[k] for k in kinds if k in _EXAMPLE_PAYLOADS), "{}")


# -- executions / inspect / events --------------------------------------------------


@click.command()
@click.option(
    "--status", "statuses", multiple=True, metavar="S", help="Only this status (repeatable)."
)
@click.option(
    "--workflow", "workflow_id", metavar="ID", help="Only executions of this workflow id."
)
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="Show at most this many.",
)
@store_option
@handle_errors
def executions(
    statuses: tuple[str, ...], workflow_id: str | None, limit: int, store_url: str
) -> None:
    """List executions, newest first."""
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise ConfigError(f"unknown status {unknown[0]!r}: use one of {', '.join(STATUSES)}")
    records = run_async(_list(store_url, list(statuses) or None, workflow_id, limit))
    from . import render

    render.make_console().print(render.executions_table(records))


async def _list(
    url: str, statuses: list[str] | None, workflow_id: str | None, limit: int
) -> list[ExecutionRecord]:
    async with open_store(url) as store:
        return await store.list_executions(
            status=statuses, workflow_id=workflow_id, limit=limit, state=False
        )


@click.command()
@click.argument("execution_id", metavar="ID")
@config_option
@store_option
@handle_errors
def inspect(execution_id: str, config_path: str | None, store_url: str) -> None:
    """Show an execution: status, waits, state and the timeline of its nodes."""
    config = node_config(config_path)
    record, waits, log, delegations = run_async(_inspect(store_of(config, store_url), execution_id))
    from . import render

    console = render.make_console()
    timeline = build_timeline(log)
    console.print(render.execution_header(record, waits, timeline, delegations, log))
    if record.status not in TERMINAL and (stuck := _cannot_go_on(record, config)):
        console.print(render.plain(f"cannot go on here: {stuck}", "red"), soft_wrap=True)
    console.print("state", style="bold")
    console.print(render.state_json(record.state))
    console.print(render.timeline_table(timeline))
    if record.status != "completed":
        _show_traceback(console, log)


def _cannot_go_on(record: ExecutionRecord, config: NodeConfig | None) -> str | None:
    """Why no process like this one can carry the execution on: its workflow
    (version) does not load (None when it does)."""
    try:
        registry(config).get(record.workflow_id, record.workflow_version, record.workflow_ref)
    except UsageError as exc:
        return str(exc)
    return None


def _show_traceback(console: Console, log: Sequence[Event]) -> None:
    """The traceback of the last failed step, as its failure event keeps it."""
    failed = [e for e in log if e.kind == "node_failed" and (e.data or {}).get("traceback")]
    if not failed:
        return
    last = failed[-1]
    data = last.data or {}
    retry = " (a retry follows)" if data.get("retry_at") else ""
    from .render import plain

    console.print(plain(f"node {last.node!r} failed (attempt {last.attempt}){retry}:", "bold"))
    console.print(plain(data["traceback"], "red", lines=True), soft_wrap=True)


async def _inspect(
    url: str, execution_id: str
) -> tuple[ExecutionRecord, list[WaitRecord], list[Event], list[DelegationRecord]]:
    async with open_store(url) as store:
        record = await get_execution(store, execution_id)
        waits = await store.waits(execution_id)
        log = [to_event(e) for e in await store.events(execution_id)]
        return record, waits, log, await store.delegations(execution_id)


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option(
    "--after", default=0, type=click.IntRange(min=0), metavar="SEQ", help="Only events after SEQ."
)
@store_option
@handle_errors
def events(execution_id: str, after: int, store_url: str) -> None:
    """Print the event log of an execution, one JSON object per line."""
    for event in run_async(_events(store_url, execution_id, after)):
        click.echo(json.dumps(event.as_json(), separators=(",", ":")))


async def _events(url: str, execution_id: str, after: int) -> list[Event]:
    async with open_store(url) as store:
        await get_execution(store, execution_id)
        return [to_event(e) for e in await store.events(execution_id, after)]


async def get_execution(store: Store, execution_id: str) -> ExecutionRecord:
    record = await store.get(execution_id)
    if record is None:
        raise UnknownExecution(execution_id)
    return record
