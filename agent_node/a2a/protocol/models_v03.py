"""A2A 0.3 wire objects, as the 0.3 JSON Schema (``specification/json/a2a.json``
at tag ``v0.3.0``) defines them.

The node speaks 1.0 inside and converts 0.3 as plain JSON at the edge
(:mod:`agent_node.a2a.protocol.compat`); nothing on the request path validates with
these models. They exist so that ``protocols/a2a-0.3/`` holds generated
schemas and tests can check that the golden 0.3 fixtures, and what compat
writes for 0.3 clients, are 0.3 documents.

Conventions as in :mod:`agent_node.a2a.protocol.models` (camelCase JSON names, unknown
fields kept, absent stays absent, timestamps kept as strings), plus:

* ``kind`` (and a security scheme's ``type``) is REQUIRED, as in the schema,
  and selects the object in a union: a document without it is refused.
* Enums are the 0.3 strings: ``"input-required"``, ``"user"``.
* Objects whose shape did not change in 1.0 are still defined here: 0.3 is
  frozen, and its schemas must not move when a 1.0 model does.

The 0.3 Agent Card's objects are :mod:`.card_models_v03`, as the 1.0 card's
are apart from the 1.0 models (:mod:`.card_models`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, RootModel

from agent_node.a2a.protocol.models import Timestamp, WireModel

__all__ = [
    "Artifact",
    "DataPart",
    "DeleteTaskPushNotificationConfigParams",
    "FilePart",
    "FileWithBytes",
    "FileWithUri",
    "GetTaskPushNotificationConfigParams",
    "ListTaskPushNotificationConfigParams",
    "ListTaskPushNotificationConfigResult",
    "Message",
    "MessageSendConfiguration",
    "MessageSendParams",
    "Part",
    "PushNotificationAuthenticationInfo",
    "PushNotificationConfig",
    "Role",
    "SendMessageResult",
    "StreamEvent",
    "Task",
    "TaskArtifactUpdateEvent",
    "TaskIdParams",
    "TaskPushNotificationConfig",
    "TaskQueryParams",
    "TaskState",
    "TaskStatus",
    "TaskStatusUpdateEvent",
    "TextPart",
]


class Role(StrEnum):
    """The sender of a message (1.0: ``ROLE_USER`` / ``ROLE_AGENT``)."""

    USER = "user"
    AGENT = "agent"


class TaskState(StrEnum):
    """A task's state; ``unknown`` is 1.0's ``TASK_STATE_UNSPECIFIED``."""

    SUBMITTED = "submitted"
    WORKING = "working"
    INPUT_REQUIRED = "input-required"
    COMPLETED = "completed"
    CANCELED = "canceled"
    FAILED = "failed"
    REJECTED = "rejected"
    AUTH_REQUIRED = "auth-required"
    UNKNOWN = "unknown"


# Parts, messages, tasks


class FileWithBytes(WireModel):
    """A file's content as base64 text."""

    bytes: str
    name: str | None = None
    mime_type: str | None = None


class FileWithUri(WireModel):
    """A file's content at a URI."""

    uri: str
    name: str | None = None
    mime_type: str | None = None


class TextPart(WireModel):
    """``{"kind": "text", "text": ...}``."""

    kind: Literal["text"]
    text: str
    metadata: dict[str, Any] | None = None


class FilePart(WireModel):
    """``{"kind": "file", "file": {bytes|uri, name?, mimeType?}}``."""

    kind: Literal["file"]
    file: FileWithBytes | FileWithUri
    metadata: dict[str, Any] | None = None


class DataPart(WireModel):
    """``{"kind": "data", "data": {...}}``; ``data`` must be an object."""

    kind: Literal["data"]
    data: dict[str, Any]
    metadata: dict[str, Any] | None = None


Part = Annotated[TextPart | FilePart | DataPart, Field(discriminator="kind")]
"""One piece of content, chosen by ``kind``."""


class Message(WireModel):
    """One unit of communication (``kind: "message"``)."""

    kind: Literal["message"]
    message_id: str
    role: Role
    parts: list[Part]
    context_id: str | None = None
    task_id: str | None = None
    reference_task_ids: list[str] | None = None
    extensions: list[str] | None = None
    metadata: dict[str, Any] | None = None


