"""One workflow file, loaded in the ways a library user's processes load it:
run as a script (``__main__``), imported as a module, loaded again from the
reference an execution recorded. Each is the same definition; a definition
changed without a new version is told apart, clearly, and its executions
are left as they were."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FLOW = """
from __future__ import annotations

import asyncio
import json
import sys

from pydantic import BaseModel

from agent_node import Runtime, Workflow

URL = "sqlite:///" + sys.argv[2]
wf = Workflow("twice-loaded", version="1")


@wf.state
class S(BaseModel):
    items: list[str] = []


@wf.step
async def one(s: S) -> dict[str, list[str]]:
    return {"items": [*s.items, "one"]}


wf.wait("pause", event="go")


@wf.step(next=None)
async def two(s: S) -> dict[str, list[str]]:
    return {"items": [*s.items, "two"]}


async def park() -> None:
    async with Runtime(URL) as rt:
        r = await rt.run(wf.compile(), S())
        print(json.dumps({"status": r.status, "id": r.execution_id}))


if __name__ == "__main__":
    asyncio.run(park())
"""

#: A second process imports the file as a module, finishes what the first
#: left (loading its workflow by the recorded reference) and starts a new run.
FINISH_AND_RUN = """
import asyncio, json, sys

from agent_node import Runtime
from flow import S, wf


async def main() -> None:
    async with Runtime("sqlite:///" + sys.argv[2], scope="all") as rt:
        await rt.engine.control.signal(sys.argv[1], "go")
        for _ in range(100):
            left = await rt.store.get(sys.argv[1])
            if left is not None and left.status == "completed":
                break
            await asyncio.sleep(0.1)
        try:
            r = await rt.run(wf.compile(), S())
            new = r.status
        except Exception as exc:
            new = f"{type(exc).__name__}: {exc}"
        print(json.dumps({"left": left.status if left else None, "new": new}))


asyncio.run(main())
"""


def run(args: list[str], cwd: Path) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def rows(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT workflow_ref, status, state FROM executions"))


def test_a_script_and_its_module_are_one_definition(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    (tmp_path / "finish.py").write_text(FINISH_AND_RUN)
    db = tmp_path / "flow.db"

    parked = run(["flow.py", "park", str(db)], tmp_path)
    assert parked["status"] == "waiting"
    # A script's execution names the script by its file: __main__ means
    # another module in every other process.
    [(ref, _, _)] = rows(db)
    assert ref == f"{(tmp_path / 'flow.py').resolve()}:wf"

    after = run(["finish.py", parked["id"], str(db)], tmp_path)
    assert after == {"left": "completed", "new": "waiting"}
    states = sorted(json.loads(state)["items"] for _, _, state in rows(db))
    assert states == [["one"], ["one", "two"]]


#: Phase "1" parks on a wait; "2" is the same id and version changed (a new
#: required state key, the wait renamed); "1again" is the old definition back.
CHANGED = """
import asyncio, json, sys
from typing import Any

from pydantic import BaseModel

from agent_node import Runtime, Workflow

phase, db = sys.argv[1], sys.argv[2]
wf = Workflow("changed", version="1")

if phase == "2":
    @wf.state
    class S(BaseModel):
        name: str
        score: int
        decision: dict[str, Any] | None = None

    wf.wait("review", event="decision", output="decision")
else:
    @wf.state
    class S(BaseModel):  # type: ignore[no-redef]
        name: str
        decision: dict[str, Any] | None = None

    wf.wait("approve", event="decision", output="decision")


async def main() -> None:
    async with Runtime("sqlite:///" + db) as rt:
        if phase == "1":
            r = await rt.run(wf.compile(), {"name": "Ada"})
            print(json.dumps({"id": r.execution_id, "status": r.status}))
            return
        eid = sys.argv[3]
        said = {}
        for what, act in [
            ("signal", lambda: rt.engine.control.signal(eid, "decision", {"ok": True})),
            ("resume", lambda: rt.run(wf.compile(), execution_id=eid)),
        ]:
            try:
                out = await asyncio.wait_for(act(), 20)
                said[what] = getattr(out, "status", "ok")
            except Exception as exc:
                said[what] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(said))


asyncio.run(main())
"""


def test_a_definition_changed_without_a_new_version_is_said_and_harms_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "changed.py").write_text(textwrap.dedent(CHANGED))
    db = tmp_path / "changed.db"
    parked = run(["changed.py", "1", str(db)], tmp_path)
    assert parked["status"] == "waiting"
    before = rows(db)

    said = run(["changed.py", "2", str(db), parked["id"]], tmp_path)
    eid = parked["id"]
    assert said["signal"] == (
        f"ConfigError: execution {eid} is at node 'approve', which changed@1 no longer"
        " has: the workflow changed without a new version. Bump its version and keep the"
        " old definition registered until its executions have ended (README: 'Changing a"
        " workflow'); the execution is left as it is"
    )
    assert said["resume"].startswith(
        f"ConfigError: the state of execution {eid} does not fit the state model of"
        " changed@1 (score: "
    )
    assert "Bump its version" in said["resume"] and "pydantic.dev" not in said["resume"]
    assert rows(db) == before  # nothing written: still parked where it was

    back = run(["changed.py", "1again", str(db), eid], tmp_path)
    assert back == {"signal": "ok", "resume": "completed"}


#: A script parks, a second runtime of the same process signals (loading the
#: workflow by the reference recorded: the script itself), then runs on.
SAME_PROCESS = """
import asyncio, json, sys

from pydantic import BaseModel

from agent_node import Runtime, Workflow

wf = Workflow("same-process", version="1")


@wf.state
class S(BaseModel):
    x: int = 0


wf.wait("park", event="go")


@wf.step(next=None)
async def fin(s: S) -> dict[str, int]:
    return {"x": 1}


async def main() -> None:
    url = "sqlite:///" + sys.argv[1]
    async with Runtime(url) as rt:
        eid = (await rt.run(wf.compile(), S())).execution_id
    async with Runtime(url) as rt:
        await rt.engine.control.signal(eid, "go")
        loaded = rt.workflows.get("same-process", "1", None)
        try:
            r = await rt.run(wf.compile(), execution_id=eid)
            said = [r.status, r.state.x]
        except Exception as exc:
            said = [f"{type(exc).__name__}: {exc}"]
        print(json.dumps({"run": said, "same": loaded is wf.compile()}))


if __name__ == "__main__":
    asyncio.run(main())
"""


def test_a_script_loading_its_own_reference_gets_itself(tmp_path: Path) -> None:
    (tmp_path / "same.py").write_text(SAME_PROCESS)
    said = run(["same.py", str(tmp_path / "same.db")], tmp_path)
    # The script's file is the script: not run a second time as another module.
    assert said == {"run": ["completed", 1], "same": True}
