"""Engine behaviour through the Python SDK, on every store."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest
from pydantic import BaseModel

from agent_node import (
    InvalidSignal,
    RetryPolicy,
    Runtime,
    StateValidationError,
    UnknownExecution,
    UsageError,
    Workflow,
)
from agent_node.results import Event

FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.01, backoff=2, jitter=0)


def assert_well_formed(events: list[Event]) -> None:
    """Contiguous seqs, started first, one terminal event last, each completed
    node started before, and at most one completion per visit."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].kind == "execution_started"
    terminal = [e for e in events if e.kind.startswith("execution_") and e.seq > 1]
    assert len(terminal) <= 1
    if terminal:
        assert terminal[0] is events[-1]
    started: set[tuple[str | None, int | None, int | None]] = set()
    completed: Counter[tuple[str | None, int | None]] = Counter()
    for e in events:
        if e.kind == "node_started":
            started.add((e.node, e.visit, e.attempt))
        if e.kind == "node_completed":
            completed[(e.node, e.visit)] += 1
    assert all(count == 1 for count in completed.values()), completed


class Count(BaseModel):
    n: int = 0
    trail: list[str] = []


def counting_workflow(name: str = "count") -> tuple[Workflow, Counter[str]]:
    wf = Workflow(name, version="1")
    calls: Counter[str] = Counter()
    wf.state(Count)

    @wf.step
    async def first(s: Count) -> Count:
        calls["first"] += 1
        return s.model_copy(update={"n": s.n + 1, "trail": [*s.trail, "first"]})

    @wf.step
    async def second(s: Count) -> dict[str, Any]:
        calls["second"] += 1
        return {"n": s.n * 10, "trail": [*s.trail, "second"]}

    @wf.step
    async def third(s: Count) -> None:
        calls["third"] += 1

    return wf, calls


async def test_sequential_steps_commit_in_order(store_url: str, runtime_factory: Any) -> None:
    wf, calls = counting_workflow()
    rt: Runtime = await runtime_factory(store_url)
    result = await rt.run(wf.compile(), Count())
    assert result.status == "completed"
    assert result.state == Count(n=10, trail=["first", "second"])
    assert calls == Counter(first=1, second=1, third=1)
    assert_well_formed(result.events)
    assert [(r.node, r.status) for r in result.timeline] == [
        ("first", "completed"),
        ("second", "completed"),
        ("third", "completed"),
    ]


async def test_a_long_run_of_steps_that_never_wait_lets_the_loop_run(
    store_url: str, runtime_factory: Any
) -> None:
    # No step awaits anything, and an in-memory or SQLite commit need not
    # either: the loop must still get its turns (sockets, timers, requests).
    steps = 500
    wf = Workflow("busy", version="1")
    wf.state(Count)
    ran = 0

    async def step(s: Count) -> None:
        nonlocal ran
        ran += 1

    for i in range(steps):
        wf.step(step, name=f"s{i}")
    rt: Runtime = await runtime_factory(store_url)
    loop = asyncio.get_running_loop()
    seen: list[int] = []
    loop.call_later(0.001, lambda: seen.append(ran))
    result = await rt.run(wf.compile(), Count())
    assert result.status == "completed" and ran == steps
    assert seen and seen[0] < steps, f"the loop's timer ran only after step {seen}"


async def test_rerun_of_a_completed_execution_runs_nothing(
    store_url: str, runtime_factory: Any
) -> None:
    wf, calls = counting_workflow()
    rt: Runtime = await runtime_factory(store_url)
    first = await rt.run(wf.compile(), Count(), execution_id="fixed-id")
    again = await rt.run(wf.compile(), Count(), execution_id="fixed-id")
    assert again.state == first.state and again.status == "completed"
    with pytest.raises(UsageError, match="fixed-id was started with another input"):
        await rt.run(wf.compile(), Count(n=5), execution_id="fixed-id")
    assert calls == Counter(first=1, second=1, third=1)