class TaskStatus(WireModel):
    """A task's state, with an optional message and an ISO 8601 timestamp."""

    state: TaskState
    message: Message | None = None
    timestamp: Timestamp | None = None


class Artifact(WireModel):
    """A task output."""

    artifact_id: str
    name: str | None = None
    description: str | None = None
    parts: list[Part]
    extensions: list[str] | None = None
    metadata: dict[str, Any] | None = None


class Task(WireModel):
    """The unit of work (``kind: "task"``); unlike 1.0, ``contextId`` is required."""

    kind: Literal["task"]
    id: str
    context_id: str
    status: TaskStatus
    artifacts: list[Artifact] | None = None
    history: list[Message] | None = None
    metadata: dict[str, Any] | None = None


class TaskStatusUpdateEvent(WireModel):
    """A change of a task's status; ``final`` is true on the stream's last event."""

    kind: Literal["status-update"]
    task_id: str
    context_id: str
    status: TaskStatus
    final: bool
    metadata: dict[str, Any] | None = None


class TaskArtifactUpdateEvent(WireModel):
    """An artifact, or with ``append`` a chunk of one; ``lastChunk`` ends it."""

    kind: Literal["artifact-update"]
    task_id: str
    context_id: str
    artifact: Artifact
    append: bool | None = None
    last_chunk: bool | None = None
    metadata: dict[str, Any] | None = None


# Push notification configs


class PushNotificationAuthenticationInfo(WireModel):
    """How to authenticate a push: a list of schemes (1.0 keeps one ``scheme``)."""

    schemes: list[str]
    credentials: str | None = None


class PushNotificationConfig(WireModel):
    """A push target: the callback ``url``, a client ``id`` and ``token``."""

    id: str | None = None
    url: str
    token: str | None = None
    authentication: PushNotificationAuthenticationInfo | None = None


class TaskPushNotificationConfig(WireModel):
    """A push target of a task, nested (1.0 flattens it)."""

    task_id: str
    push_notification_config: PushNotificationConfig


# Requests and results


class MessageSendConfiguration(WireModel):
    """Options of a send; ``blocking`` is the negation of 1.0's ``returnImmediately``."""

    accepted_output_modes: list[str] | None = None
    blocking: bool | None = None
    history_length: int | None = None
    push_notification_config: PushNotificationConfig | None = None


class MessageSendParams(WireModel):
    """Params of ``message/send`` and ``message/stream``."""

    message: Message
    configuration: MessageSendConfiguration | None = None
    metadata: dict[str, Any] | None = None


class TaskQueryParams(WireModel):
    """Params of ``tasks/get``."""

    id: str
    history_length: int | None = None
    metadata: dict[str, Any] | None = None


class TaskIdParams(WireModel):
    """Params of ``tasks/cancel`` and ``tasks/resubscribe``."""

    id: str
    metadata: dict[str, Any] | None = None


class GetTaskPushNotificationConfigParams(WireModel):
    """Params of ``tasks/pushNotificationConfig/get``: ``id`` names the task; without a
    config id the task's default config (whose id is the task id) is meant."""

    id: str
    push_notification_config_id: str | None = None
    metadata: dict[str, Any] | None = None


class ListTaskPushNotificationConfigParams(WireModel):
    """Params of ``tasks/pushNotificationConfig/list``: ``id`` names the task."""

    id: str
    metadata: dict[str, Any] | None = None


class DeleteTaskPushNotificationConfigParams(WireModel):
    """Params of ``tasks/pushNotificationConfig/delete`` (its result is ``null``)."""

    id: str
    push_notification_config_id: str
    metadata: dict[str, Any] | None = None


class SendMessageResult(RootModel[Annotated[Task | Message, Field(discriminator="kind")]]):
    """Result of ``message/send``: a task or a message."""


class StreamEvent(
    RootModel[
        Annotated[
            Task | Message | TaskStatusUpdateEvent | TaskArtifactUpdateEvent,
            Field(discriminator="kind"),
        ]
    ]
):
    """One event of ``message/stream`` or ``tasks/resubscribe``, bare (no 1.0 wrapper)."""


class ListTaskPushNotificationConfigResult(RootModel[list[TaskPushNotificationConfig]]):
    """Result of ``tasks/pushNotificationConfig/list``: a bare array (1.0: ``{configs}``)."""
