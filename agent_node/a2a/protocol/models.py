"""A2A 1.0 wire objects, as ``specification/a2a.proto`` (package ``lf.a2a.v1``) maps to JSON.

Conventions, applied to every model here and in :mod:`agent_node.a2a.protocol.card_models`:

* Python attributes are the proto field names; JSON keys are their ProtoJSON
  names (lowerCamelCase, ``message_id`` -> ``messageId``). Both are accepted on
  input; :meth:`WireModel.to_json` writes the JSON names.
* Unknown fields are kept (``extra="allow"``) and written back: ProtoJSON
  readers ignore them and the TCK sends them.
* Absent stays absent. Optional scalars, messages *and repeated fields* default
  to ``None`` and are left out on output, so a document survives a round trip
  unchanged. Proto3 has no presence for repeated fields; we keep it anyway
  (choice: fidelity over convenience; read ``task.artifacts or []``).
* Enums are their string names (``"TASK_STATE_COMPLETED"``); the integer form,
  which ProtoJSON readers also accept, is read and turned into the name.
* ``google.protobuf.Timestamp`` fields are kept as the RFC 3339 strings they
  arrived as (checked, not reformatted: a round trip must not rewrite
  ``.5Z`` as ``.500000Z``). ``bytes`` (``Part.raw``) is kept as base64 text.
* ``oneof`` groups are checked: exactly one member must be set.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

__all__ = [
    "Artifact",
    "AuthenticationInfo",
    "CancelTaskRequest",
    "DeleteTaskPushNotificationConfigRequest",
    "Empty",
    "GetExtendedAgentCardRequest",
    "GetTaskPushNotificationConfigRequest",
    "GetTaskRequest",
    "ListTaskPushNotificationConfigsRequest",
    "ListTaskPushNotificationConfigsResponse",
    "ListTasksRequest",
    "ListTasksResponse",
    "Message",
    "Part",
    "Role",
    "SendMessageConfiguration",
    "SendMessageRequest",
    "SendMessageResponse",
    "StreamResponse",
    "SubscribeToTaskRequest",
    "Task",
    "TaskArtifactUpdateEvent",
    "TaskPushNotificationConfig",
    "TaskState",
    "TaskStatus",
    "TaskStatusUpdateEvent",
    "Timestamp",
    "WireModel",
    "exactly_one",
    "proto_json_name",
]


def proto_json_name(field: str) -> str:
    """The ProtoJSON name of a proto field: ``reference_task_ids`` -> ``referenceTaskIds``."""
    head, *rest = field.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


class WireModel(BaseModel):
    """Base of every A2A object: ProtoJSON names, unknown fields kept, absent stays absent."""

    model_config = ConfigDict(
        alias_generator=proto_json_name,
        populate_by_name=True,
        extra="allow",
    )

    def to_json(self) -> dict[str, Any]:
        """The ProtoJSON document: JSON names, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def exactly_one(model: BaseModel, group: str, members: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless exactly one of ``members`` (a proto ``oneof``) is set."""
    present = [name for name in members if getattr(model, name) is not None]
    if len(present) != 1:
        names = ", ".join(proto_json_name(name) for name in members)
        found = ", ".join(proto_json_name(name) for name in present) or "none"
        raise ValueError(f"{group}: exactly one of {names} must be set (found {found})")


def _check_timestamp(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}") from exc
    return value


Timestamp = Annotated[str, AfterValidator(_check_timestamp)]
"""A ``google.protobuf.Timestamp`` in JSON: an RFC 3339 string, e.g. ``2025-10-27T10:00:00Z``."""


def _check_base64(value: str) -> str:
    # ProtoJSON readers accept the standard and the URL-safe alphabet, padded or not.
    padded = value + "=" * (-len(value) % 4)
    try:
        base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("raw: not base64") from exc
    return value


def _enum_by_number(names: tuple[str, ...]) -> BeforeValidator:
    """Accept an enum's integer form (ProtoJSON allows it) and turn it into its name."""

    def convert(value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
            return names[value]
        return value

    return BeforeValidator(convert)


class TaskState(StrEnum):
    """``lf.a2a.v1.TaskState``, all nine values in proto order (their numbers are the index)."""

    UNSPECIFIED = "TASK_STATE_UNSPECIFIED"
    SUBMITTED = "TASK_STATE_SUBMITTED"
    WORKING = "TASK_STATE_WORKING"
    COMPLETED = "TASK_STATE_COMPLETED"
    FAILED = "TASK_STATE_FAILED"
    CANCELED = "TASK_STATE_CANCELED"
    INPUT_REQUIRED = "TASK_STATE_INPUT_REQUIRED"
    REJECTED = "TASK_STATE_REJECTED"
    AUTH_REQUIRED = "TASK_STATE_AUTH_REQUIRED"

    @property
    def is_terminal(self) -> bool:
        """Completed, failed, canceled or rejected: the task will not change again."""
        return self in _TERMINAL

    @property
    def is_interrupted(self) -> bool:
        """Input- or auth-required: the task waits for the client."""
        return self in (TaskState.INPUT_REQUIRED, TaskState.AUTH_REQUIRED)


_TERMINAL = frozenset(
    {TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED, TaskState.REJECTED}
)

_TaskStateField = Annotated[TaskState, _enum_by_number(tuple(TaskState))]


class Role(StrEnum):
    """``lf.a2a.v1.Role`` without ``ROLE_UNSPECIFIED``.

    Choice: the proto's zero value is refused, since ``Message.role`` is
    REQUIRED and an unspecified sender cannot be acted on.
    """

    USER = "ROLE_USER"
    AGENT = "ROLE_AGENT"


_RoleField = Annotated[Role, _enum_by_number(("ROLE_UNSPECIFIED", *Role))]


class Part(WireModel):
    """One piece of content: exactly one of ``text``, ``raw``, ``url``, ``data``.

    ``raw`` is the base64 text of the bytes. ``data`` is any JSON value except
    ``null`` (choice: a JSON ``null`` cannot be told from an absent field here,
    so a ``data: null`` part is refused as having no content).
    """

    text: str | None = None
    raw: Annotated[str, AfterValidator(_check_base64)] | None = None
    url: str | None = None
    data: Any = None
    metadata: dict[str, Any] | None = None
    filename: str | None = None
    media_type: str | None = None

    @model_validator(mode="after")
    def _one_content(self) -> Self:
        exactly_one(self, "Part.content", ("text", "raw", "url", "data"))
        return self

    @classmethod
    def from_bytes(cls, content: bytes, **fields: Any) -> Part:
        """A ``raw`` part holding ``content``."""
        return cls(raw=base64.b64encode(content).decode("ascii"), **fields)


class Message(WireModel):
    """One unit of communication; ``parts`` must not be empty."""

    message_id: str
    context_id: str | None = None
    task_id: str | None = None
    role: _RoleField
    parts: list[Part] = Field(min_length=1)
    metadata: dict[str, Any] | None = None
    extensions: list[str] | None = None
    reference_task_ids: list[str] | None = None


class TaskStatus(WireModel):
    """A task's state, with an optional message and the time it was recorded."""

    state: _TaskStateField
    message: Message | None = None
    timestamp: Timestamp | None = None


class Artifact(WireModel):
    """A task output; ``parts`` must not be empty."""

    artifact_id: str
    name: str | None = None
    description: str | None = None
    parts: list[Part] = Field(min_length=1)
    metadata: dict[str, Any] | None = None
    extensions: list[str] | None = None


class Task(WireModel):
    """The unit of work. ``contextId`` is optional in the proto and kept so here."""

    id: str
    context_id: str | None = None
    status: TaskStatus
    artifacts: list[Artifact] | None = None
    history: list[Message] | None = None
    metadata: dict[str, Any] | None = None


class TaskStatusUpdateEvent(WireModel):
    """A change of a task's status. 1.0 has no ``final`` flag: the stream's end says it."""

    task_id: str
    context_id: str
    status: TaskStatus
    metadata: dict[str, Any] | None = None


class TaskArtifactUpdateEvent(WireModel):
    """An artifact, or with ``append`` a chunk of one; ``lastChunk`` ends it."""

    task_id: str
    context_id: str
    artifact: Artifact
    append: bool | None = None
    last_chunk: bool | None = None
    metadata: dict[str, Any] | None = None


class StreamResponse(WireModel):
    """One event of a stream or a push: exactly one of the four payloads."""

    task: Task | None = None
    message: Message | None = None
    status_update: TaskStatusUpdateEvent | None = None
    artifact_update: TaskArtifactUpdateEvent | None = None

    @model_validator(mode="after")
    def _one_payload(self) -> Self:
        exactly_one(self, "StreamResponse.payload", _STREAM_PAYLOADS)
        return self


_STREAM_PAYLOADS = ("task", "message", "status_update", "artifact_update")


class AuthenticationInfo(WireModel):
    """How to authenticate a push: an IANA HTTP scheme (``Bearer``) and its credentials."""

    scheme: str
    credentials: str | None = None


class TaskPushNotificationConfig(WireModel):
    """A push target for a task, flattened in 1.0 (0.3 nested it as ``pushNotificationConfig``).

    Choice: the proto has no separate ``PushNotificationConfig`` message any
    more, so neither do we; inside ``SendMessageConfiguration`` this same
    object is used with ``taskId`` left empty.
    """

    tenant: str | None = None
    id: str | None = None
    task_id: str | None = None
    url: str
    token: str | None = None
    authentication: AuthenticationInfo | None = None


class SendMessageConfiguration(WireModel):
    """Options of a send. ``returnImmediately`` false (the default) blocks until the task
    is terminal or interrupted; 0.3's ``blocking`` is its negation."""

    accepted_output_modes: list[str] | None = None
    task_push_notification_config: TaskPushNotificationConfig | None = None
    history_length: int | None = Field(default=None, ge=0)
    return_immediately: bool | None = None


class SendMessageRequest(WireModel):
    """Params of ``SendMessage`` and ``SendStreamingMessage``."""

    tenant: str | None = None
    message: Message
    configuration: SendMessageConfiguration | None = None
    metadata: dict[str, Any] | None = None


class SendMessageResponse(WireModel):
    """Result of ``SendMessage``: exactly one of ``task`` and ``message``."""

    task: Task | None = None
    message: Message | None = None

    @model_validator(mode="after")
    def _one_payload(self) -> Self:
        exactly_one(self, "SendMessageResponse.payload", ("task", "message"))
        return self


class GetTaskRequest(WireModel):
    """Params of ``GetTask``. ``historyLength`` 0 asks for no history; unset, all of it."""

    tenant: str | None = None
    id: str
    history_length: int | None = Field(default=None, ge=0)


class ListTasksRequest(WireModel):
    """Params of ``ListTasks``. ``pageSize`` is 1..100 (unset: 50); ``status`` filters by state."""

    tenant: str | None = None
    context_id: str | None = None
    status: _TaskStateField | None = None
    page_size: int | None = Field(default=None, ge=1, le=100)
    page_token: str | None = None
    history_length: int | None = Field(default=None, ge=0)
    status_timestamp_after: Timestamp | None = None
    include_artifacts: bool | None = None


class ListTasksResponse(WireModel):
    """Result of ``ListTasks``. ``nextPageToken`` is ``""`` on the last page; all four
    fields are REQUIRED, so none has a default."""

    tasks: list[Task]
    next_page_token: str
    page_size: int
    total_size: int


class CancelTaskRequest(WireModel):
    """Params of ``CancelTask``."""

    tenant: str | None = None
    id: str
    metadata: dict[str, Any] | None = None


class SubscribeToTaskRequest(WireModel):
    """Params of ``SubscribeToTask``."""

    tenant: str | None = None
    id: str


class GetTaskPushNotificationConfigRequest(WireModel):
    """Params of ``GetTaskPushNotificationConfig``: the task and the config id."""

    tenant: str | None = None
    task_id: str
    id: str


class DeleteTaskPushNotificationConfigRequest(WireModel):
    """Params of ``DeleteTaskPushNotificationConfig`` (idempotent)."""

    tenant: str | None = None
    task_id: str
    id: str


class ListTaskPushNotificationConfigsRequest(WireModel):
    """Params of ``ListTaskPushNotificationConfigs``. ``pageSize`` is 1..100
    as ListTasks' (unset: all of the task's configs)."""

    tenant: str | None = None
    task_id: str
    page_size: int | None = Field(default=None, ge=1, le=100)
    page_token: str | None = None


class ListTaskPushNotificationConfigsResponse(WireModel):
    """Result of ``ListTaskPushNotificationConfigs``."""

    configs: list[TaskPushNotificationConfig] | None = None
    next_page_token: str | None = None


class Empty(WireModel):
    """``google.protobuf.Empty``: the result of ``DeleteTaskPushNotificationConfig``."""


class GetExtendedAgentCardRequest(WireModel):
    """Params of ``GetExtendedAgentCard`` (only the routing tenant)."""

    tenant: str | None = None
