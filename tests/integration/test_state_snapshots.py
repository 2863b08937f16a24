"""A step writes what it changed; the state is a snapshot and the patches
after it, read back whole by whoever needs it — on every store."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agent_node import Runtime, Workflow, current_node
from agent_node.store import ExecutionRecord, Store
from agent_node.store import snapshots as policy
from agent_node.store.patches import StatePatch, dumps
from agent_node.store.txn import Txn

#: Larger than a row holds: the state lives as a snapshot and patches.
BLOB = "0123456789abcdef" * 256


class Doc(BaseModel):
    blob: str = ""
    n: int = 0
    lines: list[str] = []
    note: str | None = None


#: What each body got, and what the store read meanwhile.
Seen = list[tuple[int, dict[str, Any], ExecutionRecord]]


def growing(steps: int, seen: Seen | None = None, store: Store | None = None) -> Workflow:
    """One step looping ``steps`` times: it counts, and appends a line.
    ``seen``: what each body got, and what ``store.get`` read meanwhile."""
    wf = Workflow(f"growing{steps}", version="1")
    wf.state(Doc)

    async def grow(state: Doc) -> dict[str, Any]:
        if seen is not None and store is not None:
            read = await store.get(current_node().execution_id)
            assert read is not None
            seen.append((state.n, state.model_dump(mode="json"), read))
        return {"n": state.n + 1, "lines": [*state.lines, f"line {state.n}"]}

    wf.step(grow, next=lambda s: "grow" if s.n < steps else None, routes=["grow"])
    return wf


async def row_state(store: Store, execution_id: str) -> tuple[str, int, int]:
    """What the execution's row holds of the state (not the whole state: a
    transaction sees the row), its ``state_seq`` and ``snapshot_seq``."""

    def look(txn: Txn) -> tuple[str, int, int]:
        record = txn.execution
        return record.state, record.state_seq, record.snapshot_seq

    result: tuple[str, int, int] = await store.apply(execution_id, look)
    return result


async def test_a_step_on_a_large_state_writes_its_change_only(
    store_url: str, runtime_factory: Any
) -> None:
    rt: Runtime = await runtime_factory(store_url)
    result = await rt.run(growing(30).compile(), Doc(blob=BLOB))
    assert result.status == "completed"
    assert result.state == Doc(blob=BLOB, n=30, lines=[f"line {i}" for i in range(30)])
    completed = [e for e in result.events if e.kind == "node_completed"]
    assert len(completed) == 30
    for event in completed:
        assert "blob" not in json.dumps(event.data)
    # The first line makes a list (a value); each later one is an append of one line.
    assert completed[0].data is not None
    assert completed[0].data["patch"] == {"n": 1, "lines": ["line 0"]}
    assert "append" not in completed[0].data
    assert [(e.data or {}).get("patch") for e in completed[1:]] == [{"n": i} for i in range(2, 31)]
    assert [(e.data or {}).get("append") for e in completed[1:]] == [
        {"lines": [f"line {i}"]} for i in range(1, 30)
    ]
    row, state_seq, snapshot_seq = await row_state(rt.store, result.execution_id)
    assert row == ""  # too large for the row: a snapshot (the input) and patches
    assert snapshot_seq == 0 and state_seq == completed[-1].seq
    read = await rt.store.get(result.execution_id)
    assert read is not None and Doc.model_validate_json(read.state) == result.state


async def test_the_state_read_back_at_every_step_is_the_one_the_step_got(
    store_url: str, runtime_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With snapshots every few events, every read (a snapshot and the patches
    after it) gives the state as the engine carried it, and never folds more
    than the policy allows."""
    monkeypatch.setattr(policy, "SNAPSHOT_EVENTS", 8)
    seen: Seen = []
    rt: Runtime = await runtime_factory(store_url)
    result = await rt.run(growing(40, seen, rt.store).compile(), Doc(blob=BLOB))
    assert result.status == "completed" and result.state.n == 40  # type: ignore[attr-defined]
    assert [n for n, _, _ in seen] == list(range(40))
    snapshots = set()
    for _, given, read in seen:
        assert json.loads(read.state) == given
        assert read.state_seq - read.snapshot_seq < 8 + 2  # one step's events past the limit
        snapshots.add(read.snapshot_seq)
    assert len(snapshots) >= 8  # taken as the patches grew, not once


async def test_a_state_that_shrinks_goes_back_into_the_row(
    store_url: str, runtime_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy, "SNAPSHOT_EVENTS", 4)
    wf = Workflow("shrink", version="1")
    wf.state(Doc)

    @wf.step
    async def drop(state: Doc) -> dict[str, Any]:
        return {"blob": ""}

    for i in range(4):
        wf.step(_bump, name=f"bump{i}")
    rt: Runtime = await runtime_factory(store_url)
    result = await rt.run(wf.compile(), Doc(blob=BLOB))
    assert result.state == Doc(n=4)
    row, state_seq, snapshot_seq = await row_state(rt.store, result.execution_id)
    assert json.loads(row) == {"blob": "", "n": 4, "lines": [], "note": None}
    assert state_seq == snapshot_seq


async def _bump(state: Doc) -> dict[str, Any]:
    return {"n": state.n + 1}


