"""What an application does with its own ``Runtime``: run an SDK ``Workflow``
as it is, signal, cancel and wait for executions, and hear plainly that a
closed runtime is not reopened. A step's exception is reported with its type.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from support.readme_blocks import python_block

import agent_node.runtime
from agent_node import Runtime, Workflow
from agent_node.errors import ConfigError, InvalidSignal, UnknownExecution, UsageError

ROOT = Path(__file__).resolve().parents[2]


class State(BaseModel):
    query: str = ""
    decision: dict[str, Any] | None = None
    answer: str = ""


def asking() -> Workflow:
    wf = Workflow("asking", version="1")
    wf.state(State)
    wf.wait("approve", event="decision", output="decision")

    @wf.step(next=None)
    async def answer(s: State) -> dict[str, Any]:
        return {"answer": f"{s.query}: {(s.decision or {}).get('ok')}"}

    return wf


async def test_the_module_docstring_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    after = (agent_node.runtime.__doc__ or "").split("::\n\n", 1)[1]
    example = textwrap.dedent(after.split("\n\n", 1)[0])
    code = "async def example():\n" + textwrap.indent(example, "    ") + "\n    return result\n"
    scope: dict[str, Any] = {"Runtime": Runtime, "State": State, "wf": asking()}
    exec(compile(code, "runtime docstring", "exec"), scope)
    monkeypatch.chdir(tmp_path)
    result = await scope["example"]()
    assert result.status == "completed"
    assert result.state.answer == "hi: True"


def test_the_readme_runs_a_workflow_from_its_own_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = [
        python_block(title)
        for title in ("A workflow in Python", "Running workflows from your own code")
    ]
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    asyncio.run(namespace["main"]())

    async def rows() -> list[Any]:
        async with Runtime("sqlite:///app.db") as rt:
            return await rt.store.list_executions()

    [paid] = asyncio.run(rows())
    assert (paid.status, json.loads(paid.state)["status"]) == ("completed", "paid")


async def test_run_and_start_execution_take_a_workflow_as_it_is(store_url: str) -> None:
    wf = asking()
    async with Runtime(store_url) as rt:
        parked = await rt.run(wf, State(query="q"))
        assert parked.status == "waiting"
        started = await rt.start_execution(wf, State(query="r"))
        assert (await rt.wait(started)).status == "waiting"
        with pytest.raises(UsageError, match=r"give a Workflow or a compiled workflow .* not dict"):
            await rt.run({"id": "asking"}, State())  # type: ignore[arg-type]


async def test_signal_wait_and_cancel_go_through_the_runtime(store_url: str) -> None:
    wf = asking().compile()
    async with Runtime(store_url) as rt:
        first = await rt.run(wf, State(query="first"))
        await rt.signal(first.execution_id, "decision", {"ok": True})
        done = await rt.wait(first.execution_id)
        assert (done.status, done.state.answer) == ("completed", "first: True")
        assert done.events[-1].kind == "execution_completed"

        second = await rt.start_execution(wf, State(query="second"))
        assert (await rt.wait(second)).status == "waiting"
        with pytest.raises(InvalidSignal, match=r"not waiting for event 'nope'.*'decision'"):
            await rt.signal(second, "nope")
        assert await rt.cancel(second, "not needed") is True
        assert await rt.cancel(second) is False  # it had ended
        canceled = await rt.wait(second, until="terminal")
        assert (canceled.status, canceled.error) == ("canceled", "not needed")

        with pytest.raises(UnknownExecution):
            await rt.signal("no-such-execution", "decision")
        with pytest.raises(UnknownExecution):
            await rt.cancel("no-such-execution")
        with pytest.raises(UnknownExecution):
            await rt.wait("no-such-execution")


async def test_wait_takes_up_an_execution_an_earlier_runtime_left(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/app.db"
    wf = asking()
    async with Runtime(url) as earlier:
        parked = await earlier.run(wf, State(query="left"))
    async with Runtime(url) as rt:
        with pytest.raises(ConfigError, match="asking@1 is not known here"):
            await rt.wait(parked.execution_id)
        rt.workflows.add(wf.compile())
        await rt.signal(parked.execution_id, "decision", {"ok": False})
        result = await rt.wait(parked.execution_id)
        assert (result.status, result.state.answer) == ("completed", "left: False")


async def test_a_closed_runtime_says_to_make_a_new_one(tmp_path: Path) -> None:
    wf = asking()
    rt = Runtime(f"sqlite:///{tmp_path}/app.db")
    with pytest.raises(UsageError, match="not started"):
        await rt.run(wf, State())
    async with rt:
        parked = await rt.run(wf, State())
    for closed in (rt.run(wf, State()), rt.wait(parked.execution_id), rt.start()):
        with pytest.raises(UsageError, match=r"was closed .* make a new Runtime"):
            await closed


async def test_closing_a_runtime_during_a_run_says_how_to_go_on(tmp_path: Path) -> None:
    release = asyncio.Event()
    wf = Workflow("slow", version="1")
    wf.state(State)

    @wf.step(next=None)
    async def hold(s: State) -> None:
        await release.wait()

    rt = Runtime(f"sqlite:///{tmp_path}/app.db")
    await rt.start()
    running = asyncio.create_task(rt.run(wf, State()))
    await asyncio.sleep(0.2)
    await rt.close()
    with pytest.raises(UsageError, match=r"make a new Runtime .*run\(workflow, execution_id="):
        await running


async def test_a_failed_step_names_its_exception_type(store_url: str) -> None:
    wf = Workflow("raising", version="1")

    class Config(BaseModel):
        cfg: dict[str, str] = {}

    wf.state(Config)

    @wf.step
    async def load(s: Config) -> None:
        s.cfg["api_key"]

    async with Runtime(store_url) as rt:
        result = await rt.run(wf.compile(), Config())
    assert result.status == "failed"
    assert result.error == "node 'load' failed: KeyError: 'api_key'"
    failed = next(e for e in result.events if e.kind == "node_failed")
    assert failed.data is not None and failed.data["type"] == "KeyError"