async def test_routing_by_function_predicates_and_branch(
    store_url: str, runtime_factory: Any
) -> None:
    wf = Workflow("route", version="1")
    wf.state(Count)

    @wf.step(next=lambda s: "small" if s.n < 3 else "big", routes=["small", "big"])
    async def bump(s: Count) -> Count:
        return s.model_copy(update={"n": s.n + 1})

    @wf.step(next={"bump": lambda s: s.n < 3, "judge": lambda s: True})
    async def small(s: Count) -> Count:
        return s.model_copy(update={"trail": [*s.trail, f"small{s.n}"]})

    @wf.step(next="judge")
    async def big(s: Count) -> Count:
        return s.model_copy(update={"trail": [*s.trail, "big"]})

    wf.branch(
        "judge", {"high": "state.n >= 3 and state.n < 100 and len(state.trail) > 0"}, default="low"
    )
    wf.end("high", output=["n"])
    wf.end("low", status="failed", message="out of range: {{ state.n }}")

    rt: Runtime = await runtime_factory(store_url)
    result = await rt.run(wf.compile(), Count())
    assert result.status == "completed", result.error
    assert result.state.trail == ["small1", "small2", "big"]  # type: ignore[attr-defined]
    assert result.output == {"n": 3}
    visits = [(r.node, r.visit) for r in result.timeline if r.node == "bump"]
    assert visits == [("bump", 1), ("bump", 2), ("bump", 3)]
    low = await rt.run(wf.compile(), Count(n=200))
    assert low.status == "failed" and low.error == "out of range: 201"


async def test_parallel_branches_meet_at_the_join_once(
    store_url: str, runtime_factory: Any
) -> None:
    class Par(BaseModel):
        left: str = ""
        right: str = ""
        joined: int = 0

    wf = Workflow("par", version="1")
    wf.state(Par)
    wf.parallel("fan", ["left", "right"], join="meet")

    @wf.step(next="meet")
    async def left(s: Par) -> dict[str, Any]:
        await asyncio.sleep(0.02)
        return {"left": "L"}

    @wf.step(next="meet")
    async def right(s: Par) -> dict[str, Any]:
        return {"right": "R"}

    wf.join("meet")

    @wf.step
    async def after(s: Par) -> dict[str, Any]:
        return {"joined": s.joined + 1}

    rt: Runtime = await runtime_factory(store_url)
    result = await rt.run(wf.compile(), Par())
    assert result.status == "completed", result.error
    assert result.state == Par(left="L", right="R", joined=1)
    assert_well_formed(result.events)
    assert [r.node for r in result.timeline].count("after") == 1


async def test_retries_with_backoff_then_success(store_url: str, runtime_factory: Any) -> None:
    wf = Workflow("flaky", version="1")
    wf.state(Count)
    attempts: list[int] = []

    @wf.step(retry=FAST_RETRY)
    async def flaky(s: Count) -> Count:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError(f"try {len(attempts)} failed")
        return s.model_copy(update={"n": len(attempts)})

    rt: Runtime = await runtime_factory(store_url)
    result = await rt.run(wf.compile(), Count())
    assert result.status == "completed" and result.state.n == 3  # type: ignore[attr-defined]
    failures = [e for e in result.events if e.kind == "node_failed"]
    assert [f.data["error"] for f in failures if f.data] == ["try 1 failed", "try 2 failed"]
    assert all(f.data and f.data["retry_at"] for f in failures)
    assert [r.status for r in result.timeline] == ["retrying", "retrying", "completed"]


async def test_retries_exhausted_fail_the_execution(store_url: str, runtime_factory: Any) -> None:
    wf = Workflow("broken", version="1")
    wf.state(Count)

    @wf.step(retry=RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=0))
    async def broken(s: Count) -> Count:
        raise RuntimeError("always broken")

    rt: Runtime = await runtime_factory(store_url)
    result = await rt.run(wf.compile(), Count())
    assert result.status == "failed"
    assert result.error == "node 'broken' failed: RuntimeError: always broken"
    assert result.events[-1].kind == "execution_failed"


async def test_node_timeout(store_url: str, runtime_factory: Any) -> None:
    wf = Workflow("slow", version="1")
    wf.state(Count)

    @wf.step(timeout=0.05)
    async def slow(s: Count) -> Count:
        await asyncio.sleep(5)
        return s

    rt: Runtime = await runtime_factory(store_url)
    result = await rt.run(wf.compile(), Count())
    assert result.status == "failed"
    assert result.error == "node 'slow' failed: node 'slow' timed out after 0.05s"


