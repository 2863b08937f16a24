"""The next node sees the state as stored: what a step wrote that JSON
cannot hold exactly (a ``datetime``, a ``set``, a ``tuple``, int keys in a
``dict[str, Any]``) reads the same live as after a resume (a walk found
``datetime`` live and ``str`` after a resume)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent_node import Runtime, Workflow


class Open(BaseModel):
    blob: dict[str, Any] = {}
    seen: list[str] = []


class Typed(BaseModel):
    when: datetime.datetime | None = None
    pair: tuple[int, int] = (0, 0)
    seen: list[str] = []


def shown(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={type(v).__name__}:{v!r}" for k, v in values.items() if k != "seen")


def flow(name: str, model: type[BaseModel], write: dict[str, Any]) -> Workflow:
    wf = Workflow(name, version="1")
    wf.state(model)

    @wf.step
    async def writes(s: Any) -> dict[str, Any]:
        return write

    @wf.step
    async def reads_live(s: Any) -> dict[str, Any]:
        return {"seen": [*s.seen, shown(dict(s))]}

    wf.wait("park", event="go")

    @wf.step(next=None)
    async def reads_resumed(s: Any) -> dict[str, Any]:
        return {"seen": [*s.seen, shown(dict(s))]}

    return wf


async def seen_live_and_resumed(url: str, wf: Workflow, state: BaseModel) -> list[str]:
    async with Runtime(url) as rt:
        parked = await rt.run(wf.compile(), state)
    async with Runtime(url) as rt:  # another process's view: read from the store
        rt.workflows.add(wf.compile())
        await rt.engine.control.signal(parked.execution_id, "go")
        result = await rt.run(wf.compile(), execution_id=parked.execution_id)
    assert result.status == "completed", result.error
    seen: list[str] = result.state.seen  # type: ignore[attr-defined]
    return seen


async def test_values_json_cannot_hold_read_the_same_live_and_resumed(tmp_path: Path) -> None:
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    write = {"blob": {"when": when, "tags": {1, 2}, "pair": (1, 2), "m": {1: "int key"}}}
    live, resumed = await seen_live_and_resumed(
        f"sqlite:///{tmp_path}/s.db", flow("open", Open, write), Open()
    )
    assert live == resumed
    assert "'when': '2026-01-02T03:04:05', 'tags': [1, 2], 'pair': [1, 2]" in live
    assert "'m': {'1': 'int key'}" in live


async def test_a_typed_state_keeps_its_types_live_and_resumed(tmp_path: Path) -> None:
    write = {"when": datetime.datetime(2026, 1, 2), "pair": [1, 2]}
    live, resumed = await seen_live_and_resumed(
        f"sqlite:///{tmp_path}/s.db", flow("typed", Typed, write), Typed()
    )
    assert live == resumed
    assert "when=datetime:datetime.datetime(2026, 1, 2, 0, 0)" in live and "pair=tuple" in live
