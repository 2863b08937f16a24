"""The A2A 0.3 models: the 0.3 golden fixtures are 0.3 documents, and so is what
compat writes for a 0.3 peer from every 1.0 fixture (the drift check that matters)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, RootModel, ValidationError

from agent_node.a2a.protocol import card_models_v03 as vc
from agent_node.a2a.protocol import compat, compat_methods
from agent_node.a2a.protocol import models_v03 as v
from agent_node.a2a.protocol.models import WireModel

FIXTURES = Path(__file__).parents[2] / "protocols" / "fixtures"
URL = "http://127.0.0.1:8700/a2a"

METHODS: dict[str, tuple[type[BaseModel] | None, type[BaseModel] | None]] = {
    "message/send": (v.MessageSendParams, v.SendMessageResult),
    "message/stream": (v.MessageSendParams, v.StreamEvent),
    "tasks/get": (v.TaskQueryParams, v.Task),
    "tasks/cancel": (v.TaskIdParams, v.Task),
    "tasks/resubscribe": (v.TaskIdParams, v.StreamEvent),
    "tasks/pushNotificationConfig/set": (
        v.TaskPushNotificationConfig,
        v.TaskPushNotificationConfig,
    ),
    "tasks/pushNotificationConfig/get": (
        v.GetTaskPushNotificationConfigParams,
        v.TaskPushNotificationConfig,
    ),
    "tasks/pushNotificationConfig/list": (
        v.ListTaskPushNotificationConfigParams,
        v.ListTaskPushNotificationConfigResult,
    ),
    "tasks/pushNotificationConfig/delete": (v.DeleteTaskPushNotificationConfigParams, None),
    "agent/getAuthenticatedExtendedCard": (None, vc.AgentCard),
}
"""0.3 method -> (params model, result model); ``None``: no params, a ``null`` result."""

STREAMING = {"message/stream", "tasks/resubscribe"}

V1_CARD_FIELDS = {
    "supportedInterfaces",
    "securityRequirements",
    "extendedAgentCard",
    "apiKeySecurityScheme",
    "httpAuthSecurityScheme",
    "oauth2SecurityScheme",
    "openIdConnectSecurityScheme",
    "mtlsSecurityScheme",
}
"""The 1.0 card's own keys, which the dual-shape card carries beside the 0.3 ones."""


def load(version: str, name: str) -> Any:
    return json.loads((FIXTURES / version / name).read_text())


def stems(version: str) -> list[str]:
    files = (FIXTURES / version).glob("*.request.json")
    return sorted(p.name.removesuffix(".request.json") for p in files)


def responses(version: str, stem: str) -> list[dict[str, Any]]:
    """The stem's response, or its stream of events, each a JSON-RPC response."""
    events = FIXTURES / version / f"{stem}.events.json"
    found = (
        load(version, events.name) if events.exists() else [load(version, f"{stem}.response.json")]
    )
    assert all(("result" in r) != ("error" in r) for r in found), f"{stem}: result xor error"
    return [r for r in found if "result" in r]


def unknown_fields(value: Any, where: str = "$") -> list[str]:
    """Where ``value`` holds a field outside the 0.3 schema (kept as a model extra)."""
    if isinstance(value, BaseModel):
        found = [f"{where}.{key}" for key in value.model_extra or {}]
        for name, field in type(value).model_fields.items():
            found += unknown_fields(getattr(value, name), f"{where}.{field.alias or name}")
        return found
    if isinstance(value, list):
        return [
            path for i, item in enumerate(value) for path in unknown_fields(item, f"{where}[{i}]")
        ]
    if isinstance(value, dict):
        return [path for k, item in value.items() for path in unknown_fields(item, f"{where}.{k}")]
    return []


def as_json(parsed: BaseModel) -> Any:
    if isinstance(parsed, RootModel):
        root = parsed.root
        return [item.to_json() for item in root] if isinstance(root, list) else root.to_json()
    assert isinstance(parsed, WireModel)
    return parsed.to_json()


