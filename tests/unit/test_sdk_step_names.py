"""A step function given where a node is meant (``next=``, a parallel's
branches, an eval's ``revise``) names the node it was declared as, its
``name=`` included."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from agent_node import Runtime, Workflow
from agent_node.errors import WorkflowDefinitionError
from agent_node.nodes.eval import EvalNode
from agent_node.workflow.ir import ParallelNode, PythonNode


class S(BaseModel):
    paid: bool = False
    notified: bool = False
    feedback: str = ""


def charging(workflow_id: str) -> Workflow[S]:
    """notify, then ``next=`` the step declared as ``charge-card``."""
    wf: Workflow[S] = Workflow(workflow_id, version="1", start="notify")
    wf.state(S)

    @wf.step(name="charge-card", next=None)
    async def charge(s: S) -> dict[str, Any]:
        return {"paid": True}

    @wf.step(next=charge)
    async def notify(s: S) -> dict[str, Any]:
        return {"notified": True}

    return wf


def test_next_a_step_declared_with_a_name() -> None:
    node = charging("next-named").compile().ir.nodes["notify"]
    assert isinstance(node, PythonNode)
    assert (node.next, node.dynamic_next) == ("charge-card", False)


async def test_the_named_step_runs_next() -> None:
    async with Runtime("memory://") as rt:
        result = await rt.run(charging("next-named-run").compile(), S())
    assert (result.status, result.error) == ("completed", None)
    assert result.state == S(paid=True, notified=True)


def test_branches_and_revise_name_steps_declared_later() -> None:
    wf = Workflow("named-later", version="1")
    wf.state(S)

    async def left(s: S) -> None:
        return None

    async def right(s: S) -> None:
        return None

    async def draft(s: S) -> None:
        return None

    wf.parallel("both", [left, right], join="j")
    wf.step(left, name="pay-left", next="j")
    wf.step(right, name="pay-right", next="j")
    wf.join("j", next="draft-it")
    wf.step(draft, name="draft-it")
    wf.eval(
        "check",
        scorers=[{"type": "assertion", "expr": "state.paid"}],
        on_fail="retry_with_feedback",
        revise=draft,
    )
    nodes = wf.compile().ir.nodes
    both, check = nodes["both"], nodes["check"]
    assert isinstance(both, ParallelNode) and both.branches == ["pay-left", "pay-right"]
    assert isinstance(check, EvalNode) and check.revise == "draft-it"


def test_a_function_declared_as_two_steps_is_ambiguous() -> None:
    wf = Workflow("twice", version="1")
    wf.state(S)

    async def same(s: S) -> None:
        return None

    wf.step(same, name="a", next=None)
    wf.step(same, name="b", next=None)

    @wf.step(next=same)
    async def first(s: S) -> None:
        return None

    with pytest.raises(WorkflowDefinitionError, match=r"same is declared as 2 steps \(a, b\)"):
        wf.compile()
