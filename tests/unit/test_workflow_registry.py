"""The registry takes one definition however its file was loaded, and still
refuses two different definitions under one version."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_node.engine.registry import WorkflowRegistry
from agent_node.errors import ConfigError
from agent_node.workflow.loading import load_workflow

FLOW = """
from pydantic import BaseModel
from agent_node import Workflow

wf = Workflow("loaded-twice", version="1")


@wf.state
class S(BaseModel):
    answer: object = None


class Answer(BaseModel):
    text: str


@wf.step
async def {name}(s: S) -> None:
    return None


wf.model("ask", prompt="hi", output="answer", schema=Answer)
"""


@pytest.fixture
def flow_dir(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def test_a_module_and_its_file_are_one_definition(flow_dir: Path) -> None:
    (flow_dir / "regflow.py").write_text(FLOW.format(name="step"))
    imported = load_workflow("regflow:wf")  # as `import regflow` names it
    by_path = load_workflow(f"{flow_dir / 'regflow.py'}:wf")  # as an execution's ref
    assert imported is not by_path
    assert imported.ir.nodes["step"].function == "regflow:step"  # type: ignore[union-attr]
    registry = WorkflowRegistry()
    registry.add(imported)
    assert registry.add(by_path) is by_path


def test_another_definition_under_one_version_is_refused(flow_dir: Path) -> None:
    (flow_dir / "regflow_a.py").write_text(FLOW.format(name="step"))
    (flow_dir / "regflow_b.py").write_text(FLOW.format(name="other"))
    registry = WorkflowRegistry()
    registry.add(load_workflow("regflow_a:wf"))
    with pytest.raises(ConfigError, match=r"two different definitions .*loaded-twice@1"):
        registry.add(load_workflow(f"{flow_dir / 'regflow_b.py'}:wf"))


def test_the_same_step_names_in_another_file_are_another_definition(flow_dir: Path) -> None:
    (flow_dir / "regflow_c.py").write_text(FLOW.format(name="step"))
    (flow_dir / "regflow_d.py").write_text(FLOW.format(name="step"))
    registry = WorkflowRegistry()
    registry.add(load_workflow("regflow_c:wf"))
    with pytest.raises(ConfigError, match="bump its version"):
        registry.add(load_workflow("regflow_d:wf"))
