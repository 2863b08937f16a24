"""The store's records."""

from __future__ import annotations

from dataclasses import astuple, fields

import pytest

from agent_node.store.records import (
    Claim,
    DelegationRecord,
    EventRecord,
    ExecutionRecord,
    PushClaim,
    PushConfigRecord,
    WaitRecord,
    WorkItem,
    copied,
)


def test_a_copy_of_an_execution_has_every_field_and_is_its_own() -> None:
    values = [f"value-{f.name}" for f in fields(ExecutionRecord)]
    record = ExecutionRecord(*values)  # type: ignore[arg-type]
    copy = record.copy()
    assert astuple(copy) == astuple(record) == tuple(values)
    copy.cursor = "changed"
    assert record.cursor == "value-cursor"


@pytest.mark.parametrize(
    "cls",
    [
        ExecutionRecord,
        EventRecord,
        WorkItem,
        WaitRecord,
        DelegationRecord,
        PushConfigRecord,
        Claim,
        PushClaim,
    ],
)
def test_copied_keeps_every_field_of_any_record_and_is_its_own(cls: type) -> None:
    assert all(f.init for f in fields(cls))  # copied() passes every field to the constructor
    values = [f"value-{f.name}" for f in fields(cls)]
    record = cls(*values)
    copy = copied(record)
    assert type(copy) is cls and copy is not record
    assert astuple(copy) == astuple(record) == tuple(values)
    first = fields(cls)[0].name
    setattr(copy, first, "changed")
    assert getattr(record, first) == f"value-{first}"
