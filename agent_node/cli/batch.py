"""``agent-node batch``: run a JSONL file of input states through one runtime.

Execution ids are derived from the workflow and the file's bytes
(``batch-<12 hex>-<line>``), so running the same batch again — after a crash,
or to collect the results once more — creates no new executions: finished
ones are reported as they are, interrupted ones resume where they stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from agent_node.errors import AgentNodeError, ConfigError, StateValidationError
from agent_node.runtime import Runtime
from agent_node.workflow.compiled import CompiledWorkflow

from .common import (
    EXIT_FAILURE,
    handle_errors,
    load_target,
    run_async,
    started_runtime,
    store_option,
)

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["batch", "batch_id", "parse_inputs"]

#: Result statuses that make the batch exit 1.
_BAD = frozenset({"failed", "canceled", "invalid"})


@dataclass(frozen=True, slots=True)
class Input:
    """One non-empty line of the inputs file: a state, or why it is not one."""

    line: int
    state: dict[str, Any] | None
    error: str | None = None


def batch_id(workflow_key: str, content: bytes) -> str:
    return hashlib.sha256(workflow_key.encode() + b"\0" + content).hexdigest()[:12]


def parse_inputs(content: bytes) -> list[Input]:
    inputs: list[Input] = []
    for number, raw in enumerate(content.splitlines(), start=1):
        if raw.strip():
            inputs.append(_parse_line(number, raw))
    return inputs


def _parse_line(number: int, raw: bytes) -> Input:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Input(number, None, f"line {number} is not valid JSON: {exc}")
    if not isinstance(value, dict):
        return Input(number, None, f"line {number} is a JSON {type(value).__name__}, not an object")
    return Input(number, value)


@click.command()
@click.argument("target")
@click.argument("inputs", metavar="INPUTS.jsonl", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--concurrency",
    default=16,
    show_default=True,
    type=click.IntRange(min=1),
    metavar="N",
    help="How many executions run at once.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSONL results here instead of stdout.",
)
@store_option
@handle_errors
def batch(target: str, inputs: Path, concurrency: int, output: Path | None, store_url: str) -> None:
    """Run TARGET once per line of INPUTS.jsonl (a JSON object: the input state)."""
    workflow = load_target(target)
    try:
        content = inputs.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {str(inputs)!r}: {exc.strerror or exc}") from None
    items = parse_inputs(content)
    bid = batch_id(workflow.key, content)
    with _sink(output) as sink:
        counts = run_async(_batch(store_url, workflow, bid, items, concurrency, sink))
    _summary(bid, len(items), counts, output)
    if any(counts[status] for status in _BAD):
        raise click.exceptions.Exit(EXIT_FAILURE)


@contextlib.contextmanager
def _sink(output: Path | None) -> Iterator[IO[str]]:
    if output is None:
        yield sys.stdout
        return
    with output.open("w", encoding="utf-8") as file:
        yield file


async def _batch(
    url: str,
    workflow: CompiledWorkflow,
    bid: str,
    items: list[Input],
    concurrency: int,
    sink: IO[str],
) -> Counter[str]:
    counts: Counter[str] = Counter()
    slots = asyncio.Semaphore(concurrency)
    with _progress(len(items)) as (progress, task):

        async def one(runtime: Runtime, item: Input) -> None:
            try:
                result = await _run_one(runtime, workflow, bid, item)
            finally:
                slots.release()
            sink.write(json.dumps(result) + "\n")
            sink.flush()
            counts[result["status"]] += 1
            progress.update(task, advance=1, done=counts["completed"], bad=_bad(counts))

        async with started_runtime(url, [workflow]) as runtime, asyncio.TaskGroup() as group:
            for item in items:
                await slots.acquire()
                group.create_task(one(runtime, item))
    return counts


async def _run_one(
    runtime: Runtime, workflow: CompiledWorkflow, bid: str, item: Input
) -> dict[str, Any]:
    execution_id = f"batch-{bid}-{item.line:06d}"
    if item.state is None:
        return _result(item.line, None, "invalid", None, item.error)
    try:
        result = await runtime.run(workflow, item.state, execution_id=execution_id)
    except StateValidationError as exc:
        return _result(item.line, None, "invalid", None, str(exc))
    except AgentNodeError as exc:
        return _result(item.line, execution_id, "failed", None, str(exc))
    state = result.state.model_dump(mode="json")
    return _result(item.line, execution_id, result.status, state, result.error)


def _result(
    line: int, execution_id: str | None, status: str, state: Any, error: str | None
) -> dict[str, Any]:
    return {
        "line": line,
        "execution_id": execution_id,
        "status": status,
        "state": state,
        "error": error,
    }


def _bad(counts: Counter[str]) -> int:
    return sum(counts[status] for status in _BAD)


@contextlib.contextmanager
def _progress(total: int) -> Iterator[tuple[Progress, TaskID]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .render import make_console

    progress = Progress(
        TextColumn("batch"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[done]} completed[/] [red]{task.fields[bad]} failed[/]"),
        TimeElapsedColumn(),
        console=make_console(stderr=True),
    )
    with progress:
        yield progress, progress.add_task("batch", total=total, done=0, bad=0)


def _summary(bid: str, total: int, counts: Counter[str], output: Path | None) -> None:
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    where = f"; results in {output}" if output is not None else ""
    color = "red" if _bad(counts) else "green"
    click.secho(
        f"batch {bid}: {total} input(s): {parts or 'nothing to run'}{where}", fg=color, err=True
    )
