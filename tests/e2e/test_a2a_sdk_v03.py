"""The official a2a-sdk 0.3.x client (Python) against our node over mutual TLS.

The driver ``tests/e2e/sdk_clients/client_v03.py`` runs in a venv of its own
holding the newest 0.3.x release (:data:`e2e.venvs.SDK_CLIENTS`; a2a-sdk 0.3
and 1.x cannot share one) against ``agent-node serve`` running the greeter
example. The 0.3 client sends no ``A2A-Version`` header, so the node answers
in A2A 0.3. The driver performs every operation the SDK's ``Client`` offers —
card resolution at both well-known paths, blocking and non-blocking sends,
streamed sends, GetTask with ``historyLength``, cancel, follow-ups on an
input-required task (``taskId`` with and without ``contextId``, sent and
streamed), resubscribe, push configs set and get (list and delete, which the
``Client`` lacks, through its transport with the SDK's own request and
response models) with a push delivered to the driver's own mutual-TLS
webhook, the deprecated ``A2AClient``, the extended card, and the errors
(task not found, unsupported operation, TaskNotCancelable) — and reports what
each returned. It runs five times in a row against one node; every test
asserts on all five reports (no flake allowed). A2A 0.3 has no ListTasks.
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e.sdk_clients.runs import (
    ALICE,
    BOOKED,
    QUESTION,
    Runs,
    check_pushes,
    check_stream,
    data,
    run,
    state,
    texts,
)
from e2e.venvs import SDK_CLIENTS
from support.nodes import ADA

SDK = SDK_CLIENTS["0.3"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if SDK.ready() else 600)]

#: The public methods of the SDK's ``Client``, each exercised by a step.
OPERATIONS = {
    "send_message": "send_blocking",
    "get_task": "get_task",
    "cancel_task": "cancel",
    "resubscribe": "subscribe",
    "set_task_callback": "push",
    "get_task_callback": "push",
    "get_card": "extended_card",
}
#: Its other methods: no requests of their own (events and middleware are local).
HELPERS = {"add_event_consumer", "add_request_middleware", "close", "consume"}
#: What its JSON-RPC transport offers (each under a ``Client`` method above).
TRANSPORT = {*OPERATIONS, "send_message_streaming", "close"}
#: The driver's other steps.
OTHER_STEPS = {
    "card",
    "send_non_blocking",
    "send_stream",
    "follow_up",
    "follow_up_stream",
    "legacy",
    "errors",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    folder = tmp_path_factory.mktemp("sdk03-client")
    return run(SDK.interpreter(), "client_v03.py", folder)


def test_every_operation_of_the_client_is_exercised(runs: Runs) -> None:
    for found in runs.each("operations"):
        assert set(found["client"]) == set(OPERATIONS) | HELPERS
        assert set(found["transport"]) == TRANSPORT
    for key in {*OPERATIONS.values(), *OTHER_STEPS}:
        list(runs.each(key))  # every step ran without an error, every round


def test_the_card_resolves_at_both_well_known_paths(runs: Runs) -> None:
    for card in runs.each("card"):
        resolved = card["well_known"]
        assert card["legacy_path"] == resolved
        assert resolved["name"] == "Greeter"
        # The SDK defaults a missing protocolVersion to 0.3.0: the node must serve the fields.
        assert (resolved["url"], resolved["preferredTransport"]) == (f"{runs.url}/a2a", "JSONRPC")
        assert resolved["protocolVersion"].startswith("0.3")
        assert resolved["capabilities"] == {"streaming": True, "pushNotifications": True}
        assert resolved["securitySchemes"]["mtls"]["type"] == "mutualTLS"
        assert {s["id"] for s in resolved["skills"]} == {"greet", "book"}


def test_send_blocking_completes_with_the_greeting(runs: Runs) -> None:
    for task in runs.each("send_blocking"):
        assert task["kind"] == "task" and state(task) == "completed"
        assert data(task) == [ADA]
        assert task["metadata"]["caller"] == ALICE


def test_send_non_blocking_returns_at_once_then_completes(runs: Runs) -> None:
    for step in runs.each("send_non_blocking"):
        returned, later = step["returned"], step["later"]
        assert state(returned) in {"submitted", "working"}
        assert later["id"] == returned["id"] and state(later) == "completed"
        assert data(later) == [ADA]


def test_the_streamed_send_ends_completed(runs: Runs) -> None:
    for step in runs.each("send_stream"):
        events = step["events"]
        artifacts = check_stream(events, first={"submitted", "working"}, last="completed")
        assert [a["parts"][-1]["data"] for a in artifacts] == [ADA]
        assert [e["final"] for e in events if e["kind"] == "status-update"][-1] is True
        assert not any(e.get("final") for e in events[:-1])
        # The task the client put together from the events.
        assert state(step["task"]) == "completed" and data(step["task"]) == [ADA]


def test_get_task_honours_history_length(runs: Runs) -> None:
    for step in runs.each("get_task"):
        history = [(m["role"], m["parts"][0]["text"]) for m in step["full"]["history"]]
        assert history == [("user", "Lisbon"), ("agent", QUESTION), ("user", "early May")]
        assert [m["parts"][0]["text"] for m in step["last_one"]["history"]] == ["early May"]
        assert step["none"].get("history", []) == []
        assert texts(step["full"]) == texts(step["none"]) == [BOOKED]


def test_cancel_ends_an_input_required_task(runs: Runs) -> None:
    for task in runs.each("cancel"):
        assert state(task) == "canceled"
        assert task["metadata"]["caller"] == ALICE


def test_a_follow_up_with_task_and_context_answers_the_question(runs: Runs) -> None:
    for step in runs.each("follow_up"):
        asked, answered = step["asked"], step["answered"]
        assert state(asked) == "input-required"
        question = asked["status"]["message"]
        assert (question["role"], question["parts"][0]["text"]) == ("agent", QUESTION)
        assert (answered["id"], answered["contextId"]) == (asked["id"], asked["contextId"])
        assert state(answered) == "completed" and texts(answered) == [BOOKED]
        # The question in the history is the status message (one id).
        assert question in answered["history"]


def test_a_streamed_follow_up_answers_the_streamed_question(runs: Runs) -> None:
    for step in runs.each("follow_up_stream"):
        asked, answered = step["asked"], step["answered"]
        check_stream(asked["events"], first={"submitted", "working"}, last="input-required")
        assert asked["events"][-1]["final"] is True  # the stream ends at the question
        assert asked["task"]["status"]["message"]["parts"][0]["text"] == QUESTION
        check_stream(answered["events"], first={"input-required", "working"}, last="completed")
        assert answered["task"]["id"] == asked["task"]["id"]
        assert state(answered["task"]) == "completed" and texts(answered["task"]) == [BOOKED]


def test_a_resubscription_follows_the_task_to_its_end(runs: Runs) -> None:
    for step in runs.each("subscribe"):
        artifacts = check_stream(step["events"], first={"input-required"}, last="completed")
        assert step["events"][0]["id"] == step["task_id"]
        assert [p["text"] for p in artifacts[-1]["parts"] if "text" in p] == [BOOKED]
        assert state(step["task"]) == "completed" and texts(step["task"]) == [BOOKED]
        assert state(step["answered"]) == "completed"


def test_push_configs_set_get_list_delete_and_a_push_arrives(runs: Runs) -> None:
    for step in runs.each("push"):
        task_id = step["task_id"]
        created = step["created"]
        assert created == {
            "taskId": task_id,
            "pushNotificationConfig": {"id": "extra", "url": "https://example.com/py-push"},
        }
        got = step["got"]
        assert got["taskId"] == task_id
        config = got["pushNotificationConfig"]
        assert (config["id"], config["token"]) == ("py-push", "py-token")
        assert config["url"].endswith("/py-hook")
        assert config["authentication"] == {"schemes": ["Bearer"], "credentials": "py-cred"}
        listed = step["listed"]["result"]
        assert sorted(c["pushNotificationConfig"]["id"] for c in listed) == ["extra", "py-push"]
        again = step["deleted_again"]["value"]  # a second delete succeeds
        assert again["jsonrpc"] == "2.0" and "error" not in again
        after = step["after"]["result"]
        assert [c["pushNotificationConfig"]["id"] for c in after] == ["py-push"]
        check_pushes(step["pushes"], task_id, unwrap=False)
        assert {p["body"]["kind"] for p in step["pushes"]} == {"task"}


def test_the_deprecated_a2a_client_sends_streams_and_gets(runs: Runs) -> None:
    for step in runs.each("legacy"):
        sent = step["sent"]
        assert (sent["jsonrpc"], sent["id"]) == ("2.0", "legacy-1")
        assert state(sent["result"]) == "completed" and data(sent["result"]) == [ADA]
        events = [e["result"] for e in step["streamed"]]
        assert {e["id"] for e in step["streamed"]} == {"legacy-2"}
        check_stream(events, first={"submitted", "working"}, last="completed")
        assert step["got"]["result"]["id"] == sent["result"]["id"]
        assert step["card"]["name"] == "Greeter"


def test_the_client_keeps_the_public_card_when_no_extended_card_is_declared(runs: Runs) -> None:
    for step in runs.each("extended_card"):
        card = step["client"]
        assert card["name"] == "Greeter"
        assert card["supportsAuthenticatedExtendedCard"] is False


def test_asking_for_the_undeclared_extended_card_is_refused(runs: Runs) -> None:
    """0.3's ``agent/getAuthenticatedExtendedCard`` answers -32007
    (AuthenticatedExtendedCardNotConfigured): A2A 0.3 had no other error for it."""
    for step in runs.each("extended_card"):
        error = step["asked"]["error"]
        assert (error["name"], error["code"]) == ("A2AClientJSONRPCError", -32007)


#: The JSON-RPC code each failing call gets, as the 0.3 client reports it.
ERRORS = {
    "get_unknown": -32001,
    "cancel_unknown": -32001,
    "subscribe_unknown": -32001,
    "push_get_unknown_task": -32001,
    "push_get_unknown_config": -32001,
    "follow_up_completed": -32004,
    "cancel_completed": -32002,
    "subscribe_completed": -32004,
}


def test_errors_reach_the_client_as_json_rpc_errors(runs: Runs) -> None:
    """Also on ``tasks/resubscribe``, whose errors the 0.3 client reads only
    from an event stream."""
    for step in runs.each("errors"):
        found: dict[str, Any] = {key: step[key].get("error", {}) for key in ERRORS}
        assert {k: e.get("name") for k, e in found.items()} == dict.fromkeys(
            ERRORS, "A2AClientJSONRPCError"
        ), step
        assert {k: e.get("code") for k, e in found.items()} == ERRORS
