"""What ``inspect``'s timeline says of a node: its verdict, its model usage, its delegation."""

from __future__ import annotations

from agent_node.cli.render import (
    describe_cancel_given_up,
    describe_delegation,
    describe_wait,
    detail,
    model_usage,
    when,
)
from agent_node.results import Event, NodeRun, build_timeline, to_event
from agent_node.store.records import DelegationRecord, EventRecord, WaitRecord


def run(**extra: object) -> NodeRun:
    return NodeRun("review", 1, 1, "completed", 0.0, 1.0, extra=dict(extra))


def test_an_eval_node_shows_each_score_and_what_it_led_to() -> None:
    output = {
        "scores": [
            {"name": "quality", "score": 0.4, "passed": False},
            {"name": "cost", "score": 1.0, "passed": True},
        ],
        "action": "revise",
    }
    usage = {"total_tokens": 412, "cost": 0.00123, "latency_s": 1.31}
    assert detail(run(output=output, usage=usage, next="write")) == (
        "quality 0.40 ✗, cost 1.00 ✓ → revise · 412 tok · $0.0012 · 1.3 s"
    )


def test_a_model_node_shows_its_route_and_tokens() -> None:
    usage = {"total_tokens": 90, "cost": None, "latency_s": 0.25}
    assert detail(run(output={"text": "hi"}, usage=usage, next="done")) == (
        "→ done · 90 tok · 0.2 s"
    )
    assert detail(run(next=["a", "b"])) == "→ a, b"
    assert detail(run()) == ""


def test_the_header_sums_the_model_calls() -> None:
    judged = run(usage={"calls": 2, "total_tokens": 1000, "cost": 0.002})
    drafted = run(usage={"calls": 1, "total_tokens": 240, "cost": None})
    assert model_usage([judged, drafted, run()]) == "3 calls · 1,240 tok · $0.0020"
    assert model_usage([drafted]) == "1 call · 240 tok · no price"
    assert model_usage([run()]) == ""


def test_an_answer_the_model_did_not_finish_says_why_it_stopped() -> None:
    cut = {"model": "openai/m", "text": "Once upon", "finish_reason": "length"}
    assert detail(run(output=cut)) == "openai/m · finish: length"
    assert detail(run(output={**cut, "finish_reason": "stop"})) == "openai/m"


def test_estimated_tokens_are_shown_as_such() -> None:
    """Counted by four characters a token (the server counted none, or the
    call was cut short): ``~``, in the timeline and the header."""
    usage = {"calls": 1, "total_tokens": 90, "cost": None, "estimated": True}
    assert detail(run(output={"text": "hi"}, usage=usage, next="done")) == "→ done · ~90 tok"
    counted = run(usage={"calls": 1, "total_tokens": 1000, "cost": None})
    assert model_usage([counted, run(usage=usage)]) == "2 calls · ~1,090 tok · no price"


def test_a_wait_for_authorization_is_named_with_the_event_that_answers_it() -> None:
    wait = WaitRecord("e1", "login", 1, "auth", "input", None)
    assert describe_wait(wait) == "authorization (event 'input') at node 'login'"
    data = '{"kind":"auth","prompt":"Sign in","event":"input"}'
    log = [
        EventRecord("e1", 1, "node_started", "login", 1, 1, 0.0, None),
        EventRecord("e1", 2, "wait_started", "login", 1, 1, 0.0, data),
    ]
    (login,) = build_timeline([to_event(e) for e in log])
    assert login.detail == "asks for authorization: Sign in"


def test_a_settled_delegation_shows_the_time_from_sending_to_learning() -> None:
    sent = '{"peer":"researcher","task_id":"t1","version":"1.0"}'
    task = '{"id":"t1","status":{"state":"TASK_STATE_COMPLETED"}}'
    news = f'{{"event":"news","payload":{{"kind":"task","via":"push","task":{task}}}}}'
    log = [
        EventRecord("e1", 1, "node_started", "research", 1, 1, 10.0, None),
        EventRecord("e1", 2, "wait_started", "research", 1, None, 10.0, '{"kind":"delegation"}'),
        EventRecord("e1", 3, "delegation_sent", "research", 1, None, 10.02, sent),
        EventRecord("e1", 4, "wait_resolved", "research", 1, None, 10.25, news),
    ]
    (research,) = build_timeline([to_event(e) for e in log])
    assert research.detail == "researcher task t1: completed, 250 ms (via push)"


def test_a_delegation_says_its_tries_its_last_error_and_the_next() -> None:
    row = DelegationRecord("e", "hand", 1, "b", "", "", "", None, 0.0, 112.4, 4)
    row.state, row.last_error = "sending", "peer 'b' unreachable: ConnectTimeout"
    assert describe_delegation(row, now=100.0) == (
        "node 'hand' to b: sending, attempt 4;"
        " last error: peer 'b' unreachable: ConnectTimeout; next try in 12 s"
    )
    polled = DelegationRecord("e", "hand", 1, "b", "t1", "https://b/a2a", "1.0", None, 0.0, 99.0, 3)
    assert describe_delegation(polled, now=100.0) == (
        "node 'hand' to b: with the peer, 3 polls; next poll now"
    )


def test_a_cancel_given_up_says_what_was_tried_and_that_the_task_may_run() -> None:
    data = {"peer": "b", "task_id": None, "tried": "ListTasks", "tries": 1, "refused": True}
    data["error"] = "the peer's task cannot be found without sending again: over 0.3"
    event = Event(9, "delegation_cancel_given_up", "hand", 1, None, 50.0, data)
    assert describe_cancel_given_up(event) == (
        "node 'hand' to b: gave up finding its task (ListTasks by our contextId) to cancel"
        f" it, refused ({when(50.0)}); it may still be running; last error: the peer's task"
        " cannot be found without sending again: over 0.3"
    )
