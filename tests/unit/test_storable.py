"""Where a value has no JSON form: the first place at fault, named from the
root, and what is there; what pydantic writes as JSON is not at fault."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from agent_node.engine.storable import finite, unstorable


class Color(enum.Enum):
    RED = "red"


class Inner(BaseModel):
    model_config = ConfigDict(extra="allow")
    value: Any = None


@dataclasses.dataclass
class Point:
    x: Any


@pytest.mark.parametrize(
    "value",
    [
        {"s": "é", "i": 10**30, "f": -0.0, "b": True, "n": None},
        [datetime.datetime(2026, 1, 1), datetime.date(2026, 1, 1), uuid.uuid4()],
        (decimal.Decimal("1.5"), Color.RED, {1, 2}, frozenset({"a"})),
        {(1, 2): "a tuple key", 3: "an int key", Color.RED: "an enum key"},
        Inner(value=[Point(x=1)], other=b"utf-8 text"),
    ],
    ids=["scalars", "dates", "sets-and-enums", "keys", "model"],
)
def test_what_pydantic_writes_as_json_is_not_at_fault(value: object) -> None:
    assert unstorable(value, "state") is None


class Thing:
    pass


def cycle() -> list[Any]:
    loop: list[Any] = [1]
    loop.append({"back": loop})
    return loop


@pytest.mark.parametrize(
    ("value", "path", "found"),
    [
        ({"a": [1, {"b": Thing()}]}, 'state["a"][1]["b"]', f"a value of type {__name__}.Thing"),
        (Inner(value=Inner(deep=[Point(x=range(3))])), "state.value.deep[0].x", "type range"),
        ({"k": {Thing(): 1}}, 'state["k"]', f"a key of type {__name__}.Thing"),
        ([b"ok", bytearray(b"\x80")], "state[1]", "bytes that are not UTF-8 text"),
        ({"x": [0.5, float("nan")]}, 'state["x"][1]', "float nan"),
        (cycle(), 'state[1]["back"]', "a value that holds it (a cycle)"),
        ({"t": {Thing()}}, 'state["t"][…]', "a value of type"),
    ],
    ids=["object", "extra-field-in-a-dataclass", "key", "bytes", "nan", "cycle", "in-a-set"],
)
def test_the_first_value_at_fault_is_named_where_it_is(
    value: object, path: str, found: str
) -> None:
    fault = unstorable(value, "state")
    assert fault is not None
    assert fault.path == path
    assert found in fault.found
    assert str(fault).startswith(f"{path} holds {fault.found}; ")


def test_finite_refuses_nan_and_the_infinities_anywhere() -> None:
    assert finite({"a": [1, 2.5, None, "nan"], "b": {"c": 1e308}})
    for bad in (float("nan"), float("inf"), float("-inf")):
        assert not finite(({"a": [{"b": bad}]}, {}))
