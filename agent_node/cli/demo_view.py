"""What ``agent-node demo`` shows: every agent's steps, as they happen.

The view follows one task of the coordinator through the operator API of
each agent (``/ops/executions/ID/events``, as the demo's operator identity):
the coordinator's timeline, and under each of its delegations the timeline
of the task it created on the peer. On a terminal it redraws one table in
place; elsewhere it prints a line as each step ends.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agent_node.errors import AgentNodeError
from agent_node.results import Event, NodeRun, build_timeline

from .demo_text import LiveText
from .render import detail, plain, status_text, truncate

__all__ = ["Step", "Watcher", "follow", "short_ids", "steps_table"]

POLL = 0.15
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}([0-9a-f]{8})\b")
_ENDS = {
    "execution_completed": "completed",
    "execution_failed": "failed",
    "execution_canceled": "canceled",
}


@dataclass(frozen=True)
class Step:
    """One attempt of one node on one agent; ``depth`` 1 for a delegated task's."""

    agent: str
    depth: int
    run: NodeRun

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.agent, self.run.node, self.run.visit, self.run.attempt)


@dataclass
class Watcher:
    """Reads the steps of ``root`` (a coordinator task) and of its delegations."""

    http: httpx.AsyncClient
    #: Agent name → base URL.
    urls: Mapping[str, str]
    root: str
    root_agent: str = "coordinator"
    status: str = "running"
    _done: dict[str, list[Event]] = field(default_factory=dict)

    async def steps(self) -> list[Step]:
        events = await self._events(self.root_agent, self.root)
        self.status = _status(events)
        steps: list[Step] = []
        for run in build_timeline(events):
            steps.append(Step(self.root_agent, 0, run))
            sent = run.extra.get("delegation")
            if sent and sent.get("peer") in self.urls and sent.get("task_id"):
                peer_events = await self._events(sent["peer"], sent["task_id"])
                steps += [Step(sent["peer"], 1, r) for r in build_timeline(peer_events)]
        return steps

    async def _events(self, agent: str, task: str) -> list[Event]:
        if task in self._done:
            return self._done[task]
        url = f"{self.urls[agent]}/ops/executions/{task}/events"
        answer = await self.http.get(url)
        if answer.status_code == 404:
            return []  # not committed yet on the peer
        if answer.status_code != 200:
            raise AgentNodeError(f"{agent}: {url} answered HTTP {answer.status_code}")
        events = [Event(**raw) for raw in answer.json()["events"]]
        if _status(events) != "running":
            self._done[task] = events
        return events


def short_ids(text: str) -> str:
    """Task ids cut to their last eight digits (the view is narrow; inspect
    has them whole): new ids start with their time, so the tasks of one
    run start alike, and end with random digits."""
    return _UUID.sub(r"…\1", text)


def _status(events: list[Event]) -> str:
    return next((_ENDS[e.kind] for e in reversed(events) if e.kind in _ENDS), "running")


def steps_table(steps: list[Step], title: str) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("agent", no_wrap=True)
    table.add_column("step", no_wrap=True)
    table.add_column("status")
    table.add_column("ms", justify="right")
    table.add_column("what happened")
    now = time.time()
    for step in steps:
        run = step.run
        node = run.node if run.visit == 1 else f"{run.node} #{run.visit}"
        duration = "" if run.duration is None else f"{run.duration * 1000:.0f}"
        if run.duration is None and run.status in {"running", "waiting"}:
            duration = f"{(now - run.started_at) * 1000:.0f}…"  # so far
        agent = step.agent if step.depth == 0 else f"  └ {step.agent}"
        said = truncate(short_ids(detail(run)), 90)
        table.add_row(plain(agent), plain(node), status_text(run.status), duration, plain(said))
    return table


async def follow(
    watcher: Watcher,
    console: Console,
    *,
    live: bool,
    title: str,
    text: LiveText | None = None,
) -> list[Step]:
    """Show the steps until the root task ends; returns the last steps read.
    Live, ``text`` (the agents' text as it is written) shows under them."""
    if live:
        with Live(steps_table([], title), console=console, refresh_per_second=10) as view:
            while True:
                steps = await watcher.steps()
                if watcher.status != "running":  # the answer follows: the text was shown
                    view.update(steps_table(steps, title))
                    return steps
                view.update(_view(steps, title, text))
                await asyncio.sleep(POLL)
    printed: set[tuple[str, str, int, int, str]] = set()
    while True:
        steps = await watcher.steps()
        for step in steps:
            if step.run.status == "running":
                continue
            seen = (*step.key, step.run.status)
            if seen not in printed:
                printed.add(seen)
                _print_step(console, step)
        if watcher.status != "running":
            return steps
        await asyncio.sleep(POLL)


def _view(steps: list[Step], title: str, text: LiveText | None) -> RenderableType:
    table = steps_table(steps, title)
    if text is None:
        return table
    for step in steps:  # whose text it is: the agent each delegate node asks
        sent = step.run.extra.get("delegation")
        if step.depth == 0 and sent and sent.get("peer"):
            text.agents[step.run.node] = str(sent["peer"])
    panel = text.panel()
    return table if panel is None else Group(table, panel)


def _print_step(console: Console, step: Step) -> None:
    run = step.run
    indent = "  └ " if step.depth else ""
    took = "" if run.duration is None else f" {run.duration * 1000:.0f} ms"
    console.print(
        Text.assemble(indent, plain(step.agent, "bold"), " ", plain(f"{run.node}: ")),
        status_text(run.status),
        plain(f"{took}  {truncate(short_ids(detail(run)), 100)}"),
        sep="",
        highlight=False,
    )