async def test_parallel_branches_on_a_large_state_merge_their_patches(
    store_url: str, runtime_factory: Any
) -> None:
    """Three branches read the same state, each sets a key of its own and
    appends to one list, committing in turns: each later patch applies over
    the state the earlier ones made (no key and no line is lost), and a
    node after the join sees it all."""

    class Fan(BaseModel):
        blob: str = ""
        lines: list[str] = ["start"]
        a: int = 0
        b: int = 0
        c: int = 0
        total: int = 0

    wf = Workflow("fan", version="1")
    wf.state(Fan)
    wf.parallel("fan", ["a", "b", "c"], join="meet")
    for name, pause in (("a", 0.2), ("b", 0.0), ("c", 0.4)):

        async def branch(state: Fan, _name: str = name, _pause: float = pause) -> dict[str, Any]:
            await asyncio.sleep(_pause)
            return {_name: 1, "lines": [*state.lines, _name]}

        wf.step(branch, name=name, next="meet")
    wf.join("meet")

    @wf.step(next=None)
    async def add(state: Fan) -> dict[str, Any]:
        return {"total": state.a + state.b + state.c + len(state.lines)}

    rt: Runtime = await runtime_factory(store_url)
    result = await rt.run(wf.compile(), Fan(blob=BLOB))
    assert result.status == "completed"
    final: Any = result.state
    assert (final.a, final.b, final.c) == (1, 1, 1)
    assert final.lines == ["start", "b", "a", "c"]  # in the order they committed
    assert final.total == 3 + 4
    read = await rt.store.get(result.execution_id)
    assert read is not None and json.loads(read.state) == final.model_dump(mode="json")


async def test_a_signal_changes_a_large_state_through_the_model(
    store_url: str, runtime_factory: Any
) -> None:
    """A wait's payload is validated against the whole state (read for the
    transaction) and logged as the model has it."""

    class Approval(BaseModel):
        blob: str = ""
        count: int = 0
        lines: list[str] = []

    wf = Workflow("approve-large", version="1")
    wf.state(Approval)

    @wf.step
    async def first(state: Approval) -> dict[str, Any]:
        return {"lines": ["asked"]}

    wf.wait("ask", event="decision", output="count")

    @wf.step(next=None)
    async def after(state: Approval) -> dict[str, Any]:
        return {"lines": [*state.lines, f"count={state.count}"]}

    rt: Runtime = await runtime_factory(store_url)
    parked = await rt.run(wf.compile(), Approval(blob=BLOB))
    assert parked.status == "waiting"
    await rt.engine.control.signal(parked.execution_id, "decision", "7")
    done = await rt.run(wf.compile(), execution_id=parked.execution_id)
    assert done.state == Approval(blob=BLOB, count=7, lines=["asked", "count=7"])
    resolved = [e for e in done.events if e.kind == "node_completed" and e.node == "ask"]
    assert resolved[0].data is not None and resolved[0].data["patch"] == {"count": 7}


async def test_small_states_stay_whole_in_the_row(store_url: str, runtime_factory: Any) -> None:
    rt: Runtime = await runtime_factory(store_url)
    result = await rt.run(growing(5).compile(), Doc())
    row, state_seq, snapshot_seq = await row_state(rt.store, result.execution_id)
    assert Doc.model_validate_json(row) == result.state
    assert state_seq == snapshot_seq > 0
    assert len(row) <= policy.ROW_LIMIT


async def test_a_store_told_nothing_of_the_input_keeps_a_large_one_itself(store: Store) -> None:
    """A store used directly: the input is not known to be logged, so a large
    one is kept as the first snapshot; patches apply to it."""
    now = time.time()
    text = dumps({"blob": BLOB, "n": 0})
    record = ExecutionRecord(
        "big", "wf", "1", None, "running", text, "", 0, None, None, None, now, now
    )

    def start(txn: Txn) -> None:
        txn.event("execution_started", data='{"input":"not this"}')

    def change(txn: Txn) -> None:
        event = txn.event("node_completed", "a", 1, data=dumps({"patch": {"n": 1}}))
        txn.change_state(StatePatch({"n": 1}), event.seq, len(event.data or ""))

    await store.create(record, start)
    read = await store.get("big")
    assert read is not None and read.state == text
    await store.apply("big", change)
    read = await store.get("big")
    assert read is not None and json.loads(read.state) == {"blob": BLOB, "n": 1}
    assert read.state_seq == 2 and read.snapshot_seq == 0


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts bytes from /proc/self/io")
async def test_sqlite_writes_a_step_not_the_state(tmp_path: Path, runtime_factory: Any) -> None:
    """Bytes the process writes (WAL frames, checkpoints) per step of a
    1 MB state: a step's own pages, not the state (it was 3.3 MB a step)."""
    marks: list[int] = []

    def written() -> int:
        text = Path("/proc/self/io").read_text()
        return int(next(line for line in text.splitlines() if line.startswith("wchar:")).split()[1])

    wf = Workflow("megabyte", version="1")
    wf.state(Doc)

    @wf.step
    async def settle(state: Doc) -> dict[str, Any]:
        await asyncio.sleep(1.0)  # the input's pages are checkpointed meanwhile
        return {"n": 1}

    for i in range(20):

        async def bump(state: Doc) -> dict[str, Any]:
            marks.append(written())
            return {"n": state.n + 1}

        wf.step(bump, name=f"bump{i}")
    rt: Runtime = await runtime_factory(f"sqlite:///{tmp_path}/big.db")
    blob = os.urandom(500_000).hex()
    result = await rt.run(wf.compile(), Doc(blob=blob))
    assert result.status == "completed" and result.state.n == 21  # type: ignore[attr-defined]
    per_step = (marks[-1] - marks[0]) / (len(marks) - 1)
    assert per_step < 100_000, f"{per_step:.0f} bytes written per step"
