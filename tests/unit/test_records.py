"""The store's records."""

from __future__ import annotations

from dataclasses import astuple, fields

from agent_node.store.records import ExecutionRecord


def test_a_copy_of_an_execution_has_every_field_and_is_its_own() -> None:
    values = [f"value-{f.name}" for f in fields(ExecutionRecord)]
    record = ExecutionRecord(*values)  # type: ignore[arg-type]
    copy = record.copy()
    assert astuple(copy) == astuple(record) == tuple(values)
    copy.cursor = "changed"
    assert record.cursor == "value-cursor"
