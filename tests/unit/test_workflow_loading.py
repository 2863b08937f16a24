"""Finding a workflow by reference: a Python file given without the name of
its workflow says which name to add."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_node.errors import ConfigError
from agent_node.workflow.loading import load_workflow

WORKFLOW = """
import re

from pydantic import BaseModel

from agent_node import Workflow

{names} = Workflow("{stem}", version="1")


@{first}.state
class State(BaseModel):
    x: int = 0


@{first}.step(next=None)
async def only(state: State) -> None:
    return None


{first}.run_sync(State())  # an example run at the end, as the README's has
"""


def write(tmp_path: Path, stem: str, names: str) -> Path:
    first = names.split(" = ")[0]
    path = tmp_path / f"{stem}.py"
    path.write_text(WORKFLOW.format(names=names, first=first, stem=stem))
    return path


def refused(ref: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_workflow(ref)
    return str(caught.value)


def test_a_file_with_one_workflow_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, "expense", "wf")
    assert refused(str(path)) == (
        f"{str(path)!r} is a file: give the workflow in it too, as in {path}:wf"
    )
    assert load_workflow(f"{path}:wf").key == "expense@1"


def test_a_file_with_several_workflows_names_each(tmp_path: Path) -> None:
    path = write(tmp_path, "twice", "wf = other")
    assert refused(str(path)).endswith(f"as in {path}:wf or {path}:other")


def test_a_file_with_no_workflow_says_so(tmp_path: Path) -> None:
    path = tmp_path / "steps.py"
    path.write_text("import re\n\nasync def step(state):\n    return None\n")
    assert refused(str(path)).endswith(f"({path}:NAME), but it defines none at its top level")


def test_a_missing_file_says_that_first(tmp_path: Path) -> None:
    assert "no such file" in refused(str(tmp_path / "absent.py"))
