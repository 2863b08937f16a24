"""The protocol error table: codes, reasons, HTTP statuses, and both JSON-RPC shapes."""

from __future__ import annotations

from typing import Literal

import pytest

from agent_node.a2a.protocol import errors as e
from agent_node.a2a.protocol.error_table import ERROR_INFO_TYPE, ProtocolError
from agent_node.errors import AgentNodeError

# From TCK.md (1.0-dev) and the specification's JSON-RPC table.
EXPECTED: list[tuple[type[e.A2AError], int, str, int, str]] = [
    (e.ParseError, -32700, "JSON_PARSE", 400, "a2a-protocol.org"),
    (e.InvalidRequest, -32600, "INVALID_REQUEST", 400, "a2a-protocol.org"),
    (e.MethodNotFound, -32601, "METHOD_NOT_FOUND", 404, "a2a-protocol.org"),
    (e.InvalidParams, -32602, "INVALID_PARAMS", 400, "a2a-protocol.org"),
    (e.InternalError, -32603, "INTERNAL", 500, "a2a-protocol.org"),
    (e.TaskNotFound, -32001, "TASK_NOT_FOUND", 404, "a2a-protocol.org"),
    (e.TaskNotCancelable, -32002, "TASK_NOT_CANCELABLE", 409, "a2a-protocol.org"),
    (
        e.PushNotificationNotSupported,
        -32003,
        "PUSH_NOTIFICATION_NOT_SUPPORTED",
        400,
        "a2a-protocol.org",
    ),
    (e.UnsupportedOperation, -32004, "UNSUPPORTED_OPERATION", 400, "a2a-protocol.org"),
    (e.ContentTypeNotSupported, -32005, "CONTENT_TYPE_NOT_SUPPORTED", 415, "a2a-protocol.org"),
    (e.InvalidAgentResponse, -32006, "INVALID_AGENT_RESPONSE", 500, "a2a-protocol.org"),
    (
        e.ExtendedAgentCardNotConfigured,
        -32007,
        "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
        400,
        "a2a-protocol.org",
    ),
    (e.ExtensionSupportRequired, -32008, "EXTENSION_SUPPORT_REQUIRED", 400, "a2a-protocol.org"),
    (e.VersionNotSupported, -32009, "VERSION_NOT_SUPPORTED", 400, "a2a-protocol.org"),
    # The node's own, for what A2A has no JSON-RPC code for.
    (e.Unauthenticated, -32030, "UNAUTHENTICATED", 401, "agent-node"),
    (e.PermissionDenied, -32031, "PERMISSION_DENIED", 403, "agent-node"),
    (e.TooManyRequests, -32032, "TOO_MANY_REQUESTS", 429, "agent-node"),
    (e.Unavailable, -32033, "UNAVAILABLE", 503, "agent-node"),
    (e.IdempotencyKeyReused, -32034, "IDEMPOTENCY_KEY_REUSED", 422, "agent-node"),
]


def test_every_row_has_exactly_one_class() -> None:
    assert {cls.error for cls, *_ in EXPECTED} == set(ProtocolError)
    assert len(EXPECTED) == len(ProtocolError)
    for cls, *_ in EXPECTED:
        assert e.error_class(cls.error) is cls


@pytest.mark.parametrize(("cls", "code", "reason", "http", "domain"), EXPECTED)
def test_row(cls: type[e.A2AError], code: int, reason: str, http: int, domain: str) -> None:
    row = cls.error.row
    assert (row.code, row.reason, row.http_status, row.domain) == (code, reason, http, domain)
    assert row.name.endswith("Error") and row.message
    assert issubclass(cls, AgentNodeError)


@pytest.mark.parametrize(("cls", "code", "reason", "http", "domain"), EXPECTED)
def test_jsonrpc_shapes(
    cls: type[e.A2AError], code: int, reason: str, http: int, domain: str
) -> None:
    exc = cls()
    assert e.to_jsonrpc_error(exc, "1.0") == {
        "code": code,
        "message": cls.error.row.message,
        "data": [{"@type": ERROR_INFO_TYPE, "reason": reason, "domain": domain}],
    }
    assert e.to_jsonrpc_error(exc, "0.3") == {"code": code, "message": cls.error.row.message}


def test_metadata_travels_in_error_info_or_as_plain_data() -> None:
    exc = e.TaskNotFound("no task t9", metadata={"taskId": "t9"})
    new = e.to_jsonrpc_error(exc, "1.0")
    assert new["message"] == "no task t9"
    assert new["data"][0]["metadata"] == {"taskId": "t9"}
    assert e.to_jsonrpc_error(exc, "0.3")["data"] == {"taskId": "t9"}


def test_foreign_exceptions_become_a_bare_internal_error() -> None:
    body = e.to_jsonrpc_error(RuntimeError("password=hunter2"), "1.0")
    assert body["code"] == -32603 and "hunter2" not in str(body)


@pytest.mark.parametrize("version", ["1.0", "0.3"])
def test_peer_errors_parse_back(version: Literal["1.0", "0.3"]) -> None:
    body = e.to_jsonrpc_error(e.TaskNotCancelable(metadata={"taskId": "t"}), version)
    exc = e.from_jsonrpc_error(body)
    assert type(exc) is e.TaskNotCancelable and exc.metadata == {"taskId": "t"}


def test_unknown_peer_code_is_internal() -> None:
    exc = e.from_jsonrpc_error({"code": -31999, "message": "odd", "data": "x"})
    assert type(exc) is e.InternalError and exc.message == "odd"


def test_a_special_case_of_a_row_leaves_the_row_to_its_class() -> None:
    # Imported for the classes they define below InvalidRequest and MethodNotFound.
    from agent_node.a2a.server import bodies, rest  # noqa: F401

    assert e.error_class(ProtocolError.INVALID_REQUEST) is e.InvalidRequest
    assert type(e.from_jsonrpc_error({"code": -32601})) is e.MethodNotFound


def test_an_indirect_subclass_naming_a_row_maps_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every row has its class: free one for the while of the test.
    monkeypatch.delitem(e._BY_ERROR, ProtocolError.TASK_NOT_FOUND)
    monkeypatch.delitem(e._BY_CODE, -32001)

    class TaskGone(e.InvalidRequest):
        error = ProtocolError.TASK_NOT_FOUND

    assert e.error_class(ProtocolError.TASK_NOT_FOUND) is TaskGone
    assert type(e.from_jsonrpc_error({"code": -32001, "message": "gone"})) is TaskGone


def test_a_second_class_for_a_row_is_refused_at_any_depth() -> None:
    with pytest.raises(TypeError, match="TASK_NOT_FOUND, the row of TaskNotFound"):

        class Again(e.InvalidRequest):
            error = ProtocolError.TASK_NOT_FOUND
