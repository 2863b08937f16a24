"""The A2A 1.0 models: golden fixtures round-trip unchanged; invalid objects are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from agent_node.a2a.protocol import card_models as c
from agent_node.a2a.protocol import models as m

FIXTURES = Path(__file__).parents[2] / "protocols" / "fixtures" / "1.0"

METHODS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "SendMessage": (m.SendMessageRequest, m.SendMessageResponse),
    "SendStreamingMessage": (m.SendMessageRequest, m.StreamResponse),
    "GetTask": (m.GetTaskRequest, m.Task),
    "ListTasks": (m.ListTasksRequest, m.ListTasksResponse),
    "CancelTask": (m.CancelTaskRequest, m.Task),
    "CreateTaskPushNotificationConfig": (
        m.TaskPushNotificationConfig,
        m.TaskPushNotificationConfig,
    ),
    "GetTaskPushNotificationConfig": (
        m.GetTaskPushNotificationConfigRequest,
        m.TaskPushNotificationConfig,
    ),
    "ListTaskPushNotificationConfigs": (
        m.ListTaskPushNotificationConfigsRequest,
        m.ListTaskPushNotificationConfigsResponse,
    ),
    "DeleteTaskPushNotificationConfig": (m.DeleteTaskPushNotificationConfigRequest, m.Empty),
}

MESSAGE = {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def normalized(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, indent=2)


def round_trip(model: type[BaseModel], document: Any) -> None:
    parsed = model.model_validate(document)
    assert isinstance(parsed, m.WireModel)
    assert normalized(parsed.to_json()) == normalized(document)


def stems() -> list[str]:
    return sorted(p.name.removesuffix(".request.json") for p in FIXTURES.glob("*.request.json"))


@pytest.mark.parametrize("stem", stems())
def test_fixture_requests_and_results_round_trip(stem: str) -> None:
    request = load(f"{stem}.request.json")
    params_model, result_model = METHODS[request["method"]]
    round_trip(params_model, request["params"])
    responses = (
        load(f"{stem}.events.json")
        if (FIXTURES / f"{stem}.events.json").exists()
        else [load(f"{stem}.response.json")]
    )
    for response in responses:
        if "result" in response:
            round_trip(result_model, response["result"])


def test_agent_card_fixture_round_trips() -> None:
    round_trip(c.AgentCard, load("agent_card.json"))


def test_every_fixture_is_used() -> None:
    used = {"agent_card.json"}
    for stem in stems():
        used |= {f"{stem}.request.json", f"{stem}.response.json", f"{stem}.events.json"}
    assert {p.name for p in FIXTURES.glob("*.json")} <= used


@pytest.mark.parametrize(
    "part",
    [
        {"text": "a", "raw": "dGNr"},
        {"url": "https://example.com/x", "data": {"k": 1}},
        {"filename": "x.txt", "mediaType": "text/plain"},
        {"raw": "not base64!"},
        {"data": None},
    ],
)
def test_invalid_parts_are_refused(part: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        m.Part.model_validate(part)


@pytest.mark.parametrize(
    "part",
    [{"text": ""}, {"raw": "dGNr"}, {"raw": "-_8"}, {"url": "u"}, {"data": [1, 2]}, {"data": 0}],
)
def test_valid_parts(part: dict[str, Any]) -> None:
    assert m.Part.model_validate(part).to_json() == part


def test_part_from_bytes() -> None:
    part = m.Part.from_bytes(b"tck", media_type="text/plain")
    assert part.to_json() == {"raw": "dGNr", "mediaType": "text/plain"}


@pytest.mark.parametrize(
    "change",
    [
        {"messageId": None},
        {"role": "user"},
        {"role": "ROLE_UNSPECIFIED"},
        {"role": 0},
        {"parts": []},
    ],
)
def test_invalid_messages_are_refused(change: dict[str, Any]) -> None:
    document = {k: v for k, v in {**MESSAGE, **change}.items() if v is not None}
    with pytest.raises(ValidationError):
        m.Message.model_validate(document)


def test_enum_numbers_are_read_as_names() -> None:
    message = m.Message.model_validate({**MESSAGE, "role": 2})
    status = m.TaskStatus.model_validate({"state": 6})
    assert (message.role, status.state) == (m.Role.AGENT, m.TaskState.INPUT_REQUIRED)
    assert status.to_json() == {"state": "TASK_STATE_INPUT_REQUIRED"}


@pytest.mark.parametrize("size", [0, 101, -1])
def test_page_size_out_of_range_is_refused(size: int) -> None:
    with pytest.raises(ValidationError):
        m.ListTasksRequest.model_validate({"pageSize": size})


@pytest.mark.parametrize("size", [1, 2, 100])
def test_page_size_in_range(size: int) -> None:
    assert m.ListTasksRequest.model_validate({"pageSize": size}).page_size == size


def test_unknown_fields_are_tolerated_and_kept() -> None:
    document = {
        "message": {**MESSAGE, "futureField": {"x": 1}, "parts": [{"text": "t", "hint": 1}]},
        "configuration": {"returnImmediately": True, "novel": "yes"},
        "unknownTopLevel": [1],
    }
    request = m.SendMessageRequest.model_validate(document)
    assert request.configuration is not None and request.configuration.return_immediately
    assert request.to_json() == document


def test_python_names_are_accepted() -> None:
    task = m.Task(id="t", context_id="c", status=m.TaskStatus(state=m.TaskState.WORKING))
    assert task.to_json() == {
        "id": "t",
        "contextId": "c",
        "status": {"state": "TASK_STATE_WORKING"},
    }


def test_bad_timestamp_is_refused() -> None:
    with pytest.raises(ValidationError):
        m.TaskStatus.model_validate({"state": "TASK_STATE_WORKING", "timestamp": "yesterday"})


@pytest.mark.parametrize(
    ("model", "document"),
    [
        (m.SendMessageResponse, {}),
        (m.SendMessageResponse, {"message": MESSAGE, "task": {"id": "t", "status": {"state": 1}}}),
        (m.StreamResponse, {}),
        (c.SecurityScheme, {"mtlsSecurityScheme": {}, "apiKeySecurityScheme": {}}),
        (c.OAuthFlows, {}),
        (m.ListTasksResponse, {"tasks": [], "pageSize": 1, "totalSize": 0}),
    ],
)
def test_oneofs_and_required_fields(model: type[BaseModel], document: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(document)


def test_terminal_and_interrupted_states() -> None:
    terminal = {s for s in m.TaskState if s.is_terminal}
    interrupted = {s for s in m.TaskState if s.is_interrupted}
    assert terminal == {
        m.TaskState.COMPLETED,
        m.TaskState.FAILED,
        m.TaskState.CANCELED,
        m.TaskState.REJECTED,
    }
    assert interrupted == {m.TaskState.INPUT_REQUIRED, m.TaskState.AUTH_REQUIRED}


def test_importing_agent_node_does_not_load_a2a() -> None:
    code = "import agent_node, sys; print(sorted(n for n in sys.modules if 'a2a' in n))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
