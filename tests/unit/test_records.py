"""The store's records."""

from __future__ import annotations

import json
from dataclasses import astuple, fields
from typing import Any

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
def test_copied_keeps_every_field_of_any_record_and_is_its_own(cls: type[Any]) -> None:
    assert all(f.init for f in fields(cls))  # copied() passes every field to the constructor
    values = [f"value-{f.name}" for f in fields(cls)]
    record: Any = cls(*values)
    copy = copied(record)
    assert type(copy) is cls and copy is not record
    assert astuple(copy) == astuple(record) == tuple(values)
    first = fields(cls)[0].name
    setattr(copy, first, "changed")
    assert getattr(record, first) == f"value-{first}"


def test_an_executions_metadata_is_parsed_once_and_carried_by_its_copies() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    metadata = json.dumps({"caller": "mtls:cn=a", "traceparent": traceparent})
    record = ExecutionRecord(
        "e1", "wf", "1", None, "running", "{}", "", 0, None, None, metadata, 0.0, 0.0
    )
    assert record.parsed is None
    assert record.caller == "mtls:cn=a"
    parsed = record.parsed
    assert parsed is not None and record.meta() is parsed
    assert record.copy().meta() is parsed and copied(record).meta() is parsed
    assert record.traceparent is not None and record.parsed is parsed
    # Nothing is kept beyond the record: another record of the same row parses anew.
    again = ExecutionRecord(
        "e1", "wf", "1", None, "running", "{}", "", 0, None, None, metadata, 0.0, 0.0
    )
    assert again.meta() == parsed and again.meta() is not parsed
    bare = ExecutionRecord(
        "e2", "wf", "1", None, "running", "{}", "", 0, None, None, None, 0.0, 0.0
    )
    assert bare.caller is None and bare.meta() == {}