def waiting_workflow(timeout: float | None = None, on_timeout: str | None = None) -> Workflow:
    class Approval(BaseModel):
        request: str = ""
        decision: dict[str, Any] | None = None
        result: str = ""

    wf = Workflow(f"approve-{on_timeout or timeout or 'plain'}", version="1")
    wf.state(Approval)
    wf.wait("ask", event="decision", output="decision", timeout=timeout, on_timeout=on_timeout)

    @wf.step(next=None)
    async def apply(s: Approval) -> dict[str, Any]:
        return {"result": f"approved={s.decision and s.decision.get('ok')}"}

    if on_timeout:

        @wf.step(name=on_timeout, next=None)
        async def expired(s: Approval) -> dict[str, Any]:
            return {"result": "expired"}

    return wf


async def test_wait_for_an_event_then_signal(store_url: str, runtime_factory: Any) -> None:
    wf = waiting_workflow()
    rt: Runtime = await runtime_factory(store_url)
    parked = await rt.run(wf.compile(), {"request": "deploy"})
    assert parked.status == "waiting"
    assert [w.event for w in await rt.store.waits(parked.execution_id)] == ["decision"]
    with pytest.raises(
        InvalidSignal, match="not waiting for event 'nope'; it waits for 'decision'"
    ):
        await rt.engine.control.signal(parked.execution_id, "nope", {})
    await rt.engine.control.signal(parked.execution_id, "decision", {"ok": True})
    done = await rt.run(wf.compile(), execution_id=parked.execution_id)
    assert done.status == "completed"
    assert done.state.result == "approved=True"  # type: ignore[attr-defined]
    assert_well_formed(done.events)
    with pytest.raises(InvalidSignal, match="is completed"):
        await rt.engine.control.signal(parked.execution_id, "decision", {"ok": False})


async def test_signal_payload_that_does_not_fit_the_state(
    store_url: str, runtime_factory: Any
) -> None:
    wf = waiting_workflow()
    rt: Runtime = await runtime_factory(store_url)
    parked = await rt.run(wf.compile(), {})
    with pytest.raises(InvalidSignal, match="does not fit the workflow's state"):
        await rt.engine.control.signal(parked.execution_id, "decision", "not a dict")
    record = await rt.store.get(parked.execution_id)
    assert record is not None and record.status == "waiting"


async def test_event_wait_times_out_to_route_or_failure(
    store_url: str, runtime_factory: Any
) -> None:
    rt: Runtime = await runtime_factory(store_url, poll_interval=0.05)
    outcomes = []
    for wf in (waiting_workflow(0.1, "too_late"), waiting_workflow(0.1)):
        parked = await rt.run(wf.compile(), {})
        assert parked.status == "waiting"  # run returns once parked on an event
        rt.engine.drive(parked.execution_id)  # a worker keeps watching its deadline
        outcomes.append(await rt.engine.wait(parked.execution_id, until="terminal"))
    routed, failed = outcomes
    assert routed.status == "completed" and '"result":"expired"' in routed.state
    assert failed.status == "failed"
    assert failed.error == "wait 'ask' for event 'decision' timed out"


async def test_timer_wait_is_waited_through(store_url: str, runtime_factory: Any) -> None:
    wf = Workflow("timer", version="1")
    wf.state(Count)

    @wf.step
    async def before(s: Count) -> dict[str, Any]:
        return {"n": 1}

    wf.wait("nap", duration="150ms")

    @wf.step
    async def after(s: Count) -> dict[str, Any]:
        return {"n": s.n + 1}

    rt: Runtime = await runtime_factory(store_url)
    result = await rt.run(wf.compile(), Count())
    assert result.status == "completed" and result.state.n == 2  # type: ignore[attr-defined]
    resolved = next(e for e in result.events if e.kind == "wait_resolved")
    started = next(e for e in result.events if e.kind == "wait_started")
    assert resolved.at - started.at >= 0.14


async def test_cancel_stops_a_running_node(store_url: str, runtime_factory: Any) -> None:
    wf = Workflow("cancel", version="1")
    wf.state(Count)
    entered = asyncio.Event()
    observed: list[str] = []

    @wf.step
    async def long(s: Count) -> Count:
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            observed.append("cancelled")
            raise
        return s

    @wf.step
    async def never(s: Count) -> Count:
        observed.append("never")
        return s

    rt: Runtime = await runtime_factory(store_url)
    execution_id = await rt.start_execution(wf.compile(), Count())
    await asyncio.wait_for(entered.wait(), 10)
    assert await rt.engine.control.cancel(execution_id, "user asked") is True
    record = await rt.engine.wait(execution_id)
    assert record.status == "canceled" and record.error == "user asked"
    for _ in range(100):
        if observed:
            break
        await asyncio.sleep(0.01)
    assert observed == ["cancelled"]
    assert await rt.engine.control.cancel(execution_id) is False
    assert await rt.store.work(execution_id) == []


