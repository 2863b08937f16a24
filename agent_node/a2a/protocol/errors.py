"""The A2A protocol errors: one exception class per row of the table
(:mod:`.error_table`), and their JSON-RPC ``error`` objects.

::

    AgentNodeError                          (agent_node.errors)
    └── A2AError                            an error the peer sees as a JSON-RPC error
        ├── ParseError                      -32700  body is not JSON
        ├── InvalidRequest                  -32600  not a JSON-RPC request
        ├── MethodNotFound                  -32601
        ├── InvalidParams                   -32602  params do not validate
        ├── InternalError                   -32603
        ├── TaskNotFound                    -32001
        ├── TaskNotCancelable               -32002
        ├── PushNotificationNotSupported    -32003
        ├── UnsupportedOperation            -32004
        ├── ContentTypeNotSupported         -32005
        ├── InvalidAgentResponse            -32006
        ├── ExtendedAgentCardNotConfigured  -32007
        ├── ExtensionSupportRequired        -32008
        ├── VersionNotSupported             -32009
        ├── Unauthenticated                 -32030  no client certificate (agent-node)
        ├── PermissionDenied                -32031  the policy forbids it (agent-node)
        ├── TooManyRequests                 -32032  the caller's concurrency cap (agent-node)
        ├── Unavailable                     -32033  cannot serve now: store out of reach,
        │                                           starting, stopping (agent-node)
        └── IdempotencyKeyReused            -32034  a key sent again with another message
                                                    (agent-node)
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from agent_node.a2a.protocol.error_table import ERROR_INFO_TYPE, ProtocolError
from agent_node.errors import AgentNodeError, StoreFull

__all__ = [
    "A2AError",
    "ContentTypeNotSupported",
    "ExtendedAgentCardNotConfigured",
    "ExtensionSupportRequired",
    "IdempotencyKeyReused",
    "InternalError",
    "InvalidAgentResponse",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotFound",
    "ParseError",
    "PermissionDenied",
    "PushNotificationNotSupported",
    "TaskNotCancelable",
    "TaskNotFound",
    "TooManyRequests",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedOperation",
    "VersionNotSupported",
    "error_class",
    "from_jsonrpc_error",
    "to_jsonrpc_error",
]


#: The class of each row and of each code, filled as the classes are made
#: (:meth:`A2AError.__init_subclass__`): a subclass at any depth, in any module.
_BY_ERROR: dict[ProtocolError, type[A2AError]] = {}
_BY_CODE: dict[int, type[A2AError]] = {}


class A2AError(AgentNodeError):
    """An error reported to an A2A peer. Subclasses name their :class:`ProtocolError` row.

    ``message`` defaults to the row's message; ``metadata`` (string values, as
    ``google.rpc.ErrorInfo`` requires) travels in the ErrorInfo of a 1.0
    error and as ``data`` of a 0.3 one, so it must hold nothing secret.
    """

    error: ClassVar[ProtocolError] = ProtocolError.INTERNAL_ERROR

    def __init__(self, message: str | None = None, *, metadata: dict[str, str] | None = None):
        self.message = message or self.error.row.message
        self.metadata = dict(metadata or {})
        super().__init__(self.message)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Register a class that names its own row; one that does not (a
        special case of its parent's, such as an HTTP status of its own)
        leaves the row to the parent. Two classes for one row are refused."""
        super().__init_subclass__(**kwargs)
        if "error" not in cls.__dict__:
            return
        taken = _BY_ERROR.get(cls.error)
        if taken is not None:
            raise TypeError(
                f"{cls.__qualname__} names {cls.error.name}, the row of {taken.__qualname__}"
            )
        _BY_ERROR[cls.error] = cls
        _BY_CODE[cls.error.row.code] = cls


class ParseError(A2AError):
    """The request body is not JSON (or has the wrong content type to be read)."""

    error = ProtocolError.PARSE_ERROR


class InvalidRequest(A2AError):
    """The body is JSON but not a JSON-RPC 2.0 request."""

    error = ProtocolError.INVALID_REQUEST


class MethodNotFound(A2AError):
    """No such method (in the protocol version the request speaks)."""

    error = ProtocolError.METHOD_NOT_FOUND


class InvalidParams(A2AError):
    """The params do not validate against the method's request object."""

    error = ProtocolError.INVALID_PARAMS


class InternalError(A2AError):
    """The server failed; the message says nothing about its internals."""

    error = ProtocolError.INTERNAL_ERROR

    @classmethod
    def of(cls, exc: Exception) -> InternalError:
        """What a caller is told of our failure ``exc``: that the store could
        not write because it is full (worth asking again later), else nothing."""
        if isinstance(exc, StoreFull):
            return cls("internal error: the store could not write, its disk is full")
        return cls("internal error")


