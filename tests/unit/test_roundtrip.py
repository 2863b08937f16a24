"""Which state models read back from their JSON as they were (:mod:`agent_node.engine.roundtrip`):
the runner re-validates the others' JSON for the next node."""

from __future__ import annotations

import datetime
import enum
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from agent_node.engine.roundtrip import json_exact


class Color(enum.Enum):
    RED = "red"


class Leaf(BaseModel):
    n: int = 0
    tags: list[str] = []


class Tree(BaseModel):
    value: int = 0
    children: list[Tree] = []


class Typed(BaseModel):
    text: str = ""
    count: int = 0
    ratio: float = 0.0
    flag: bool = False
    maybe: int | None = None
    either: int | str = 0
    when: datetime.datetime | None = None
    day: datetime.date | None = None
    ident: uuid.UUID | None = None
    price: Decimal = Decimal(0)
    color: Color = Color.RED
    mode: Literal["a", "b"] = "a"
    bounded: Annotated[int, Field(ge=0)] = 0
    items: list[Leaf] = []
    keyed: dict[int, Leaf] = {}
    pair: tuple[int, str] = (0, "")
    many: tuple[int, ...] = ()
    unique: set[int] = set()
    tree: Tree = Tree()


class Open(BaseModel):
    blob: dict[str, Any] = {}


class Parent(BaseModel):
    n: int = 0


class Child(Parent):
    extra: int = 0


class HoldsParent(BaseModel):
    parent: Parent = Parent()


class Normalized(BaseModel):
    text: str = ""

    @field_validator("text")
    @classmethod
    def strip(cls, value: str) -> str:
        return value.strip()


class Serialized(BaseModel):
    when: datetime.datetime = datetime.datetime(2026, 1, 1)

    @field_serializer("when")
    def as_year(self, value: datetime.datetime) -> int:
        return value.year


class Extra(BaseModel):
    model_config = ConfigDict(extra="allow")


class Bare(BaseModel):
    items: list = []  # type: ignore[type-arg]


class Mixed(BaseModel):
    value: datetime.datetime | str = ""


class Anything(BaseModel):
    value: object = None


def test_a_typed_model_reads_back_as_it_was() -> None:
    assert json_exact(Typed)
    state = Typed(
        when=datetime.datetime(2026, 1, 2, 3, 4, 5),
        keyed={1: Leaf(n=1)},
        pair=(1, "x"),
        unique={3, 1},
        tree=Tree(children=[Tree(value=1)]),
    )
    assert Typed.model_validate(state.model_dump(mode="json")) == state


@pytest.mark.parametrize(
    "model", [Open, HoldsParent, Normalized, Serialized, Extra, Bare, Mixed, Anything]
)
def test_a_model_that_can_change_in_a_round_trip_is_not_exact(model: type[BaseModel]) -> None:
    assert not json_exact(model)


def test_why_each_is_not_exact() -> None:
    live = Open(blob={"when": datetime.datetime(2026, 1, 1), "tags": {1}, "m": {1: "x"}})
    assert Open.model_validate(live.model_dump(mode="json")) != live
    held = HoldsParent(parent=Child(n=1, extra=2))
    assert HoldsParent.model_validate(held.model_dump(mode="json")) != held
    mixed = Mixed(value=datetime.datetime(2026, 1, 1))
    assert Mixed.model_validate(mixed.model_dump(mode="json")) != mixed