def check(model: type[BaseModel] | None, document: Any) -> BaseModel | None:
    """``document`` is a ``model`` with no field outside the 0.3 schema (``None``: empty)."""
    if model is None:
        assert not document, f"expected no params / a null result, got {document!r}"
        return None
    parsed = model.model_validate(document)
    assert unknown_fields(parsed) == [], "fields outside the 0.3 schema"
    return parsed


def round_trip(model: type[BaseModel] | None, document: Any) -> None:
    parsed = check(model, document)
    if parsed is not None:
        assert as_json(parsed) == document


# The 0.3 golden fixtures


@pytest.mark.parametrize("stem", stems("0.3"))
def test_fixture_params_and_results_are_v03(stem: str) -> None:
    request = load("0.3", f"{stem}.request.json")
    params_model, result_model = METHODS[request["method"]]
    round_trip(params_model, request.get("params"))
    for response in responses("0.3", stem):
        round_trip(result_model, response["result"])


def test_agent_card_fixture_is_v03() -> None:
    round_trip(vc.AgentCard, load("0.3", "agent_card.json"))


def test_every_fixture_is_used() -> None:
    used = {"agent_card.json"}
    for stem in stems("0.3"):
        used |= {f"{stem}.request.json", f"{stem}.response.json", f"{stem}.events.json"}
    assert {p.name for p in (FIXTURES / "0.3").glob("*.json")} <= used


def test_every_v03_method_has_models() -> None:
    assert set(METHODS) == set(compat_methods.METHODS_FROM_V03)


# What compat writes for 0.3, from the 1.0 fixtures


def convertible_stems() -> list[str]:
    """1.0 fixtures of methods that 0.3 has (all but ``ListTasks``)."""
    return [
        stem
        for stem in stems("1.0")
        if load("1.0", f"{stem}.request.json")["method"] in compat_methods.METHODS_TO_V03
    ]


@pytest.mark.parametrize("stem", convertible_stems())
def test_compat_params_and_results_are_v03(stem: str) -> None:
    request = load("1.0", f"{stem}.request.json")
    method, params = compat_methods.request_params_to_v03(request["method"], request["params"])
    params_model, result_model = METHODS[method]
    check(params_model, params)
    events = responses("1.0", stem)
    for i, response in enumerate(events):
        if method in STREAMING:
            result = compat.stream_event_to_v03(response["result"], final=i == len(events) - 1)
        else:
            result = compat_methods.result_to_v03(request["method"], response["result"])
        check(result_model, result)


def test_compat_extended_card_is_a_pure_v03_card() -> None:
    card = compat_methods.result_to_v03("GetExtendedAgentCard", load("1.0", "agent_card.json"))
    check(vc.AgentCard, card)


def test_dual_shape_card_reads_as_v03() -> None:
    card = load("1.0", "agent_card.json")
    dual = vc.AgentCard.model_validate({**card, **compat.card_v03_fields(card, URL)})
    foreign = {path.rsplit(".", 1)[-1] for path in unknown_fields(dual)}
    assert foreign <= V1_CARD_FIELDS
    assert dual.url == URL and dual.protocol_version == "0.3.0"


# The models themselves

MESSAGE = {
    "kind": "message",
    "messageId": "m",
    "role": "user",
    "parts": [{"kind": "text", "text": "x"}],
}
TASK = {"kind": "task", "id": "t", "contextId": "c", "status": {"state": "working"}}
STATUS_UPDATE = {
    "kind": "status-update",
    "taskId": "t",
    "contextId": "c",
    "status": {"state": "failed"},
    "final": True,
}
ARTIFACT_UPDATE = {
    "kind": "artifact-update",
    "taskId": "t",
    "contextId": "c",
    "artifact": {"artifactId": "a", "parts": [{"kind": "data", "data": {"k": 1}}]},
    "lastChunk": True,
}