class TaskNotFound(A2AError):
    """No task with that id (or not one the caller may see)."""

    error = ProtocolError.TASK_NOT_FOUND


class TaskNotCancelable(A2AError):
    """The task is in a state that cannot be canceled."""

    error = ProtocolError.TASK_NOT_CANCELABLE


class PushNotificationNotSupported(A2AError):
    """The agent does not declare ``capabilities.pushNotifications``."""

    error = ProtocolError.PUSH_NOTIFICATION_NOT_SUPPORTED


class UnsupportedOperation(A2AError):
    """Not supported here, e.g. a message to a terminal task or streaming when undeclared."""

    error = ProtocolError.UNSUPPORTED_OPERATION


class ContentTypeNotSupported(A2AError):
    """The media type of the request (body or part) is not accepted."""

    error = ProtocolError.CONTENT_TYPE_NOT_SUPPORTED


class InvalidAgentResponse(A2AError):
    """A peer agent answered with something that is not a valid A2A response."""

    error = ProtocolError.INVALID_AGENT_RESPONSE


class ExtendedAgentCardNotConfigured(A2AError):
    """``GetExtendedAgentCard`` while the agent has no extended card."""

    error = ProtocolError.EXTENDED_AGENT_CARD_NOT_CONFIGURED


class ExtensionSupportRequired(A2AError):
    """The agent requires an extension the client did not declare."""

    error = ProtocolError.EXTENSION_SUPPORT_REQUIRED


class VersionNotSupported(A2AError):
    """The ``A2A-Version`` the client asked for is not served here."""

    error = ProtocolError.VERSION_NOT_SUPPORTED


class Unauthenticated(A2AError):
    """The request needs a client certificate and came without one."""

    error = ProtocolError.UNAUTHENTICATED


class PermissionDenied(A2AError):
    """The node's policy does not let this caller do this."""

    error = ProtocolError.PERMISSION_DENIED


class TooManyRequests(A2AError):
    """The caller is at a cap of its own: as many requests in flight as
    ``limits.max_concurrent_per_caller`` allows, or as many unfinished tasks
    as ``limits.max_open_tasks_per_caller``."""

    error = ProtocolError.TOO_MANY_REQUESTS


class Unavailable(A2AError):
    """The node cannot serve the request now — its database is out of reach,
    it is starting, or it is stopping — and it may be asked again in a
    moment (a send with the same ``Idempotency-Key`` makes one task however
    often it is asked). The message says why; a task the request had
    already started is named in the error's metadata (``taskId``)."""

    error = ProtocolError.UNAVAILABLE


class IdempotencyKeyReused(A2AError):
    """A send repeated an ``Idempotency-Key`` with another message than the
    one that made the key's task: the task is not the one asked for, so it
    is not answered (the IETF draft's 422). The task's id is in the error's
    metadata (``taskId``)."""

    error = ProtocolError.IDEMPOTENCY_KEY_REUSED


def error_class(error: ProtocolError) -> type[A2AError]:
    """The exception class of a table row."""
    return _BY_ERROR[error]


def to_jsonrpc_error(exc: BaseException, version: Literal["1.0", "0.3"]) -> dict[str, Any]:
    """The JSON-RPC ``error`` object for ``exc``.

    Any exception that is not an :class:`A2AError` becomes a bare
    InternalError, its text withheld. 1.0 puts a ``google.rpc.ErrorInfo`` in
    a ``data`` array; 0.3 has no ErrorInfo and sends the metadata, if any, as
    a plain ``data`` object.
    """
    err = exc if isinstance(exc, A2AError) else InternalError()
    row = err.error.row
    body: dict[str, Any] = {"code": row.code, "message": err.message}
    if version == "1.0":
        info: dict[str, Any] = {
            "@type": ERROR_INFO_TYPE,
            "reason": row.reason,
            "domain": row.domain,
        }
        if err.metadata:
            info["metadata"] = dict(err.metadata)
        body["data"] = [info]
    elif err.metadata:
        body["data"] = dict(err.metadata)
    return body


def from_jsonrpc_error(error: dict[str, Any]) -> A2AError:
    """The exception for a peer's JSON-RPC ``error`` object, 1.0 or 0.3 shaped.

    An unknown code becomes :class:`InternalError`; ErrorInfo metadata (1.0) or
    a flat ``data`` object of strings (0.3) becomes ``metadata``.
    """
    code = error.get("code")
    cls = _BY_CODE.get(code, InternalError) if isinstance(code, int) else InternalError
    message = error.get("message")
    return cls(message if isinstance(message, str) else None, metadata=_metadata(error.get("data")))


def _metadata(data: object) -> dict[str, str]:
    if isinstance(data, list):
        infos = [d for d in data if isinstance(d, dict) and d.get("@type") == ERROR_INFO_TYPE]
        data = infos[0].get("metadata") if infos else None
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, str)}
