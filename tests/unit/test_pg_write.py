"""Which write sets the PostgreSQL one-statement commit carries (pg_write.compact)."""

from __future__ import annotations

from agent_node.store.pg_write import compact
from agent_node.store.records import DelegationRecord, ExecutionRecord, WaitRecord, WorkItem
from agent_node.store.txn import StateWrite, Txn


def _txn() -> Txn:
    record = ExecutionRecord("e", "wf", "1", None, "running", "{}", "", 3, None, None, None, 0, 0)
    return Txn(record, 1.0)


def _work(node: str) -> WorkItem:
    return WorkItem("e", node, 1, 1, 1.0, "w", 2.0, 1)


def test_a_step_that_moves_to_the_next_node_is_compact() -> None:
    txn = _txn()
    txn.event("node_completed", "a", 1, 1, "{}")
    txn.delete_work("a", 1)
    txn.put_work(_work("b"))
    txn.notify("work")
    assert compact(txn)


def test_wait_rows_and_a_state_in_the_row_are_compact() -> None:
    txn = _txn()
    txn.put_wait(WaitRecord("e", "a", 1, "event", "go", None))
    txn.delete_wait("b", 1)
    txn.state_write = StateWrite(row='{"x":1}')
    assert compact(txn)


def test_a_row_deleted_and_upserted_in_one_set_is_not() -> None:
    txn = _txn()
    txn.delete_work("a", 1)
    txn.put_work(_work("a"))
    assert not compact(txn)
    twice = _txn()
    twice.put_wait(WaitRecord("e", "a", 1, "event", "go", None))
    twice.put_wait(WaitRecord("e", "a", 1, "event", "stop", None))
    assert not compact(twice)


def test_snapshots_and_delegations_are_not() -> None:
    snapshot = _txn()
    snapshot.state_write = StateWrite(row="", table='{"big":1}')
    dropped = _txn()
    dropped.state_write = StateWrite(row="{}", drop=True)
    delegation = _txn()
    delegation.put_delegation(
        DelegationRecord("e", "a", 1, "peer", "t", "http://p", "1.0", None, 0.0, 1.0, 0)
    )
    assert not any(compact(t) for t in (snapshot, dropped, delegation))


def test_a_log_cut_short_by_a_run_continued_as_new_is_not() -> None:
    txn = _txn()
    restarted = txn.event("execution_restarted", data='{"input":{}}')
    txn.state_write = StateWrite(row="{}")
    assert compact(txn)
    txn.log_from = restarted.seq  # the events before it are deleted: the locked path
    assert not compact(txn)