async def test_a_step_whose_result_does_not_fit_the_state_is_not_retried(
    store_url: str, runtime_factory: Any
) -> None:
    wf = Workflow("unfit", version="1")
    wf.state(Count)
    calls: list[int] = []

    @wf.step(retry=FAST_RETRY)
    async def wrong(s: Count) -> dict[str, Any]:
        calls.append(1)
        return {"n": "not a number"}

    rt: Runtime = await runtime_factory(store_url)
    result = await rt.run(wf.compile(), Count())
    assert result.status == "failed"
    assert result.error is not None and "does not validate" in result.error
    assert len(calls) == 1


async def test_bad_inputs_get_clear_errors_and_touch_nothing_else(
    store_url: str, runtime_factory: Any
) -> None:
    wf, _ = counting_workflow("good")
    bad = Workflow("bad", version="1")
    bad.state(Count)

    @bad.step
    async def explode(s: Count) -> Count:
        raise ValueError("the workflow raised")

    invalid = Workflow("invalid", version="1")
    invalid.state(Count)

    @invalid.step
    async def wrong(s: Count) -> dict[str, Any]:
        return {"n": "not a number"}

    rt: Runtime = await runtime_factory(store_url)
    results = await asyncio.gather(
        rt.run(wf.compile(), Count()),
        rt.run(bad.compile(), Count()),
        rt.run(invalid.compile(), Count()),
        rt.run(wf.compile(), Count()),
    )
    assert [r.status for r in results] == ["completed", "failed", "failed", "completed"]
    assert results[1].error == "node 'explode' failed: ValueError: the workflow raised"
    assert results[2].error is not None and "does not validate" in results[2].error
    assert results[2].state == Count()  # the invalid patch was not stored
    with pytest.raises(StateValidationError, match="does not fit"):
        await rt.run(wf.compile(), {"n": "x"})
    with pytest.raises(UnknownExecution):
        await rt.engine.control.signal("no-such-execution", "go", {})
    with pytest.raises(InvalidSignal, match="not JSON"):
        await rt.engine.control.signal(results[0].execution_id, "go", object())


async def test_many_concurrent_runs_share_one_runtime(store_url: str, runtime_factory: Any) -> None:
    wf, calls = counting_workflow("many")
    rt: Runtime = await runtime_factory(store_url)
    results = await asyncio.gather(*(rt.run(wf.compile(), Count(n=i)) for i in range(50)))
    assert all(r.status == "completed" for r in results)
    assert sorted(r.state.n for r in results) == sorted((i + 1) * 10 for i in range(50))  # type: ignore[attr-defined]
    assert calls == Counter(first=50, second=50, third=50)


async def test_a_wait_for_human_input_asks_then_takes_the_answer(
    store_url: str, runtime_factory: Any
) -> None:
    class Trip(BaseModel):
        city: str
        dates: str | None = None
        booked: str = ""

    wf = Workflow("trip", version="1")
    wf.state(Trip)
    wf.wait("ask_dates", input="When do you want to go to {{ state.city }}?", output="dates")

    @wf.step
    async def book(s: Trip) -> dict[str, Any]:
        return {"booked": f"{s.city} on {s.dates}"}

    rt: Runtime = await runtime_factory(store_url)
    parked = await rt.run(wf.compile(), {"city": "Lisbon"})
    assert parked.status == "waiting"
    asked = next(e for e in parked.events if e.kind == "wait_started")
    assert asked.data == {
        "kind": "input",
        "prompt": "When do you want to go to Lisbon?",
        "event": "input",
    }
    assert parked.timeline[-1].detail == "asks: When do you want to go to Lisbon?"
    await rt.engine.control.signal(parked.execution_id, "input", "the first week of May")
    done = await rt.run(wf.compile(), execution_id=parked.execution_id)
    assert done.status == "completed"
    assert done.state.booked == "Lisbon on the first week of May"  # type: ignore[attr-defined]


