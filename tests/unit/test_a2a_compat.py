"""A2A 0.3 <-> 1.0: the 0.3 golden fixtures are the conversion of the 1.0 ones, and back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest

from agent_node.a2a.protocol import compat, compat_methods
from agent_node.a2a.protocol.card_models import AgentCard
from agent_node.a2a.protocol.errors import (
    InvalidParams,
    MethodNotFound,
    TaskNotFound,
    from_jsonrpc_error,
    to_jsonrpc_error,
)
from agent_node.a2a.protocol.models import Part, SendMessageRequest

ROOT = Path(__file__).parents[2] / "protocols" / "fixtures"
URL = "http://127.0.0.1:8700/a2a"


def load(version: str, name: str) -> Any:
    return json.loads((ROOT / version / name).read_text())


def stems() -> list[str]:
    files = (ROOT / "0.3").glob("*.request.json")
    return sorted(p.name.removesuffix(".request.json") for p in files)


def test_every_1_0_fixture_but_list_tasks_has_a_0_3_twin() -> None:
    only_1_0 = {p.name for p in (ROOT / "1.0").glob("*.json")} - {
        p.name for p in (ROOT / "0.3").glob("*.json")
    }
    assert only_1_0 == {"list_tasks.request.json", "list_tasks.response.json"}


@pytest.mark.parametrize("stem", stems())
def test_requests(stem: str) -> None:
    new, old = load("1.0", f"{stem}.request.json"), load("0.3", f"{stem}.request.json")
    assert compat_methods.request_params_to_v03(new["method"], new["params"]) == (
        old["method"],
        old["params"],
    )
    assert compat_methods.request_params_from_v03(old["method"], old["params"]) == (
        new["method"],
        new["params"],
    )


@pytest.mark.parametrize(
    "stem", [s for s in stems() if s not in ("send_streaming_message", "task_not_found")]
)
def test_results(stem: str) -> None:
    method = load("1.0", f"{stem}.request.json")["method"]
    new, old = load("1.0", f"{stem}.response.json"), load("0.3", f"{stem}.response.json")
    assert compat_methods.result_to_v03(method, new["result"]) == old["result"]
    assert compat_methods.result_from_v03(method, old["result"]) == new["result"]


@pytest.mark.parametrize("version", ["1.0", "0.3"])
def test_error_fixtures(version: Literal["1.0", "0.3"]) -> None:
    error = load(version, "task_not_found.response.json")["error"]
    exc = TaskNotFound(metadata={"taskId": "task-missing"})
    assert to_jsonrpc_error(exc, version) == error
    assert type(from_jsonrpc_error(error)) is TaskNotFound


def test_stream_events() -> None:
    new = load("1.0", "send_streaming_message.events.json")
    old = load("0.3", "send_streaming_message.events.json")
    last = len(new) - 1
    assert [
        compat.stream_event_to_v03(e["result"], final=i == last) for i, e in enumerate(new)
    ] == [e["result"] for e in old]
    assert [compat.stream_event_from_v03(e["result"]) for e in old] == [e["result"] for e in new]


def test_card_to_v03_and_back() -> None:
    new, old = load("1.0", "agent_card.json"), load("0.3", "agent_card.json")
    assert compat.card_to_v03(new, URL) == old
    back = compat.card_from_v03(old)
    AgentCard.model_validate(back)
    assert back["supportedInterfaces"] == [
        {"url": URL, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"}
    ]
    new["capabilities"].pop("extendedAgentCard")  # false is not written in 0.3
    assert {**back, "supportedInterfaces": None} == {**new, "supportedInterfaces": None}


def test_dual_card_keeps_both_shapes() -> None:
    card = load("1.0", "agent_card.json")
    dual = {**card, **compat.card_v03_fields(card, URL)}
    assert dual["securitySchemes"]["mtls"] == {
        "mtlsSecurityScheme": {"description": "Client certificate from the node CA"},
        "type": "mutualTLS",
        "description": "Client certificate from the node CA",
    }
    assert (
        AgentCard.model_validate(dual).supported_interfaces
        == AgentCard.model_validate(card).supported_interfaces
    )
    assert compat.card_from_v03(dual)["securitySchemes"] == card["securitySchemes"]
    assert dual["protocolVersion"] == "0.3.0" and dual["preferredTransport"] == "JSONRPC"


@pytest.mark.parametrize(
    ("new", "old"),
    [
        (
            {"text": "hi", "metadata": {"a": 1}},
            {"kind": "text", "text": "hi", "metadata": {"a": 1}},
        ),
        (
            {"raw": "dGNr", "filename": "o.txt", "mediaType": "text/plain"},
            {"kind": "file", "file": {"bytes": "dGNr", "name": "o.txt", "mimeType": "text/plain"}},
        ),
        ({"url": "https://e.com/o"}, {"kind": "file", "file": {"uri": "https://e.com/o"}}),
        ({"data": {"key": "value"}}, {"kind": "data", "data": {"key": "value"}}),
    ],
)
def test_parts(new: dict[str, Any], old: dict[str, Any]) -> None:
    assert compat.part_to_v03(new) == old
    assert compat.part_from_v03(old) == new
    Part.model_validate(new)


def test_non_object_data_is_wrapped_for_v03() -> None:
    assert compat.part_to_v03({"data": [1]}) == {"kind": "data", "data": {"value": [1]}}


def test_blocking_is_negated_and_push_config_flattened() -> None:
    params = {
        "message": {
            "messageId": "m",
            "role": "user",
            "parts": [{"kind": "text", "text": "x"}],
            "kind": "message",
        },
        "configuration": {
            "blocking": False,
            "pushNotificationConfig": {
                "id": "p1",
                "url": "http://127.0.0.1:9/hook",
                "token": "tok",
                "authentication": {"schemes": ["Bearer"], "credentials": "secret"},
            },
        },
    }
    method, new = compat_methods.request_params_from_v03("message/send", params)
    assert method == "SendMessage"
    assert new["configuration"] == {
        "returnImmediately": True,
        "taskPushNotificationConfig": {
            "id": "p1",
            "url": "http://127.0.0.1:9/hook",
            "token": "tok",
            "authentication": {"scheme": "Bearer", "credentials": "secret"},
        },
    }
    SendMessageRequest.model_validate(new)
    assert compat_methods.request_params_to_v03(method, new) == ("message/send", params)


def test_push_config_methods() -> None:
    nested = {"taskId": "t1", "pushNotificationConfig": {"id": "p1", "url": "http://h/x"}}
    flat = {"taskId": "t1", "id": "p1", "url": "http://h/x"}
    create = "tasks/pushNotificationConfig/set"
    assert compat_methods.request_params_from_v03(create, nested) == (
        "CreateTaskPushNotificationConfig",
        flat,
    )
    assert compat_methods.result_to_v03("GetTaskPushNotificationConfig", flat) == nested
    get = compat_methods.request_params_from_v03("tasks/pushNotificationConfig/get", {"id": "t1"})
    assert get == ("GetTaskPushNotificationConfig", {"taskId": "t1", "id": "t1"})
    ref = {"id": "t1", "pushNotificationConfigId": "p1"}
    delete = compat_methods.request_params_from_v03("tasks/pushNotificationConfig/delete", ref)
    assert delete == ("DeleteTaskPushNotificationConfig", {"taskId": "t1", "id": "p1"})
    assert compat_methods.request_params_to_v03(*delete) == (
        "tasks/pushNotificationConfig/delete",
        ref,
    )
    listing = compat_methods.request_params_from_v03(
        "tasks/pushNotificationConfig/list", {"id": "t1"}
    )
    assert listing == ("ListTaskPushNotificationConfigs", {"taskId": "t1"})
    assert compat_methods.result_to_v03("ListTaskPushNotificationConfigs", {"configs": [flat]}) == [
        nested
    ]
    assert compat_methods.result_from_v03("ListTaskPushNotificationConfigs", [nested]) == {
        "configs": [flat],
        "nextPageToken": "",
    }
    assert compat_methods.result_to_v03("DeleteTaskPushNotificationConfig", {}) is None


def test_method_table_is_a_bijection() -> None:
    assert len(compat_methods.METHODS_FROM_V03) == len(compat_methods.METHODS_TO_V03) == 10
    assert compat_methods.METHODS_FROM_V03["tasks/resubscribe"] == "SubscribeToTask"
    assert (
        compat_methods.METHODS_FROM_V03["agent/getAuthenticatedExtendedCard"]
        == "GetExtendedAgentCard"
    )


def test_unknown_methods_and_bad_params() -> None:
    with pytest.raises(MethodNotFound):
        compat_methods.request_params_from_v03("tasks/list", {})
    with pytest.raises(MethodNotFound):
        compat_methods.request_params_to_v03("ListTasks", {})
    with pytest.raises(InvalidParams):
        compat_methods.request_params_from_v03("tasks/get", ["t1"])


def test_all_states_and_roles_map_both_ways() -> None:
    states = "submitted working input-required auth-required completed failed canceled rejected"
    for state in [*states.split(), "unknown"]:
        task = {"kind": "task", "id": "t", "contextId": "c", "status": {"state": state}}
        assert compat.task_to_v03(compat.task_from_v03(task)) == task
    assert compat.task_from_v03(
        {"kind": "task", "id": "t", "contextId": "c", "status": {"state": "input-required"}}
    )["status"] == {"state": "TASK_STATE_INPUT_REQUIRED"}
