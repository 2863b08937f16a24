"""Rich renderings of executions, states and timelines.

Imported only by commands that draw something, so ``agent-node --help``
never pays for rich.

What came from outside — a client's message, an id, a peer's answer, a
workflow's state or error — is drawn through :func:`plain` (or
:func:`state_json`): never read as rich markup, its control characters
shown escaped, so that no one who can reach a node can move the operator's
terminal (found by a hostile walk: a client's text wrote the clipboard
with OSC 52 through ``agent-node inspect``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.highlighter import JSONHighlighter
from rich.table import Table
from rich.text import Text

from agent_node.printable import printable, printable_json
from agent_node.results import Event, NodeRun
from agent_node.store.records import DelegationRecord, ExecutionRecord, WaitRecord

__all__ = [
    "describe_cancel_given_up",
    "describe_delegation",
    "describe_wait",
    "detail",
    "execution_header",
    "executions_table",
    "make_console",
    "model_usage",
    "plain",
    "state_json",
    "status_text",
    "timeline_table",
    "truncate",
    "when",
]

#: Width used when the output is not a terminal (a pipe, a file, a test),
#: so that ids and commands are not wrapped at rich's default of 80 columns.
_PIPE_WIDTH = 160

_STATUS_STYLES = {
    "completed": "green",
    "running": "cyan",
    "pending": "cyan",
    "waiting": "yellow",
    "retrying": "yellow",
    "throttled": "yellow",
    "interrupted": "magenta",
    "failed": "red",
    "canceled": "red",
}


def make_console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = _PIPE_WIDTH
    return console


def plain(text: object, style: str = "", *, lines: bool = False) -> Text:
    """Text from outside as it is: no markup, control characters escaped
    (``lines``: line feeds kept, for a traceback or a model's prose)."""
    return Text(printable(str(text), lines=lines), style=style)


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def truncate(text: str | None, limit: int = 60) -> str:
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def status_text(status: str) -> Text:
    return Text(status, style=_STATUS_STYLES.get(status, ""))


def state_json(data: Mapping[str, Any] | str) -> Text:
    """A state (or its JSON text) indented and highlighted, no control character raw."""
    value = json.loads(data) if isinstance(data, str) else data
    text = JSONHighlighter()(printable_json(value, indent=2))
    text.no_wrap = True
    return text


def timeline_table(runs: Sequence[NodeRun]) -> Table:
    table = Table(title="timeline", title_justify="left")
    table.add_column("node", no_wrap=True)
    table.add_column("visit", justify="right")
    table.add_column("attempt", justify="right")
    table.add_column("status")
    table.add_column("duration ms", justify="right")
    table.add_column("detail")
    for run in runs:
        duration = "" if run.duration is None else f"{run.duration * 1000:.1f}"
        table.add_row(
            plain(run.node),
            str(run.visit),
            str(run.attempt),
            status_text(run.status),
            duration,
            plain(truncate(detail(run), 80)),
        )
    return table


def detail(run: NodeRun) -> str:
    output = run.extra.get("output")
    said = run.detail or _scores(output) or _route(run.extra.get("next"))
    parts = (said, _answered_by(output), _usage(run.extra.get("usage")))
    return " · ".join(part for part in parts if part)


def _answered_by(output: object) -> str:
    """Which model answered a model node (and those a fallback chain gave
    up on; why it stopped when it did not finish: ``finish: length``), or
    why it did not call one (its budget)."""
    if not isinstance(output, Mapping):
        return ""
    if output.get("over_budget"):
        return f"over budget: {output['over_budget']}"
    if not isinstance(output.get("model"), str) or "text" not in output:
        return ""
    skipped = [f.get("model") for f in output.get("fell_back") or () if isinstance(f, Mapping)]
    after = f" (after {', '.join(map(str, skipped))} failed)" if skipped else ""
    reason = output.get("finish_reason")
    stopped = f" · finish: {reason}" if reason not in (None, "stop", "tool_calls") else ""
    return f"{output['model']}{after}{stopped}"


def _route(following: object) -> str:
    if isinstance(following, list):
        return "→ " + ", ".join(map(str, following))
    return f"→ {following}" if following else ""


def _scores(output: object) -> str:
    """An eval node's verdict: ``quality 0.40 ✗, cost 1.00 ✓ → revise``."""
    if not isinstance(output, Mapping) or not isinstance(output.get("scores"), list):
        return ""
    marks = [
        f"{s.get('name')} {float(s.get('score') or 0):.2f} {'✓' if s.get('passed') else '✗'}"
        for s in output["scores"]
        if isinstance(s, Mapping)
    ]
    return f"{', '.join(marks)} → {output.get('action')}"


def _usage(usage: object) -> str:
    """What a model call cost: ``412 tok · $0.0012 · 1.3 s`` (``~412 tok``:
    estimated, the server counted none or the call was cut short)."""
    if not isinstance(usage, Mapping) or not usage.get("total_tokens"):
        return ""
    parts = [f"{'~' if usage.get('estimated') else ''}{usage['total_tokens']} tok"]
    if usage.get("cost"):
        parts.append(f"${float(usage['cost']):.4f}")
    if usage.get("latency_s"):
        parts.append(f"{float(usage['latency_s']):.1f} s")
    return " · ".join(parts)


def executions_table(records: Iterable[ExecutionRecord]) -> Table:
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("workflow", no_wrap=True)
    table.add_column("status")
    table.add_column("created", no_wrap=True)
    table.add_column("updated", no_wrap=True)
    table.add_column("error")
    for record in records:
        table.add_row(
            plain(record.id),
            plain(f"{record.workflow_id}@{record.workflow_version}"),
            status_text(record.status),
            when(record.created_at),
            when(record.updated_at),
            plain(truncate(record.error, 50)),
        )
    return table


def execution_header(
    record: ExecutionRecord,
    waits: Sequence[WaitRecord],
    runs: Sequence[NodeRun] = (),
    delegations: Sequence[DelegationRecord] = (),
    events: Sequence[Event] = (),
) -> Table:
    """The execution's header; ``events``: its log, for the delegations
    whose cancel was given up (their row is gone)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("execution", plain(record.id))
    grid.add_row("workflow", plain(f"{record.workflow_id}@{record.workflow_version}"))
    grid.add_row("status", status_text(record.status))
    if record.caller:
        grid.add_row("caller", plain(record.caller))
    grid.add_row("created", when(record.created_at))
    grid.add_row("updated", when(record.updated_at))
    if record.error:
        grid.add_row("error", plain(record.error, "red"))
    for wait in waits:
        grid.add_row("waits for", plain(describe_wait(wait)))
    now = time.time()
    for row in delegations:
        grid.add_row("delegation", plain(describe_delegation(row, now)))
    for event in events:
        if event.kind == "delegation_cancel_given_up":
            grid.add_row("delegation", plain(describe_cancel_given_up(event), "red"))
    spent = model_usage(runs)
    if spent:
        grid.add_row("models", spent)
    return grid


def model_usage(runs: Sequence[NodeRun]) -> str:
    """What the execution's model calls took together: ``3 calls · 1,240 tok · $0.0031``."""
    usages = [u for u in (run.extra.get("usage") for run in runs) if isinstance(u, Mapping)]
    calls = sum(int(u.get("calls") or 0) for u in usages)
    if not calls:
        return ""
    tokens = sum(int(u.get("total_tokens") or 0) for u in usages)
    costs = [float(u["cost"]) for u in usages if u.get("cost") is not None]
    about = "~" if any(u.get("estimated") for u in usages) else ""
    parts = [f"{calls} call{'s' if calls > 1 else ''}", f"{about}{tokens:,} tok"]
    parts.append(f"${sum(costs):.4f}" if costs else "no price")
    return " · ".join(parts)


#: Waits that ask the execution's caller, as ``describe_wait`` names them.
_ASKS = {"input": "input", "auth": "authorization"}


def describe_wait(wait: WaitRecord) -> str:
    """``event 'approved' at node 'ask'``, ``timer at node 'sleep' (due ...)``,
    ``authorization (event 'input') at node 'login'``."""
    asks = _ASKS.get(wait.kind)
    if wait.kind == "event":
        what = f"event {wait.event!r}"
    elif asks is not None:
        what = f"{asks} (event {wait.event!r})"
    else:
        what = wait.kind
    due = f" (due {when(wait.deadline)})" if wait.deadline is not None else ""
    return f"{what} at node {wait.node!r}{due}"


#: A delegation row's states, as an operator reads them.
_DELEGATING = {
    "sending": "sending",
    "sent": "with the peer",
    "asked": "the peer asks our caller",
    "answered": "relaying our caller's answer",
    "canceling": "canceling the peer's task",
}


def describe_delegation(row: DelegationRecord, now: float) -> str:
    """What a delegation is doing now, its tries and why the last failed:
    ``node 'hand' to b: sending, attempt 4; last error: peer 'b' unreachable
    (…); next try in 12 s`` (during an outage the timeline says only
    "sending to b"), or, while the watchdog tries, ``…; a try in flight
    since 2026-12-01 12:00:01 (35 s)`` (the row's next time is then the
    claim's expiry, not a next try)."""
    peer = row.peer or "a peer to be chosen"
    said = f"node {row.node!r} to {peer}: {_DELEGATING.get(row.state, row.state)}"
    if row.polls:
        tries = {"sending": f", attempt {row.polls}", "canceling": f", try {row.polls}"}
        said += tries.get(row.state, f", {row.polls} polls")
    if row.last_error:
        said += f"; last error: {truncate(row.last_error, 200)}"
    what = "poll" if row.state in ("sent", "asked") else "try"
    if row.claimed_at is not None:
        since = max(0.0, now - row.claimed_at)
        return f"{said}; a {what} in flight since {when(row.claimed_at)} ({since:.0f} s)"
    wait = row.next_poll_at - now
    said += f"; next {what} in {wait:.0f} s" if wait >= 1 else f"; next {what} now"
    return said


def describe_cancel_given_up(event: Event) -> str:
    """A delegation whose cancel was given up: ``node 'hand' to b: gave up
    canceling its task t1 after 16 tries (2025-01-01 12:00:00); it may still
    be running; last error: peer 'b' unreachable (…)``."""
    data = event.data or {}
    peer = data.get("peer") or "the peer"
    task = data.get("task_id")
    if task:
        what = f"gave up canceling its task {task}"
    else:  # a lost answer never told its id: looked for by our contextId
        what = "gave up finding its task (ListTasks by our contextId) to cancel it"
    tries = data.get("tries") or 0
    how = "refused" if data.get("refused") else f"after {tries} tr{'y' if tries == 1 else 'ies'}"
    said = f"node {event.node!r} to {peer}: {what}, {how} ({when(event.at)});"
    said += " it may still be running"
    if data.get("error"):
        said += f"; last error: {truncate(str(data['error']), 200)}"
    return said
