"""The official ``@a2a-js/sdk`` clients, 1.x (A2A 1.0) and 0.3.x (A2A 0.3), against our node.

Node.js runs each generation's client driver (``tests/e2e/js/client_v1.mjs``,
``client_v03.mjs``, from a cached npm folder: :mod:`e2e.foreign.js_peers`)
against ``agent-node serve`` running the greeter example over mutual TLS
(certificates from ``make_certs``; the SDK's ``fetch`` presents ``alice``'s
through an undici dispatcher). The driver performs every operation its
client offers — card resolution at both well-known paths, blocking and
non-blocking sends, a streamed send, GetTask with ``historyLength``,
ListTasks (1.x), cancel, a follow-up on an input-required task,
SubscribeToTask/resubscribe, push configs set/get/list/delete with a push
delivered to the driver's own mutual-TLS webhook, and the extended card —
and reports what each returned. The 1.x client runs over JSON-RPC, over REST
(preferring its REST transport: the node's HTTP+JSON binding) and over gRPC
(its GrpcTransport on grpc-js, Node's own HTTP/2, against the node's own
HTTP/2 server). The driver runs five times in a row against one node (gRPC
and the credentials' variants fewer); every test below asserts on all its
reports (no flake allowed).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from e2e.foreign.js_peers import js_client, js_install, js_ready
from e2e.procs import rounds
from e2e.sdk_clients.runs import credentials_for_alice
from support.certs import make_certs
from support.nodes import ADA, serving_mtls

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240 if js_ready("1") and js_ready("0.3") else 500),
]

ROUNDS = rounds()
ALICE = "spiffe://example.org/agent/alice"
GREETER = "spiffe://example.org/agent/greeter"
BOOKED = "Booked Lisbon for early May."
#: The public methods of each generation's client, and the report key that
#: exercises each one (getAgentCard: the extended-card step).
OPERATIONS = {
    "1": {
        "sendMessage": "send_blocking",
        "sendMessageStream": "send_stream",
        "getTask": "get_task",
        "listTasks": "list_tasks",
        "cancelTask": "cancel",
        "resubscribeTask": "subscribe",
        "createTaskPushNotificationConfig": "push",
        "getTaskPushNotificationConfig": "push",
        "listTaskPushNotificationConfig": "push",
        "deleteTaskPushNotificationConfig": "push",
        "getAgentCard": "extended_card",
    },
    "0.3": {
        "sendMessage": "send_blocking",
        "sendMessageStream": "send_stream",
        "getTask": "get_task",
        "cancelTask": "cancel",
        "resubscribeTask": "subscribe",
        "setTaskPushNotificationConfig": "push",
        "getTaskPushNotificationConfig": "push",
        "listTaskPushNotificationConfig": "push",
        "deleteTaskPushNotificationConfig": "push",
        "getAgentCard": "extended_card",
    },
}
#: Private helpers of the client classes (TypeScript `private`, still on the prototype).
HELPERS = {
    "1": {
        "applyClientConfig",
        "executeWithInterceptors",
        "interceptAfter",
        "interceptBefore",
        "withNormalizedHeaders",
    },
    "0.3": {"applyClientConfig", "executeWithInterceptors", "interceptAfter", "interceptBefore"},
}


@dataclass(frozen=True)
class Runs:
    generation: str
    url: str
    reports: list[dict[str, Any]]
    binding: str = "JSONRPC"

    @property
    def v1(self) -> bool:
        return self.generation == "1"

    def each(self, key: str) -> Iterator[Any]:
        """Each round's report for ``key``; a step that threw fails the test here."""
        for number, report in enumerate(self.reports, 1):
            found = report[key]
            assert not (isinstance(found, dict) and "error" in found), (number, key, found)
            yield found

    def state(self, task: dict[str, Any]) -> str:
        """A task's (or status update's) state in 0.3 spelling, whichever generation."""
        raw = str(task["status"]["state"])
        return raw.removeprefix("TASK_STATE_").lower().replace("_", "-")

    def task(self, result: dict[str, Any]) -> dict[str, Any]:
        """The task of a SendMessage result: 1.x reports ``{"task": …}``, 0.3 the task."""
        found: dict[str, Any] = result["task"] if self.v1 else result
        return found

    def event(self, event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A stream event as (kind, object): task, status-update or artifact-update."""
        if not self.v1:
            return str(event["kind"]), event
        ((kind, body),) = event.items()
        names = {
            "task": "task",
            "statusUpdate": "status-update",
            "artifactUpdate": "artifact-update",
        }
        return names[kind], body


def texts(task: dict[str, Any]) -> list[str]:
    return [p["text"] for a in task.get("artifacts", []) for p in a["parts"] if "text" in p]


def data(task: dict[str, Any]) -> list[Any]:
    return [p["data"] for a in task.get("artifacts", []) for p in a["parts"] if "data" in p]


@pytest.fixture(
    scope="module",
    params=[
        ("1", "JSONRPC", None),
        ("1", "HTTP+JSON", None),
        ("0.3", "JSONRPC", None),
        ("1", "HTTP+JSON", "bearer"),
        ("1", "JSONRPC", "api-key"),
        ("1", "GRPC", None),
    ],
    ids=[
        "a2a-js-1",
        "a2a-js-1-rest",
        "a2a-js-0.3",
        "a2a-js-1-rest-bearer-jwt",
        "a2a-js-1-api-key",
        "a2a-js-1-grpc",
    ],
)
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    generation, binding, auth = request.param
    js_install(generation)
    folder = tmp_path_factory.mktemp(f"js-client-{generation}-{binding.replace('+', '')}")
    certs = make_certs(folder / "certs", "greeter", "alice", "hook")
    (folder / "node").mkdir()
    extra, header = credentials_for_alice(folder / "node", auth) if auth else ("", None)
    reports = []
    # 1.x: book is shown only in the extended card, which the client reads;
    # 0.3 keeps a node without one (its clients are refused as 0.3 says).
    book_card = "extended" if generation == "1" else "public"
    grpc = binding == "GRPC"
    with serving_mtls(folder / "node", certs, extra, book_card=book_card, grpc=grpc) as url:
        argv, env = js_client(
            generation,
            url=url,
            certs=certs,
            name="alice",
            hook="hook",
            binding=binding,
            header=header,
        )
        # Credentials: once; gRPC: twice (CI's time; the other variants repeat the operations).
        rounds = 1 if auth else 2 if grpc else ROUNDS
        for number in range(1, rounds + 1):
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=90, env={**os.environ, **env}
            )
            assert done.returncode == 0, f"round {number}: exit {done.returncode}\n{done.stderr}"
            reports.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return Runs(generation, url, reports, binding)


def test_every_operation_of_the_client_is_exercised(runs: Runs) -> None:
    for methods in runs.each("operations"):
        assert set(methods) == set(OPERATIONS[runs.generation]) | HELPERS[runs.generation]
    if runs.v1:
        expected = {
            "JSONRPC": "JsonRpcTransport",
            "HTTP+JSON": "RestTransport",
            "GRPC": "GrpcTransport",
        }[runs.binding]
        for transport in runs.each("transport"):  # the class's name (the SDK's own has a "_")
            assert transport.lstrip("_") == expected
    for key in set(OPERATIONS[runs.generation].values()):
        list(runs.each(key))  # every step ran without an error, every round


def test_the_card_resolves_at_both_well_known_paths(runs: Runs) -> None:
    for card in runs.each("card"):
        assert card["well_known"] == card["legacy_path"]
        resolved = card["well_known"]
        assert resolved["name"] == "Greeter"
        assert (
            resolved["capabilities"]["streaming"] and resolved["capabilities"]["pushNotifications"]
        )
        first = resolved["supportedInterfaces"][0]
        assert (first["url"], first["protocolBinding"]) == (f"{runs.url}/a2a", "JSONRPC")
        public = {"greet"} if runs.v1 else {"greet", "book"}  # 1.x: book is extended
        assert {s["id"] for s in resolved["skills"]} == public
        if runs.v1:
            assert first["protocolVersion"] == "1.0" and card["protocol_version"] == "1.0"
        else:  # the 0.3 client reads the card's 0.3 fields
            assert (resolved["url"], resolved["preferredTransport"]) == (
                f"{runs.url}/a2a",
                "JSONRPC",
            )
            assert resolved["protocolVersion"].startswith("0.3")
            assert card["a2a_client"] == resolved


def test_send_blocking_completes_with_the_greeting(runs: Runs) -> None:
    for result in runs.each("send_blocking"):
        task = runs.task(result)
        assert runs.state(task) == "completed"
        assert data(task) == [ADA]
        assert task["metadata"]["caller"] == ALICE


def test_send_non_blocking_returns_at_once_then_completes(runs: Runs) -> None:
    for step in runs.each("send_non_blocking"):
        returned, later = runs.task(step["returned"]), step["later"]
        assert runs.state(returned) in {"submitted", "working"}
        assert later["id"] == returned["id"] and runs.state(later) == "completed"
        assert data(later) == [ADA]


def test_get_task_honours_history_length(runs: Runs) -> None:
    user, agent = ("ROLE_USER", "ROLE_AGENT") if runs.v1 else ("user", "agent")
    for step in runs.each("get_task"):
        history = [(m["role"], m["parts"][0]["text"]) for m in step["full"]["history"]]
        assert history == [
            (user, "Lisbon"),
            (agent, "When do you want to go to Lisbon?"),
            (user, "early May"),
        ]
        assert [m["parts"][0]["text"] for m in step["last_one"]["history"]] == ["early May"]
        assert step["none"].get("history", []) == []
        assert texts(step["full"]) == texts(step["none"]) == [BOOKED]


def test_the_streamed_send_ends_completed(runs: Runs) -> None:
    for events in runs.each("send_stream"):
        kinds = [runs.event(e) for e in events]
        assert kinds[0][0] == "task"
        task_id = kinds[0][1]["id"]
        assert [k for k, _ in kinds[1:]] == ["status-update", "artifact-update", "status-update"]
        assert all(body["taskId"] == task_id for _, body in kinds[1:])
        assert [runs.state(kinds[i][1]) for i in (1, 3)] == ["working", "completed"]
        assert kinds[2][1]["artifact"]["parts"][-1]["data"] == ADA
        if not runs.v1:
            assert [e["final"] for e in events[1::2]] == [False, True]


def test_list_tasks_filters_by_context(runs: Runs) -> None:
    if not runs.v1:
        assert all("list_tasks" not in report for report in runs.reports)
        return  # the 0.3 client has no ListTasks (checked against its methods above)
    for step in runs.each("list_tasks"):
        listed = step["listed"]["tasks"]
        assert sorted(t["id"] for t in listed) == sorted(step["sent"])
        assert {runs.state(t) for t in listed} == {"completed"}


def test_cancel_ends_an_input_required_task(runs: Runs) -> None:
    for task in runs.each("cancel"):
        assert runs.state(task) == "canceled"
        assert task["metadata"]["caller"] == ALICE


def test_a_follow_up_answers_the_question(runs: Runs) -> None:
    for step in runs.each("follow_up"):
        asked, answered = runs.task(step["asked"]), runs.task(step["answered"])
        assert runs.state(asked) == "input-required"
        question = asked["status"]["message"]
        assert question["parts"][0]["text"] == "When do you want to go to Lisbon?"
        assert question["role"] == ("ROLE_AGENT" if runs.v1 else "agent")
        assert answered["id"] == asked["id"] and runs.state(answered) == "completed"
        assert texts(answered) == [BOOKED]


def test_a_subscription_follows_the_task_to_its_end(runs: Runs) -> None:
    for step in runs.each("subscribe"):
        kinds = [runs.event(e) for e in step["events"]]
        first = kinds[0]
        assert first[0] == "task" and first[1]["id"] == step["task_id"]
        assert runs.state(first[1]) == "input-required"
        assert kinds[-1][0] == "status-update" and runs.state(kinds[-1][1]) == "completed"
        artifacts = [body for kind, body in kinds if kind == "artifact-update"]
        assert [p["text"] for p in artifacts[-1]["artifact"]["parts"] if "text" in p] == [BOOKED]
        assert runs.state(runs.task(step["answered"])) == "completed"


def _config(runs: Runs, found: dict[str, Any]) -> dict[str, Any]:
    """A push config in one shape: 0.3 nests it under ``pushNotificationConfig``."""
    if runs.v1:
        return found
    nested: dict[str, Any] = found["pushNotificationConfig"]
    return {"taskId": found["taskId"], **nested}


def test_push_configs_set_get_list_delete_and_a_push_arrives(runs: Runs) -> None:
    for step in runs.each("push"):
        task_id = step["task_id"]
        created = _config(runs, step["created"])
        assert (created["taskId"], created["id"], created["url"]) == (
            task_id,
            "extra",
            "https://example.com/js-push",
        )
        got = _config(runs, step["got"])
        assert (got["id"], got["token"]) == ("js-push", "js-token")
        assert got["url"].endswith("/js-hook")
        assert got["authentication"]["credentials"] == "js-cred"
        listed = step["listed"]["configs"] if runs.v1 else step["listed"]
        assert sorted(_config(runs, c)["id"] for c in listed) == ["extra", "js-push"]
        assert "error" not in step["deleted_again"]  # a second delete succeeds
        after = step["after"]["configs"] if runs.v1 else step["after"]
        assert [_config(runs, c)["id"] for c in after] == ["js-push"]
        pushes = step["pushes"]
        assert {p["path"] for p in pushes} == {"/js-hook"}
        assert {p["headers"]["authorization"] for p in pushes} == {"Bearer js-cred"}
        assert {p["headers"]["x-a2a-notification-token"] for p in pushes} == {"js-token"}
        assert all(f"URI:{GREETER}" in p["caller"].split(", ") for p in pushes)
        bodies = [p["body"]["task"] if runs.v1 else p["body"] for p in pushes]
        assert {b["id"] for b in bodies} == {task_id}
        assert runs.state(bodies[-1]) == "completed" and texts(bodies[-1]) == [BOOKED]


def test_the_extended_card_as_each_generation_meets_it(runs: Runs) -> None:
    """1.x runs: the public card declares ``capabilities.extendedAgentCard``
    and lacks ``book``; the client (and its transport, JSON-RPC or REST) gets
    the extended card with it. The 0.3 run's node declares none: the client
    keeps the public card, and asking anyway gets -32007, the only code 0.3
    knew (AuthenticatedExtendedCardNotConfigured)."""
    for step in runs.each("extended_card"):
        if runs.v1:
            for card in (step["client"], step["transport"]["value"]):
                assert card["name"] == "Greeter", card
                assert [s["id"] for s in card["skills"]] == ["greet", "book"]
                assert card["capabilities"]["extendedAgentCard"] is True
            continue
        assert step["client"]["name"] == "Greeter"
        assert not step["client"].get("supportsAuthenticatedExtendedCard")
        error = step["transport"]["error"]
        assert (error["name"], error["code"]) == (
            "AuthenticatedExtendedCardNotConfiguredJSONRPCError",
            -32007,
        )