@pytest.mark.parametrize(
    ("model", "document"),
    [
        (v.Message, {k: val for k, val in MESSAGE.items() if k != "kind"}),
        (v.Message, {**MESSAGE, "role": "ROLE_USER"}),
        (v.Message, {**MESSAGE, "parts": [{"text": "x"}]}),
        (v.Message, {**MESSAGE, "parts": [{"kind": "file", "file": {"name": "x"}}]}),
        (v.Message, {**MESSAGE, "parts": [{"kind": "data", "data": [1]}]}),
        (v.Task, {k: val for k, val in TASK.items() if k != "contextId"}),
        (v.Task, {**TASK, "status": {"state": "TASK_STATE_WORKING"}}),
        (v.StreamEvent, {k: val for k, val in STATUS_UPDATE.items() if k != "final"}),
        (v.StreamEvent, {"statusUpdate": {"taskId": "t", "contextId": "c"}}),
        (v.TaskPushNotificationConfig, {"taskId": "t", "url": "https://h/x"}),
        (v.PushNotificationAuthenticationInfo, {"scheme": "Bearer"}),
        (vc.AgentInterface, {"url": URL, "protocolBinding": "JSONRPC"}),
        (vc.APIKeySecurityScheme, {"type": "apiKey", "location": "header", "name": "X-Key"}),
        (v.DeleteTaskPushNotificationConfigParams, {"id": "t"}),
    ],
)
def test_invalid_and_1_0_shapes_are_refused(model: type[BaseModel], document: Any) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(document)


@pytest.mark.parametrize(
    ("document", "kind"),
    [
        (TASK, v.Task),
        (MESSAGE, v.Message),
        (STATUS_UPDATE, v.TaskStatusUpdateEvent),
        (ARTIFACT_UPDATE, v.TaskArtifactUpdateEvent),
    ],
)
def test_stream_events_are_chosen_by_kind(document: dict[str, Any], kind: type[BaseModel]) -> None:
    event = v.StreamEvent.model_validate(document)
    assert type(event.root) is kind
    assert as_json(event) == document


@pytest.mark.parametrize(
    "scheme",
    [
        {"type": "apiKey", "in": "header", "name": "X-Key"},
        {"type": "http", "scheme": "Bearer"},
        {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": "https://t", "scopes": {}}}},
        {"type": "openIdConnect", "openIdConnectUrl": "https://o/.well-known/openid-configuration"},
        {"type": "mutualTLS"},
    ],
)
def test_security_schemes_are_chosen_by_type(scheme: dict[str, Any]) -> None:
    card = load("0.3", "agent_card.json") | {"securitySchemes": {"s": scheme}}
    assert as_json(vc.AgentCard.model_validate(card))["securitySchemes"]["s"] == scheme


def test_file_parts_hold_bytes_or_a_uri() -> None:
    parts = [
        {"kind": "file", "file": {"bytes": "dGNr", "name": "o.txt", "mimeType": "text/plain"}},
        {"kind": "file", "file": {"uri": "https://e.com/o"}},
    ]
    message = v.Message.model_validate({**MESSAGE, "parts": parts})
    assert [type(p.file) for p in message.parts if isinstance(p, v.FilePart)] == [
        v.FileWithBytes,
        v.FileWithUri,
    ]
    assert as_json(message)["parts"] == parts


def test_unknown_fields_are_kept() -> None:
    document = {**TASK, "future": {"x": 1}, "status": {"state": "unknown", "note": "n"}}
    task = v.Task.model_validate(document)
    assert unknown_fields(task) == ["$.future", "$.status.note"]
    assert as_json(task) == document


def test_the_node_does_not_load_the_v03_models() -> None:
    code = (
        "import agent_node.a2a.server.app, sys;"
        "print(sorted(n for n in sys.modules if n.endswith(('models_v03', 'a2a.schemas'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
