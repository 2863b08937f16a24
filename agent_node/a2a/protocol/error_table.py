"""The table of every A2A protocol error: how each binding spells it.

:class:`ProtocolError` holds the table: JSON-RPC code, the specification's
error name, the ``google.rpc.ErrorInfo`` reason, and the HTTP and gRPC
statuses. The gRPC statuses are the specification's (A2A 1.0.1, §5.4):
PushNotificationNotSupported, UnsupportedOperation and VersionNotSupported
are ``FAILED_PRECONDITION`` (1.0.0 and the TCK's 1.0-dev snapshot said
``UNIMPLEMENTED``). The HTTP statuses still follow that snapshot in two
places: TaskNotCancelable is 409 and ContentTypeNotSupported 415 (1.0.1: 400).

A2A defines no JSON-RPC codes for authentication, authorization or rate
limits (its HTTP bindings use 401, 403 and 429), nor for a server that
cannot serve now (503), nor for an ``Idempotency-Key`` sent again with
another request (422, draft-ietf-httpapi-idempotency-key-header §2.7).
This node answers them with five codes of its own
from JSON-RPC's server-error range, next to A2A's, with the ErrorInfo
domain :data:`NODE_ERROR_DOMAIN` so no client mistakes them for A2A's.

The exceptions, one class per row, are :mod:`.errors`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "ERROR_INFO_DOMAIN",
    "ERROR_INFO_TYPE",
    "NODE_ERROR_DOMAIN",
    "ErrorRow",
    "ProtocolError",
]

ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
ERROR_INFO_DOMAIN = "a2a-protocol.org"
#: The ErrorInfo domain of the errors this node adds to A2A's table.
NODE_ERROR_DOMAIN = "agent-node"


@dataclass(frozen=True)
class ErrorRow:
    """One protocol error: how each binding spells it."""

    code: int
    name: str
    reason: str
    http_status: int
    grpc_status: str
    message: str
    domain: str = ERROR_INFO_DOMAIN


class ProtocolError(Enum):
    """The table of every protocol error (JSON-RPC standard ones first)."""

    PARSE_ERROR = ErrorRow(
        -32700, "JSONParseError", "JSON_PARSE", 400, "INVALID_ARGUMENT", "Invalid JSON payload"
    )
    INVALID_REQUEST = ErrorRow(
        -32600,
        "InvalidRequestError",
        "INVALID_REQUEST",
        400,
        "INVALID_ARGUMENT",
        "Request payload validation error",
    )
    METHOD_NOT_FOUND = ErrorRow(
        -32601, "MethodNotFoundError", "METHOD_NOT_FOUND", 404, "UNIMPLEMENTED", "Method not found"
    )
    INVALID_PARAMS = ErrorRow(
        -32602,
        "InvalidParamsError",
        "INVALID_PARAMS",
        400,
        "INVALID_ARGUMENT",
        "Invalid parameters",
    )
    INTERNAL_ERROR = ErrorRow(
        -32603, "InternalError", "INTERNAL", 500, "INTERNAL", "Internal error"
    )
    TASK_NOT_FOUND = ErrorRow(
        -32001, "TaskNotFoundError", "TASK_NOT_FOUND", 404, "NOT_FOUND", "Task not found"
    )
    TASK_NOT_CANCELABLE = ErrorRow(
        -32002,
        "TaskNotCancelableError",
        "TASK_NOT_CANCELABLE",
        409,
        "FAILED_PRECONDITION",
        "Task cannot be canceled",
    )
    PUSH_NOTIFICATION_NOT_SUPPORTED = ErrorRow(
        -32003,
        "PushNotificationNotSupportedError",
        "PUSH_NOTIFICATION_NOT_SUPPORTED",
        400,
        "FAILED_PRECONDITION",
        "Push notifications are not supported",
    )
    UNSUPPORTED_OPERATION = ErrorRow(
        -32004,
        "UnsupportedOperationError",
        "UNSUPPORTED_OPERATION",
        400,
        "FAILED_PRECONDITION",
        "This operation is not supported",
    )
    CONTENT_TYPE_NOT_SUPPORTED = ErrorRow(
        -32005,
        "ContentTypeNotSupportedError",
        "CONTENT_TYPE_NOT_SUPPORTED",
        415,
        "INVALID_ARGUMENT",
        "Incompatible content types",
    )
    INVALID_AGENT_RESPONSE = ErrorRow(
        -32006,
        "InvalidAgentResponseError",
        "INVALID_AGENT_RESPONSE",
        500,
        "INTERNAL",
        "Invalid agent response",
    )
    EXTENDED_AGENT_CARD_NOT_CONFIGURED = ErrorRow(
        -32007,
        "ExtendedAgentCardNotConfiguredError",
        "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
        400,
        "FAILED_PRECONDITION",
        "Extended agent card not configured",
    )
    EXTENSION_SUPPORT_REQUIRED = ErrorRow(
        -32008,
        "ExtensionSupportRequiredError",
        "EXTENSION_SUPPORT_REQUIRED",
        400,
        "FAILED_PRECONDITION",
        "A required extension is not supported by the client",
    )
    VERSION_NOT_SUPPORTED = ErrorRow(
        -32009,
        "VersionNotSupportedError",
        "VERSION_NOT_SUPPORTED",
        400,
        "FAILED_PRECONDITION",
        "Protocol version not supported",
    )
    UNAUTHENTICATED = ErrorRow(
        -32030,
        "UnauthenticatedError",
        "UNAUTHENTICATED",
        401,
        "UNAUTHENTICATED",
        "A client certificate is required",
        NODE_ERROR_DOMAIN,
    )
    PERMISSION_DENIED = ErrorRow(
        -32031,
        "PermissionDeniedError",
        "PERMISSION_DENIED",
        403,
        "PERMISSION_DENIED",
        "The caller may not do this",
        NODE_ERROR_DOMAIN,
    )
    TOO_MANY_REQUESTS = ErrorRow(
        -32032,
        "TooManyRequestsError",
        "TOO_MANY_REQUESTS",
        429,
        "RESOURCE_EXHAUSTED",
        "Too many requests in flight for this caller",
        NODE_ERROR_DOMAIN,
    )
    UNAVAILABLE = ErrorRow(
        -32033,
        "UnavailableError",
        "UNAVAILABLE",
        503,
        "UNAVAILABLE",
        "The node cannot serve this now; ask again in a moment",
        NODE_ERROR_DOMAIN,
    )
    IDEMPOTENCY_KEY_REUSED = ErrorRow(
        -32034,
        "IdempotencyKeyReusedError",
        "IDEMPOTENCY_KEY_REUSED",
        422,
        "FAILED_PRECONDITION",
        "This Idempotency-Key was sent before with another message",
        NODE_ERROR_DOMAIN,
    )

    @property
    def row(self) -> ErrorRow:
        """The row's data (``Enum.value``, typed)."""
        value: ErrorRow = self.value
        return value
