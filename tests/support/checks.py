"""Assertions over event logs shared by the crash tests."""

from __future__ import annotations

from collections import Counter

from agent_node.results import Event


def assert_well_formed(events: list[Event]) -> None:
    """Contiguous seqs from 1; ``execution_started`` first; at most one terminal
    event, and it is last; every completion follows a start of that visit; at
    most one completion per visit; attempts of a visit grow."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "seq gap"
    assert events[0].kind == "execution_started"
    terminal = [
        e
        for e in events
        if e.kind in {"execution_completed", "execution_failed", "execution_canceled"}
    ]
    assert len(terminal) <= 1
    if terminal:
        assert terminal[0] is events[-1]
    attempts: dict[tuple[str | None, int | None], list[int]] = {}
    completed: Counter[tuple[str | None, int | None]] = Counter()
    for e in events:
        key = (e.node, e.visit)
        if e.kind == "node_started":
            seen = attempts.setdefault(key, [])
            assert not seen or (e.attempt or 0) > seen[-1], f"attempts of {key} do not grow"
            seen.append(e.attempt or 0)
        if e.kind == "node_completed":
            assert key in attempts, f"{key} completed without starting"
            completed[key] += 1
    assert all(n == 1 for n in completed.values()), f"completed twice: {completed}"