async def test_a_wait_watched_from_before_creation_sees_the_end(
    store_url: str, runtime_factory: Any
) -> None:
    """watch_status before submit: wait() needs no first read, and it still sees
    an end that came before wait() was called."""
    wf, _ = counting_workflow("watched")
    rt: Runtime = await runtime_factory(store_url, scope="all")
    engine = rt.engine
    compiled = wf.compile()
    rt.workflows.add(compiled)
    engine.watch_status("w-1")
    await engine.submit(compiled, Count(), execution_id="w-1")
    await asyncio.sleep(0.2)  # it has ended before anyone waits
    record = await asyncio.wait_for(engine.wait("w-1"), 0.1 if store_url.startswith("m") else 5)
    assert record.status == "completed" and json.loads(record.state)["n"] == 10
    assert "w-1" not in engine._status.waiters  # the watch ends with the wait
    engine.watch_status("w-2")
    engine.release_status_watch("w-2")
    assert engine._status.waiters == {}


async def test_run_reads_the_execution_only_once_it_has_ended(
    store_url: str, runtime_factory: Any
) -> None:
    """run() watches a new execution from its creation on: no read of the row
    it has just written (one per run, on the store's reader), and none of the
    end's where the last commit's record reaches the waiter before the
    store's notice (memory, SQLite; PostgreSQL's notices come on another
    connection); a resumed one is read first, as it may have ended already."""
    wf, calls = counting_workflow("read-once")
    rt: Runtime = await runtime_factory(store_url)
    reads: list[str] = []
    get = rt.store.get

    async def counted(execution_id: str) -> Any:
        reads.append(execution_id)
        return await get(execution_id)

    rt.store.get = counted  # type: ignore[method-assign]
    result = await rt.run(wf.compile(), Count())
    assert result.status == "completed" and result.state.n == 10
    assert reads in ([result.execution_id], []) if store_url.startswith("postgresql") else not reads
    reads.clear()
    again = await rt.run(wf.compile(), execution_id=result.execution_id)
    assert again.state == result.state and calls["first"] == 1
    assert len(reads) == 2  # whether it exists, then the end it had reached


async def test_an_execution_ended_by_its_wait_timing_out_is_reported_once(
    store_url: str, runtime_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """`serve` prints each failed task from the agent_node.failures log; an
    execution failed by a resolved wait (a timeout here, a peer's failed task
    for a delegation) was never reported, only one failed by a node."""
    rt: Runtime = await runtime_factory(store_url, poll_interval=0.05)
    wf = waiting_workflow(0.1)
    with caplog.at_level("INFO", logger="agent_node.failures"):
        parked = await rt.run(wf.compile(), {})
        rt.engine.drive(parked.execution_id)
        failed = await rt.engine.wait(parked.execution_id, until="terminal")
        # The status is seen as the commit lands; the report follows the commit.
        for _ in range(100):
            if any(r.name == "agent_node.failures" for r in caplog.records):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # and nothing more comes
    assert failed.status == "failed"
    reported = [r for r in caplog.records if r.name == "agent_node.failures"]
    assert [(r.execution_id, r.error) for r in reported] == [  # type: ignore[attr-defined]
        (parked.execution_id, "wait 'ask' for event 'decision' timed out")
    ]


async def test_waiters_hear_of_a_full_store_that_fails_every_claim(runtime_factory: Any) -> None:
    """While every claim fails on a full store, a wait on an execution that
    needs one (a node to run, a timer to fire) ends with that error; one
    parked on an event from outside waits on."""
    from agent_node.errors import StoreFull

    napping_wf = Workflow("napping", version="1")
    napping_wf.state(Count)
    napping_wf.wait("nap", duration="60s")
    asking_wf = Workflow("asking", version="1")
    asking_wf.state(Count)
    asking_wf.wait("ask", event="go")
    rt: Runtime = await runtime_factory("memory://")
    napping = await rt.start_execution(napping_wf.compile(), Count())
    asking = await rt.start_execution(asking_wf.compile(), Count())
    for eid in (napping, asking):
        for _ in range(200):
            record = await rt.store.get(eid)
            if record is not None and record.status == "waiting":
                break
            await asyncio.sleep(0.01)
    on_nap = asyncio.create_task(rt.engine.wait(napping))
    on_ask = asyncio.create_task(rt.engine.wait(asking, until="terminal"))
    await asyncio.sleep(0.05)
    assert not on_nap.done() and not on_ask.done()
    full = StoreFull("the store could not write, its disk is full")
    rt.engine._status.claims_failed(full)  # as the claim loop does when a claim fails so
    with pytest.raises(StoreFull):
        await asyncio.wait_for(on_nap, 2)
    await asyncio.sleep(0.1)
    assert not on_ask.done()  # nothing to claim for it
    rt.engine._status.claims_failed(None)
    on_ask.cancel()
