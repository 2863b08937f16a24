"""A step whose state has a value with no JSON form fails at once, saying
the workflow, the node, where the value is and what it is; nothing of the
state is written, on every store. The same for a run's input.

(Before: ``node 'go' failed: PydanticSerializationError: Unable to
serialize unknown type: <class 'object'>``, or a ``UnicodeDecodeError``,
with no word of which key held it — in a state of nested lists of models,
a search — and a NaN was stored as ``NaN``, which no JSON reader takes.
In a field typed ``Any`` pydantic writes NaN as ``null`` itself.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from agent_node import Runtime, Workflow
from agent_node.errors import StateValidationError


class Item(BaseModel):
    name: str = ""
    when: Any = None
    scores: list[float] = []


class Plan(BaseModel):
    items: list[Item] = []
    extra: Any = None
    score: float = 0.0


class Thing:
    """An object of a class pydantic does not know."""


THREE = [Item(name="a"), Item(name="b")]


@pytest.mark.parametrize(
    ("returned", "where", "found"),
    [
        (
            lambda: {"items": [*THREE, Item(name="c", when=Thing())]},
            "state.items[2].when",
            f"a value of type {__name__}.Thing",
        ),
        (
            lambda: Plan(items=[*THREE, Item(name="c", when={"at": {1, Thing()}})]),
            'state.items[2].when["at"][…]',
            f"a value of type {__name__}.Thing",
        ),
        (lambda: {"extra": {"blob": b"\xff\x00"}}, 'state.extra["blob"]', "bytes that are not"),
        (lambda: {"score": float("nan")}, "state.score", "float nan"),
        (
            lambda: Plan(items=[Item(scores=[1.0, float("inf")])]),
            "state.items[0].scores[1]",
            "float inf",
        ),
    ],
    ids=["object-in-a-patch", "object-in-a-set-in-a-model", "bytes", "nan", "inf-in-a-model"],
)
async def test_a_value_with_no_json_form_is_named_where_it_is(
    store_url: str, returned: Callable[[], Any], where: str, found: str
) -> None:
    wf = Workflow("planner", version="2")
    wf.state(Plan)

    @wf.step
    async def draft(s: Plan) -> dict[str, Any]:
        return {"items": THREE}

    @wf.step(next=None, retry={"max_attempts": 3})
    async def refine(s: Plan) -> Any:
        return returned()

    async with Runtime(store_url) as rt:
        result = await rt.run(wf, Plan())
        assert result.status == "failed"
        error = result.error or ""
        assert "node 'refine' of planner@2 returned a state that cannot be stored as JSON" in error
        assert f"{where} holds {found}" in error, error
        kinds = [(e.kind, e.node) for e in result.events]
        assert kinds.count(("node_failed", "refine")) == 1  # at once: no retry mends it
        assert ("node_completed", "refine") not in kinds
        stored = await rt.store.get(result.execution_id)
        assert stored is not None and json.loads(stored.state)["items"][2:] == []


async def test_a_set_is_stored_as_a_list() -> None:
    """A set in a field typed ``Any`` has a JSON form, a list (the next node
    reads it as stored): not refused."""
    wf = Workflow("tags", version="1")
    wf.state(Plan)

    @wf.step(next=None)
    async def tag(s: Plan) -> dict[str, Any]:
        return {"items": [Item(when={"b", "a"})]}

    async with Runtime("memory://") as rt:
        result = await rt.run(wf, Plan())
        assert result.status == "completed", result.error
        assert sorted(result.state.items[0].when) == ["a", "b"]


@pytest.mark.parametrize(
    ("given", "where"),
    [
        (lambda: Plan(extra={"k": Thing()}), 'state.extra["k"] holds a value of type'),
        (lambda: {"extra": [Thing()]}, "state.extra[0] holds a value of type"),
        (lambda: {"score": float("-inf")}, "state.score holds float -inf"),
    ],
    ids=["model", "dict", "infinity"],
)
async def test_an_input_with_no_json_form_is_refused_before_anything_is_made(
    given: Callable[[], Any], where: str
) -> None:
    wf = Workflow("planner", version="2")
    wf.state(Plan)

    @wf.step(next=None)
    async def draft(s: Plan) -> None:
        return None

    async with Runtime("memory://") as rt:
        with pytest.raises(StateValidationError) as refused:
            await rt.run(wf, given())
        assert "the input of planner@2 cannot be stored as JSON" in str(refused.value)
        assert where in str(refused.value)
        assert await rt.store.list_executions() == []
