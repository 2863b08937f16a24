"""The official a2a-sdk 1.x client (Python) against our node over mutual TLS.

The driver ``tests/e2e/sdk_clients/client_v1.py`` runs in a venv of its own
holding the newest 1.x release (:data:`e2e.venvs.SDK_CLIENTS`) against
``agent-node serve`` running the greeter example: it performs every operation
the SDK's ``Client`` offers — card resolution at both well-known paths and
``create_client`` from the URL, blocking and non-blocking sends, streamed
sends, GetTask with ``historyLength``, ListTasks with paging, cancel, follow-ups
on an input-required task (``taskId`` with and without ``contextId``, sent and
streamed), SubscribeToTask, the four push-config calls with a push delivered to
the driver's own mutual-TLS webhook, the extended card, and the errors
(task not found, unsupported operation, TaskNotCancelable) — and reports what
each returned. It runs five times in a row against one node; every test
asserts on all five reports (no flake allowed).

Each run is made four times: ``1.0``, where the SDK is given the card's A2A
1.0 JSON-RPC interface; ``0.3``, where it is given only the card's 0.3
interface and its compatibility transport speaks A2A 0.3 to the node;
``rest``, where it is given only the HTTP+JSON interface and its REST
transport is used; and ``grpc``, against a node serving gRPC too
(``--grpc-port 0``), where it is given only the gRPC interface and its gRPC
transport (grpcio, in a venv of its own) calls it over mutual TLS.
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e.sdk_clients.runs import (
    ALICE,
    BOOKED,
    QUESTION,
    ROUNDS,
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

SDK = SDK_CLIENTS["1"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if SDK.ready() else 600)]

#: The public methods of the SDK's ``Client``, each exercised by a step.
OPERATIONS = {
    "send_message": "send_blocking",
    "get_task": "get_task",
    "list_tasks": "list_tasks",
    "cancel_task": "cancel",
    "subscribe": "subscribe",
    "create_task_push_notification_config": "push",
    "get_task_push_notification_config": "push",
    "list_task_push_notification_configs": "push",
    "delete_task_push_notification_config": "push",
    "get_extended_agent_card": "extended_card",
}
#: Its other methods: no requests of their own.
HELPERS = {"add_interceptor", "close"}
#: The driver's other steps.
OTHER_STEPS = {
    "card",
    "send_non_blocking",
    "send_stream",
    "follow_up",
    "follow_up_stream",
    "errors",
}
TRANSPORTS = {
    "1.0": "JsonRpcTransport",
    "0.3": "CompatJsonRpcTransport",
    "rest": "RestTransport",
    "grpc": "GrpcTransport",
}


@pytest.fixture(
    scope="module",
    params=["1.0", "0.3", "rest", "grpc", "1.0/bearer", "rest/api-key"],
    ids=[
        "a2a-sdk-1",
        "a2a-sdk-1-as-0.3",
        "a2a-sdk-1-rest",
        "a2a-sdk-1-grpc",
        "a2a-sdk-1-bearer-jwt",
        "a2a-sdk-1-rest-api-key",
    ],
)
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    dialect, _, auth = str(request.param).partition("/")
    folder = tmp_path_factory.mktemp(f"sdk1-client-{dialect}")
    sdk = SDK_CLIENTS["1-grpc"] if dialect == "grpc" else SDK
    # book is shown only in the extended card, which the client then reads
    # The credentials' variants run once (CI's time): repetition is the others' to prove.
    rounds = 1 if auth else ROUNDS
    return run(sdk.interpreter(), "client_v1.py", folder, dialect, "extended", auth or None, rounds)


def test_every_operation_of_the_client_is_exercised(runs: Runs) -> None:
    for found in runs.each("operations"):
        assert set(found["client"]) == set(OPERATIONS) | HELPERS
        assert found["transport"] == TRANSPORTS[str(runs.dialect)]
    steps = {*OPERATIONS.values(), *OTHER_STEPS}
    if runs.dialect == "0.3":
        steps.remove("list_tasks")  # refused by the SDK itself: see below
    for key in steps:
        list(runs.each(key))  # every step ran without an error, every round


def test_the_card_resolves_at_both_well_known_paths(runs: Runs) -> None:
    for card in runs.each("card"):
        resolved = card["well_known"]
        assert card["legacy_path"] == resolved
        assert resolved["name"] == "Greeter"
        assert resolved["capabilities"] == {
            "streaming": True,
            "pushNotifications": True,
            "extendedAgentCard": True,
        }
        interfaces = [
            (f"{runs.url}/a2a", "JSONRPC", "1.0"),
            (f"{runs.url}/a2a", "HTTP+JSON", "1.0"),
            (f"{runs.url}/a2a", "JSONRPC", "0.3"),
        ]
        if runs.dialect == "grpc":  # only when served: on its own port, host:port
            grpc = resolved["supportedInterfaces"][2]
            host, _, port = grpc["url"].rpartition(":")
            assert (host, port.isdigit()) == (runs.url.split("//")[1].rpartition(":")[0], True)
            interfaces.insert(2, (grpc["url"], "GRPC", "1.0"))
        assert [(i["url"], i["protocolBinding"], i["protocolVersion"]) for i in
                resolved["supportedInterfaces"]] == interfaces  # fmt: skip
        assert {s["id"] for s in resolved["skills"]} == {"greet"}  # book: the extended card
        # create_client(url) resolves the card itself and streams by default.
        events = card["create_client_from_url"]
        check_stream(events, first={"submitted", "working"}, last="completed")


def test_send_blocking_completes_with_the_greeting(runs: Runs) -> None:
    for task in runs.each("send_blocking"):
        assert state(task) == "completed"
        assert data(task) == [ADA]
        assert task["metadata"]["caller"] == ALICE


def test_send_non_blocking_returns_at_once_then_completes(runs: Runs) -> None:
    for step in runs.each("send_non_blocking"):
        returned, later = step["returned"], step["later"]
        assert state(returned) in {"submitted", "working"}
        assert later["id"] == returned["id"] and state(later) == "completed"
        assert data(later) == [ADA]


def test_the_streamed_send_ends_completed(runs: Runs) -> None:
    for events in runs.each("send_stream"):
        artifacts = check_stream(events, first={"submitted", "working"}, last="completed")
        assert [a["parts"][-1]["data"] for a in artifacts] == [ADA]


def test_get_task_honours_history_length(runs: Runs) -> None:
    for step in runs.each("get_task"):
        history = [(m["role"], m["parts"][0]["text"]) for m in step["full"]["history"]]
        assert history == [
            ("ROLE_USER", "Lisbon"),
            ("ROLE_AGENT", QUESTION),
            ("ROLE_USER", "early May"),
        ]
        assert [m["parts"][0]["text"] for m in step["last_one"]["history"]] == ["early May"]
        assert step["none"].get("history", []) == []
        assert texts(step["full"]) == texts(step["none"]) == [BOOKED]


def test_list_tasks_filters_by_context_and_pages(runs: Runs) -> None:
    if runs.dialect == "0.3":  # A2A 0.3 has no ListTasks: the SDK refuses it itself
        for error in runs.failures("list_tasks"):
            assert error["name"] == "NotImplementedError"
        return
    for step in runs.each("list_tasks"):
        listed = step["listed"]["tasks"]
        assert sorted(t["id"] for t in listed) == sorted(step["sent"])
        assert {state(t) for t in listed} == {"completed"}
        first, second = step["pages"]
        assert len(first["tasks"]) == len(second["tasks"]) == 1
        assert first["nextPageToken"] and not second.get("nextPageToken")
        assert {first["tasks"][0]["id"], second["tasks"][0]["id"]} == set(step["sent"])


def test_cancel_ends_an_input_required_task(runs: Runs) -> None:
    for task in runs.each("cancel"):
        assert state(task) == "canceled"
        assert task["metadata"]["caller"] == ALICE


def test_a_follow_up_with_task_and_context_answers_the_question(runs: Runs) -> None:
    for step in runs.each("follow_up"):
        asked, answered = step["asked"], step["answered"]
        assert state(asked) == "input-required"
        question = asked["status"]["message"]
        assert (question["role"], question["parts"][0]["text"]) == ("ROLE_AGENT", QUESTION)
        assert (answered["id"], answered["contextId"]) == (asked["id"], asked["contextId"])
        assert state(answered) == "completed" and texts(answered) == [BOOKED]
        # The question in the history is the status message (one id).
        assert question in answered["history"]


def test_a_streamed_follow_up_answers_the_streamed_question(runs: Runs) -> None:
    for step in runs.each("follow_up_stream"):
        check_stream(step["asked"], first={"submitted", "working"}, last="input-required")
        question = step["asked"][-1]["statusUpdate"]["status"]["message"]
        assert question["parts"][0]["text"] == QUESTION
        artifacts = check_stream(
            step["answered"], first={"input-required", "working"}, last="completed"
        )
        assert step["answered"][0]["task"]["id"] == step["asked"][0]["task"]["id"]
        assert [p["text"] for p in artifacts[-1]["parts"] if "text" in p] == [BOOKED]


def test_a_subscription_follows_the_task_to_its_end(runs: Runs) -> None:
    for step in runs.each("subscribe"):
        artifacts = check_stream(step["events"], first={"input-required"}, last="completed")
        assert step["events"][0]["task"]["id"] == step["task_id"]
        assert [p["text"] for p in artifacts[-1]["parts"] if "text" in p] == [BOOKED]
        assert state(step["answered"]) == "completed"


def test_push_configs_create_get_list_delete_and_a_push_arrives(runs: Runs) -> None:
    for step in runs.each("push"):
        task_id = step["task_id"]
        created = step["created"]
        assert (created["taskId"], created["id"], created["url"]) == (
            task_id,
            "extra",
            "https://example.com/py-push",
        )
        got = step["got"]
        assert (got["taskId"], got["id"], got["token"]) == (task_id, "py-push", "py-token")
        assert got["url"].endswith("/py-hook")
        assert got["authentication"] == {"scheme": "Bearer", "credentials": "py-cred"}
        assert sorted(c["id"] for c in step["listed"]["configs"]) == ["extra", "py-push"]
        assert step["deleted_again"] == {"value": None}  # a second delete succeeds
        assert [c["id"] for c in step["after"]["configs"]] == ["py-push"]
        # A config made over 0.3 gets the 0.3 task; over 1.0 a StreamResponse.
        check_pushes(step["pushes"], task_id, unwrap=runs.dialect != "0.3")


def test_the_client_reads_the_extended_card_the_public_card_declares(runs: Runs) -> None:
    """The public card declares ``capabilities.extendedAgentCard`` (0.3:
    ``supportsAuthenticatedExtendedCard``) and lacks ``book``; the client asks
    for the extended card (``agent/getAuthenticatedExtendedCard`` in 0.3) and
    gets the card with it, over every transport."""
    for step in runs.each("extended_card"):
        for card in (step["client"], step["asked"]):
            assert card["name"] == "Greeter", card
            assert [s["id"] for s in card["skills"]] == ["greet", "book"]
            assert card["capabilities"]["extendedAgentCard"] is True


ERRORS = {
    "get_unknown": "TaskNotFoundError",
    "cancel_unknown": "TaskNotFoundError",
    "subscribe_unknown": "TaskNotFoundError",
    "push_get_unknown_task": "TaskNotFoundError",
    "push_get_unknown_config": "TaskNotFoundError",
    "follow_up_completed": "UnsupportedOperationError",
    "cancel_completed": "TaskNotCancelableError",
    "subscribe_completed": "UnsupportedOperationError",
}


def test_errors_reach_the_client_as_the_sdk_errors(runs: Runs) -> None:
    for step in runs.each("errors"):
        found: dict[str, Any] = {key: step[key].get("error", {}).get("name") for key in ERRORS}
        assert found == ERRORS, step
