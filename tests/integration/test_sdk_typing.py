"""The SDK as ``mypy --strict`` sees a library user's code: decorated steps
keep their types, a run's state is the workflow's model, the names a typed
app annotates with are exported, and a misspelt import is an error, not an
``Any``. mypy runs as a user runs it, a subprocess (from the checkout, with
the project's settings — strict — and its cache)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.readme_blocks import python_block

ROOT = Path(__file__).resolve().parents[2]


TYPED = """
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agent_node import (
    Budget,
    CompiledWorkflow,
    NodeContext,
    Restart,
    RetryPolicy,
    RunResult,
    Runtime,
    Workflow,
    continue_as_new,
    current_node,
)

wf: Workflow[Counter] = Workflow("typed", version="1")


@wf.state
class Counter(BaseModel):
    n: int = 0


@wf.step(retry=RetryPolicy(max_attempts=2), timeout=5)
async def inc(s: Counter) -> Counter:
    return s.model_copy(update={"n": s.n + 1})


@wf.step
async def again(s: Counter) -> Counter | Restart:
    return continue_as_new(Counter()) if s.n > 9 else s


@wf.step(next=None)
async def done(s: Counter) -> dict[str, Any]:
    return {"n": current_node().attempt}


def register(w: CompiledWorkflow[Counter], budget: Budget | None = None) -> None: ...


def attempt(ctx: NodeContext) -> int:
    return ctx.attempt


async def use() -> int:
    register(wf.compile())
    first = await wf.run(Counter())
    resumed = await wf.run(execution_id=first.execution_id)
    reveal_type(inc)
    reveal_type(first)
    reveal_type(resumed.state)
    return first.state.n + resumed.state.n


async def embedded() -> int:
    async with Runtime("memory://") as rt:
        ran = await rt.run(wf, Counter())
        compiled = await rt.run(wf.compile(), execution_id=ran.execution_id)
        reveal_type(ran.state)
        return ran.state.n + compiled.state.n


plain = Workflow("plain")
plain.state(Counter)
given: RunResult[Counter] = plain.run_sync(Counter(n=1))
reveal_type(plain.run_sync(execution_id="x").state)
"""

MISSPELT = """
from agent_node import Wrokflow
"""

#: What mypy says of TYPED: the notes of its reveal_type calls, in order.
REVEALED = [
    "def (s: typed.Counter) -> typing.Coroutine[Any, Any, typed.Counter]",
    "agent_node.results.RunResult[typed.Counter]",
    "typed.Counter",
    "typed.Counter",
    "pydantic.main.BaseModel",
]


@pytest.mark.timeout(600)  # a first run checks the package too (then cached)
def test_user_code_type_checks_under_strict() -> None:
    # One folder for every run, its mypy cache beside it: mypy replays what
    # a cached module said under the path it had then, so user code in a new
    # folder each run was reported at the first run's paths (and a cache of
    # its own in a new folder would check the package cold every run).
    work = Path.home() / ".cache" / "agent-node-tests" / "sdk-typing"
    (work / "code").mkdir(parents=True, exist_ok=True)
    code = work / "code"
    (code / "typed.py").write_text(TYPED)
    (code / "readme_example.py").write_text(python_block("A workflow in Python"))
    (code / "misspelt.py").write_text(MISSPELT)
    strict = ["--strict", "--no-error-summary", "--cache-dir", str(work / "mypy-cache")]
    done = subprocess.run(
        [sys.executable, "-m", "mypy", *strict, str(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=590,
        check=False,
    )
    lines = [line.replace(f"{code}/", "") for line in done.stdout.splitlines()]
    errors = [line for line in lines if ": error:" in line]
    assert errors == [
        'misspelt.py:2: error: Module "agent_node" has no attribute "Wrokflow";'
        ' maybe "Workflow"?  [attr-defined]'
    ], done.stdout + done.stderr
    revealed = [
        re.sub(r"^typed\.py:\d+: note: Revealed type is ", "", line).strip('"')
        for line in lines
        if "Revealed type" in line
    ]
    assert revealed == REVEALED
